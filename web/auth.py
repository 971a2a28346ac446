"""Who is asking: API tokens, the pages' signed session cookie, CSRF, and rate limits.

Every request needs a user, except the health checks, ``/metrics`` (unless
``VITALQ_METRICS_PUBLIC=0``), static files, the OpenAPI description and the sign-in
page. The API and the websocket take ``Authorization: Bearer <token>``; the pages sign
in once with a token and then carry a session cookie (HttpOnly, SameSite=Lax), and
every request they make that changes something must echo the session's CSRF token in
``X-CSRF-Token``, which another site cannot read. A websocket opened with the cookie
must come from this site's own origin.

A page session lasts while the token it signed in with is live: revoking the token
signs its pages out too.

Requests are counted per token (or per signed-in session) over a sliding minute in
Redis; beyond ``VITALQ_RATE_LIMIT_PER_MIN`` the answer is 429 with ``Retry-After``. The
same round trip reads the tokens' epoch, so a known token costs no database query
(``worker.accounts``).
"""

from __future__ import annotations

import hmac
import logging
import math
import os
import secrets
import time
from urllib.parse import urlsplit

import redis
from flask import Blueprint, Flask, g, redirect, render_template, request, session, url_for

from vitalq.errors import Forbidden, NotFound, RateLimited, Unauthenticated
from worker import accounts
from worker.broker import KEY_PREFIX, get_redis
from worker.models import Job, User
from worker.settings import get_settings

bp = Blueprint("auth", __name__)
log = logging.getLogger(__name__)

PUBLIC_PREFIXES = ("/health/", "/static/", "/sign-in", "/api/v1/openapi.json")
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
#: The rate limiter's clock (seconds since the epoch); tests move it across a minute.
clock = time.time


def current_user() -> User:
    return g.user


def owner_filter() -> int | None:
    """The owner whose jobs the current user may see: themselves, or None (all) for an admin."""
    return None if g.user.is_admin else g.user.id


def visible(job: Job) -> Job:
    """``job`` if the current user may see it; another user's job is NotFound, as if absent."""
    if not g.user.is_admin and job.owner_id != g.user.id:
        raise NotFound(f"no job {job.id!r}")
    return job


def still_signed_in(token_id: int | None) -> bool:
    """Whether the token a long-lived connection (a websocket) signed in with is still
    live: within a second of a revocation, it is not. While Redis is away the epoch
    cannot be read, and the connection is given the benefit of the doubt."""
    epoch = accounts.current_epoch()
    return token_id is None or epoch is None or accounts.user_of_token(token_id, epoch) is not None


def require_admin() -> None:
    if not g.user.is_admin:
        raise Forbidden("only an admin may do this")


def init_app(app: Flask) -> None:
    settings = get_settings()
    app.secret_key = app.config.get("SECRET_KEY") or _secret_key(settings.data_dir)
    # Flask defines these keys (SameSite as None), so setdefault would change nothing.
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = app.config.get("SESSION_COOKIE_SAMESITE") or "Lax"
    app.register_blueprint(bp)

    @app.before_request
    def _authenticate():
        g.user = g.token_id = None
        path = request.path
        if path.startswith(PUBLIC_PREFIXES) or (path == "/metrics" and get_settings().metrics_public):
            return None
        scheme, credentials = (request.headers.get("Authorization", "").split(None, 1) + ["", ""])[:2]
        if scheme.lower() == "bearer":
            found = accounts.authenticate(credentials.strip(), _tokens_epoch())
            if found is None:
                _count_failure()
                raise Unauthenticated("the token is not valid, or has been revoked")
            g.user, g.token_id = found
        elif (token_id := session.get("token_id")) is not None:
            g.token_id = token_id
            epoch = _tokens_epoch(ended_session=session.get("sid"))
            live = epoch != SESSION_ENDED and _session_is_current()
            g.user = accounts.user_of_token(token_id, epoch) if live else None
            if g.user is None:  # signed out, too old, its token revoked, or the account gone
                session.clear()
        if g.user is None:
            if not path.startswith(("/api/", "/ws/", "/metrics")):
                return redirect(url_for("auth.sign_in", next=request.full_path.rstrip("?")))
            raise Unauthenticated("sign in: send Authorization: Bearer <token>")
        # One bucket per account, whatever the credential: a page's cookie beside the
        # account's tokens (or several tokens) had a bucket each, doubling the limit.
        _count(f"user:{g.user.id}")
        if scheme.lower() == "bearer":
            return None  # a token is sent by a client on purpose, never by a browser on its own
        # Flower's own pages send its XSRF token, not ours; it checks that one itself.
        if (request.method not in SAFE_METHODS and not path.startswith("/flower/")
                and not hmac.compare_digest(_csrf_sent(), session.get("csrf", ""))):
            raise Forbidden("missing or wrong X-CSRF-Token for a signed-in page")
        if path.startswith("/ws/") and not _same_origin():
            raise Forbidden("a websocket with the session cookie must come from this site")
        return None

    @app.context_processor
    def _signed_in():
        return {"user": g.get("user"), "csrf_token": session.get("csrf", "")}


def _csrf_sent() -> str:
    """The CSRF token the request carries: the header scripts send, or the field of a
    plain HTML form (only url-encoded forms are read here, never an upload's body)."""
    if request.mimetype == "application/x-www-form-urlencoded":
        return request.headers.get("X-CSRF-Token") or request.form.get("csrf_token", "")
    return request.headers.get("X-CSRF-Token", "")


