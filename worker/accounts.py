"""Users and their API tokens.

A token is ``vq_`` and 43 URL-safe characters (256 random bits), shown once when made
and stored only as its SHA-256; revoking marks it, so it is refused from then on.

A web process remembers the tokens it has checked, for up to ``TOKEN_MEMORY_S``, so that
a request costs no database query; each request reads the tokens' epoch from Redis (in
the round trip that counts it for the rate limit), and a revocation moves the epoch on:
every process forgets what it knew at its next request. While Redis is away, every
token is checked against the database.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time

import redis
from sqlalchemy import func, select, update

from vitalq.errors import AlreadyExists, InvalidInput, NotFound

from .broker import KEY_PREFIX, get_redis
from .db import session_scope
from .models import ApiToken, User, utcnow

TOKEN_PREFIX = "vq_"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
#: Redis key counting revocations; a process's memory of tokens is good for one value.
EPOCH_KEY = f"{KEY_PREFIX}tokens:epoch"
#: Seconds a process trusts its memory of a token at the same epoch.
TOKEN_MEMORY_S = 60.0
_MEMORY_SIZE = 4096

log = logging.getLogger(__name__)
#: (what was asked: a token's digest or a token id) -> (when checked, epoch, the answer)
_memory: dict[tuple[str, object], tuple[float, bytes, "tuple[User, int]"]] = {}


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _remembered(key: tuple[str, object], epoch: bytes | None, look_up):
    """``look_up()``'s answer, or the one remembered for ``key`` at this epoch."""
    if epoch is None:  # Redis is away: no memory can be trusted
        return look_up()
    known = _memory.get(key)
    if known is not None and known[1] == epoch and time.monotonic() - known[0] < TOKEN_MEMORY_S:
        return known[2]
    found = look_up()
    if found is not None:
        if len(_memory) >= _MEMORY_SIZE:
            _memory.clear()
        _memory[key] = (time.monotonic(), epoch, found)
    return found


def _issue(session, user: User) -> str:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_sha256=digest(token), prefix=token[:10]))
    return token


def create_user(name: str, admin: bool = False) -> tuple[User, str]:
    """A new user and their first token; raises InvalidInput or AlreadyExists."""
    if not NAME_PATTERN.match(name or ""):
        raise InvalidInput("a user name is 1-64 letters, digits, '.', '_', '@' or '-'",
                           {"fields": {"name": "invalid"}})
    with session_scope() as session:
        if session.scalar(select(User).where(User.name == name)) is not None:
            raise AlreadyExists(f"a user {name!r} exists already", {"fields": {"name": "taken"}})
        user = User(name=name, is_admin=admin)
        session.add(user)
        session.flush()
        return user, _issue(session, user)


def issue_token(name: str) -> str:
    """Another token for the user ``name``."""
    with session_scope() as session:
        user = session.scalar(select(User).where(User.name == name))
        if user is None:
            raise NotFound(f"no user {name!r}")
        return _issue(session, user)


def revoke(token_or_prefix: str) -> int:
    """Revoke a token, given whole or by the prefix listings show; returns how many.
    Every web process forgets the tokens it knew (the epoch moves on)."""
    condition = (ApiToken.token_sha256 == digest(token_or_prefix) if len(token_or_prefix) > 16
                 else ApiToken.prefix == token_or_prefix)
    with session_scope() as session:
        revoked = session.execute(update(ApiToken).where(condition, ApiToken.revoked_at.is_(None))
                                  .values(revoked_at=utcnow())).rowcount or 0
    if revoked:
        try:
            get_redis().incr(EPOCH_KEY)
        except redis.RedisError as exc:  # processes with Redis away check every token anyway
            log.warning("revoked, but the tokens' epoch was not moved on: %s; processes that remember the "
                        "token refuse it within %g s", exc, TOKEN_MEMORY_S)
    return revoked


def authenticate(token: str, epoch: bytes | None = None) -> tuple[User, int] | None:
    """The user a live token belongs to, and the token's id; None for any other string.
    With the tokens' ``epoch`` (the value at ``EPOCH_KEY``, ``b"0"`` before any
    revocation), a token checked at that epoch is not looked up again."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 128:
        return None
    token_digest = digest(token)
    return _remembered(("digest", token_digest), epoch, lambda: _live_token(ApiToken.token_sha256 == token_digest))


_epoch_reading: list = [float("-inf"), None]


def current_epoch(max_age_s: float = 1.0) -> bytes | None:
    """The tokens' epoch (see EPOCH_KEY), read from Redis at most once every ``max_age_s``
    seconds in this process, however many open sockets ask; None while Redis is away."""
    if time.monotonic() - _epoch_reading[0] >= max_age_s:
        try:
            value = get_redis().get(EPOCH_KEY) or b"0"
        except redis.RedisError:
            value = None
        _epoch_reading[:] = [time.monotonic(), value]
    return _epoch_reading[1]


def user_of_token(token_id: int, epoch: bytes | None = None) -> User | None:
    """The user whose token ``token_id`` is still live (a page session signed in with a
    token ends when that token is revoked)."""
    found = _remembered(("id", token_id), epoch, lambda: _live_token(ApiToken.id == token_id))
    return found[0] if found else None


def _live_token(condition) -> tuple[User, int] | None:
    with session_scope() as session:
        row = session.execute(select(User, ApiToken.id).join(ApiToken, ApiToken.user_id == User.id)
                              .where(condition, ApiToken.revoked_at.is_(None))).first()
        return (row[0], row[1]) if row else None


def users() -> list[tuple[User, list[ApiToken]]]:
    with session_scope() as session:
        found = list(session.scalars(select(User).order_by(User.id)))
        tokens = list(session.scalars(select(ApiToken).order_by(ApiToken.id)))
        return [(user, [t for t in tokens if t.user_id == user.id]) for user in found]


def names_of(user_ids: set[int]) -> dict[int, str]:
    """The names of these users, by id (an id whose user is gone is left out)."""
    if not user_ids:
        return {}
    with session_scope() as session:
        return dict(session.execute(select(User.id, User.name).where(User.id.in_(user_ids))).all())


def count_users() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(User)) or 0)
