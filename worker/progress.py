"""The progress bus: each job's events, in order, on a Redis stream.

A running job publishes every progress point as an event with a sequence number; the
websocket (``web.ws``) reads them back in order. The design sketched Redis pub/sub;
a stream (one per job, ``vitalq:job:<id>:events``) is used instead because it keeps
the events: a client that connects late or reconnects reads what it missed from the
sequence number it last saw, and nothing falls between reading the job's snapshot and
subscribing. Streams are capped in length and expire a day after their last event.

Publishing is one atomic round trip (a Lua script, run by its SHA1) that also answers whether the job
has been asked to cancel, so a job checks its cancel flag at every progress point for free.
"""

from __future__ import annotations

import json
import time
from functools import lru_cache
from typing import Any

import redis

from .broker import KEY_PREFIX, get_redis

EVENT_TTL_S = 24 * 3600
MAX_EVENTS_KEPT = 10_000

_PUBLISH = """
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'seq', seq, 'event', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return {seq, redis.call('EXISTS', KEYS[3])}
"""


def events_key(job_id: str) -> str:
    return f"{KEY_PREFIX}job:{job_id}:events"


def _seq_key(job_id: str) -> str:
    return f"{KEY_PREFIX}job:{job_id}:seq"


def _cancel_key(job_id: str) -> str:
    return f"{KEY_PREFIX}job:{job_id}:cancel"


def keys(job_id: str) -> list[str]:
    """Every Redis key of a job's events (to delete them with the job)."""
    return [events_key(job_id), _seq_key(job_id), _cancel_key(job_id)]


@lru_cache(maxsize=None)
def _publish_script(client: redis.Redis):
    # Sent once per process and server, then run by its SHA1 (EVALSHA): the script's text
    # does not travel with every event.
    return client.register_script(_PUBLISH)


def job_event(kind: str, status: str, fraction: float, stage: str | None, message: str | None) -> dict[str, Any]:
    """What every job event says: ``kind`` is ``status`` (the job's status changed: it
    started, retries, ended) or ``progress`` (a running job's progress point), with the
    job's progress (``fraction`` 0 to 1, its ``stage`` and ``message``). The websocket adds
    ``final`` events of its own, with the whole job (``web.ws``)."""
    return {"type": kind, "status": status, "fraction": fraction, "stage": stage, "message": message}


def publish(job_id: str, event: dict[str, Any]) -> tuple[int, bool]:
    """Append ``event`` (a ``job_event``) to the job's stream.

    Returns
    -------
    seq : int
        The event's sequence number (1, 2, ... per job, across retries and redeliveries).
    cancel_requested : bool
        Whether someone has asked this job to stop.
    """
    event = {**event, "time": time.time()}
    seq, cancelled = _publish_script(get_redis())(
        keys=[events_key(job_id), _seq_key(job_id), _cancel_key(job_id)],
        args=[json.dumps(event), MAX_EVENTS_KEPT, EVENT_TTL_S])
    return int(seq), bool(cancelled)


def read(job_id: str, after: str = "0-0", block_ms: int | None = None, count: int = 500) -> list[tuple[str, dict[str, Any]]]:
    """Events after the stream position ``after``: ``[(position, event)]``, oldest first.

    With ``block_ms``, waits up to that long for the first new event.
    """
    reply = get_redis().xread({events_key(job_id): after}, count=count, block=block_ms)
    events = []
    for _key, entries in reply or ():
        for position, fields in entries:
            event = json.loads(fields[b"event"])
            event["seq"] = int(fields[b"seq"])
            events.append((position.decode(), event))
    return events


def last_position(job_id: str) -> str:
    """The position of the newest event on the job's stream ("0-0" when it has none)."""
    newest = get_redis().xrevrange(events_key(job_id), count=1)
    return newest[0][0].decode() if newest else "0-0"


def request_cancel(job_id: str) -> None:
    get_redis().set(_cancel_key(job_id), 1, ex=EVENT_TTL_S)