def _count_failure() -> None:
    """Count a failed sign-in or an invalid token against the client's address (its own
    bucket, ``VITALQ_AUTH_FAILURES_PER_MIN``): guessing tokens is not free. Each wrong
    token used to count in a bucket of its own, and sign-in attempts in none."""
    _count(f"failures:{request.remote_addr}", limit=get_settings().auth_failures_per_min)


#: A page session lasts at most this long (seconds) after signing in, and a session that
#: signed out is remembered as ended for as long (in Redis): a copy of its cookie is
#: refused even though the token it signed in with lives on.
SESSION_MAX_AGE_S = 7 * 24 * 3600
#: What ``_tokens_epoch`` answers for a session that signed out.
SESSION_ENDED = b"ended"


def _ended_key(sid: str) -> str:
    return f"{KEY_PREFIX}session-ended:{sid}"


def _session_is_current() -> bool:
    """A page session signed in with this version (it has an id) and not too long ago."""
    issued = session.get("issued")
    return bool(session.get("sid")) and isinstance(issued, (int, float)) and 0 <= clock() - issued <= SESSION_MAX_AGE_S


def _tokens_epoch(ended_session: str | None = None) -> bytes | None:
    """The tokens' epoch (``accounts.EPOCH_KEY``; None while Redis is away), or
    SESSION_ENDED if ``ended_session`` (a page session's id) has signed out."""
    pipeline = get_redis().pipeline(transaction=False)
    if ended_session:
        pipeline.exists(_ended_key(ended_session))
    pipeline.get(accounts.EPOCH_KEY)
    try:
        replies = pipeline.execute()
    except redis.RedisError as exc:
        # Reads come from the database and go on while Redis is away, unchecked against
        # revocations of the last moments; what needs Redis answers 503 by itself.
        log.warning("tokens' epoch not read, Redis is unreachable: %s", exc)
        return None
    if ended_session and replies[0]:
        return SESSION_ENDED
    return replies[-1] or b"0"


def _count(key: str, limit: int | None = None) -> None:
    """Count a request of ``key`` over the sliding minute; RateLimited beyond ``limit``
    (by default ``VITALQ_RATE_LIMIT_PER_MIN``; 0: none).

    A sliding-window counter (two fixed minutes, the previous one weighted by how much of
    it the last 60 s still cover): a fixed window would let twice the limit through
    across its boundary. Plain INCR and GET, no Lua.
    """
    limit = get_settings().rate_limit_per_min if limit is None else limit
    if limit <= 0:
        return
    minute, elapsed = divmod(clock(), 60)
    current, previous = (f"{KEY_PREFIX}rate:{key}:{int(minute) - back}" for back in (0, 1))
    try:
        count, _, before = get_redis().pipeline(transaction=False).incr(current).expire(current, 120) \
            .get(previous).execute()
    except redis.RedisError as exc:
        log.warning("requests not counted, Redis is unreachable: %s", exc)  # uncounted rather than refused
        return
    recent = int(before or 0) * (1 - elapsed / 60) + count
    if recent > limit:
        # Requests spread over the minute: the excess has left the window after this long.
        retry_after_s = max(1, math.ceil(60 * (recent - limit) / recent))
        raise RateLimited(f"more than {limit} requests a minute", {"limit_per_minute": limit},
                          retry_after_s=retry_after_s)


def _same_origin() -> bool:
    origin = request.headers.get("Origin")
    return origin is None or urlsplit(origin).netloc == request.host


def _secret_key(data_dir) -> bytes:
    """The key that signs session cookies: ``VITALQ_SECRET_KEY``, or one made once and
    kept in the data folder, so that every web process and restart shares it."""
    configured = get_settings().secret_key
    if configured:
        return configured.encode()
    path = data_dir / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as file:
        file.write(secrets.token_bytes(32))
    return path.read_bytes()


def _safe_next(target: str | None) -> str:
    """Only a path of this site: never send a signed-in user elsewhere. Browsers drop
    tabs and newlines and read a backslash as a slash (``/%09/evil`` and ``/%5C/evil``
    would lead to ``//evil``), so any such character refuses the target."""
    if (not target or not target.startswith("/") or not target.isprintable() or any(c.isspace() for c in target)
            or "\\" in target or urlsplit(target).netloc or target.startswith("//")):
        return url_for("pages.submit")
    return target


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    error = None
    if request.method == "POST":
        if not hmac.compare_digest(request.form.get("csrf", ""), session.get("sign_in_csrf", "")):
            error = "The form expired; try again."
        else:
            found = accounts.authenticate(request.form.get("token", "").strip())
            if found is None:
                _count_failure()
                error = "That token is not valid, or has been revoked."
            else:
                session.clear()
                session["token_id"] = found[1]
                session["csrf"] = secrets.token_urlsafe(32)
                session["sid"], session["issued"] = secrets.token_urlsafe(16), clock()
                return redirect(_safe_next(request.args.get("next")))
    # One token per browser session: a second tab (or a redirect) must not void the first form.
    session.setdefault("sign_in_csrf", secrets.token_urlsafe(32))
    status = 401 if error else 200
    return render_template("sign_in.html", page="sign-in", error=error, form_csrf=session["sign_in_csrf"],
                           next=request.args.get("next", "")), status


@bp.post("/sign-out")
def sign_out():
    """End the page session, on the server too: its id is remembered as ended, so a
    copy of the cookie no longer signs anyone in."""
    if g.user is not None:
        if session.get("sid"):
            try:
                get_redis().set(_ended_key(session["sid"]), 1, ex=SESSION_MAX_AGE_S)
            except redis.RedisError as exc:  # the browser's cookie goes all the same
                log.warning("signed out, but the session was not recorded as ended: %s", exc)
        session.clear()
    return redirect(url_for("auth.sign_in"))
