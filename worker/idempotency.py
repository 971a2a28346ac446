"""Idempotency keys: a client that sends a submission again (its answer was lost to a
timeout) gets the job its first attempt made, not a twin.

A key is the client's (the ``Idempotency-Key`` header: 1 to 255 visible ASCII
characters, a UUID as a rule), scoped to its account and kept in Redis for KEY_TTL_S
with a fingerprint of the request it came with and the ids of the jobs it made; after
the IETF HTTPAPI working group's draft "The Idempotency-Key HTTP Header Field". The
same key with another request, or while its first request is still being served, is a
conflict (409), never a second job.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from vitalq.errors import IdempotencyConflict, InvalidInput

from .broker import KEY_PREFIX, get_redis

#: How long a key is remembered (seconds): a day, as the draft suggests.
KEY_TTL_S = 24 * 3600
#: How long a first request may take to make its jobs before its key is free again
#: (seconds): a crashed web process does not hold the key for a day.
PENDING_TTL_S = 600
_KEY = re.compile(r"[\x21-\x7e]{1,255}")


def check_key(value: str | None) -> str | None:
    """The header's key, or None if absent; raises InvalidInput if malformed."""
    if value is None:
        return None
    if not _KEY.fullmatch(value):
        raise InvalidInput("Idempotency-Key must be 1 to 255 visible ASCII characters (a UUID, say)",
                           {"fields": {"Idempotency-Key": "1 to 255 visible ASCII characters"}})
    return value


def fingerprint(**request: Any) -> str:
    """A digest of what a submission asked for (its kind, params, priority, file...)."""
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()


def _redis_key(owner_id: int | None, key: str) -> str:
    return f"{KEY_PREFIX}idempotency:{owner_id}:{hashlib.sha256(key.encode()).hexdigest()}"


def claim(owner_id: int | None, key: str, request_fingerprint: str) -> list[str] | None:
    """None if this is the key's first request, which now holds it (call ``record`` once
    its jobs exist, or ``release`` if it failed); else the ids of the jobs the first made.

    Raises IdempotencyConflict if the key came with another request, or if its first
    request is still being served.
    """
    redis_key = _redis_key(owner_id, key)
    pending = json.dumps({"fingerprint": request_fingerprint, "jobs": None})
    if get_redis().set(redis_key, pending, nx=True, ex=PENDING_TTL_S):
        return None
    stored = get_redis().get(redis_key)
    if stored is None:  # expired in between: try once more
        return claim(owner_id, key, request_fingerprint)
    first = json.loads(stored)
    if first["fingerprint"] != request_fingerprint:
        raise IdempotencyConflict("this Idempotency-Key was used for another request; use a new key for a new job",
                                  {"fields": {"Idempotency-Key": "used for another request"}})
    if first["jobs"] is None:
        raise IdempotencyConflict("the first request with this Idempotency-Key is still being served",
                                  {"fields": {"Idempotency-Key": "in use"}}, retry_after_s=1)
    return first["jobs"]


def record(owner_id: int | None, key: str, request_fingerprint: str, job_ids: list[str]) -> None:
    """The jobs the key's first request made, remembered for KEY_TTL_S."""
    get_redis().set(_redis_key(owner_id, key), json.dumps({"fingerprint": request_fingerprint, "jobs": job_ids}),
                    ex=KEY_TTL_S)


def release(owner_id: int | None, key: str) -> None:
    """Free a key whose first request failed (nothing was made): it may be tried again."""
    get_redis().delete(_redis_key(owner_id, key))
