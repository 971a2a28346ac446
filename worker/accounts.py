"""Users and their API tokens.

A token is ``vq_`` and 43 URL-safe characters (256 random bits), shown once when made
and stored only as its SHA-256; revoking marks it, so it is refused from then on.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from sqlalchemy import func, select, update

from .db import session_scope
from .exceptions import AlreadyExists, InvalidInput, NotFound
from .models import ApiToken, User, utcnow

TOKEN_PREFIX = "vq_"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _issue(session, user: User) -> str:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_sha256=_digest(token), prefix=token[:10]))
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
    """Revoke a token, given whole or by the prefix listings show; returns how many."""
    condition = (ApiToken.token_sha256 == _digest(token_or_prefix) if len(token_or_prefix) > 16
                 else ApiToken.prefix == token_or_prefix)
    with session_scope() as session:
        result = session.execute(update(ApiToken).where(condition, ApiToken.revoked_at.is_(None))
                                 .values(revoked_at=utcnow()))
        return result.rowcount or 0


def authenticate(token: str) -> tuple[User, int] | None:
    """The user a live token belongs to, and the token's id; None for any other string."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 128:
        return None
    return _live_token(ApiToken.token_sha256 == _digest(token))


def user_of_token(token_id: int) -> User | None:
    """The user whose token ``token_id`` is still live (a page session signed in with a
    token ends when that token is revoked)."""
    found = _live_token(ApiToken.id == token_id)
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


def count_users() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(User)) or 0)
