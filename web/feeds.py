"""A job's events, read from Redis once per web process and handed to every websocket
watching that job.

Each websocket used to wait on the job's stream by itself: a thousand sockets on ten
jobs made ten thousand Redis reads and JSON encodings a second, and the web process's
whole core went to them (``bench/load.py``: event latency p95 86-130 ms). A feed is one
thread (a greenlet under gunicorn's gevent worker) per watched job: it reads the new
events, encodes each once, and puts it in the inbox of every socket subscribed. It ends
when the last socket has left.

No event falls between a socket's past and its feed: a socket subscribes first and
reads the stream's backlog second, so the two overlap, and it skips the sequence
numbers it has already sent.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import redis

from worker import progress

log = logging.getLogger(__name__)

#: How long one Redis read waits for new events; also how soon a feed whose last
#: socket has left ends.
BLOCK_MS = 1000
#: Pause before a feed reads again after Redis failed it.
RETRY_S = 1.0


@dataclass(frozen=True)
class Event:
    body: dict[str, Any]
    text: str  # the body as JSON, encoded once for every socket

    @property
    def seq(self) -> int:
        return self.body["seq"]


def _event(body: dict[str, Any]) -> Event:
    return Event(body, json.dumps(body))


def backlog(job_id: str) -> Iterator[Event]:
    """The events the job's stream holds now, oldest first."""
    position = "0-0"
    while entries := progress.read(job_id, after=position):
        for position, body in entries:
            yield _event(body)


class _Feed(threading.Thread):
    def __init__(self, job_id: str, position: str):
        super().__init__(name=f"feed-{job_id}", daemon=True)
        self.job_id = job_id
        self.position = position
        self.inboxes: set[queue.Queue] = set()

    def run(self) -> None:
        while True:
            with _lock:
                if not self.inboxes:
                    del _feeds[self.job_id]
                    return
            try:
                entries = progress.read(self.job_id, after=self.position, block_ms=BLOCK_MS)
            except redis.RedisError as exc:  # sockets re-read the job's row meanwhile
                log.warning("job feed %s: redis read failed (%s); reading again in %.0f s",
                            self.job_id, exc, RETRY_S)
                time.sleep(RETRY_S)
                continue
            if not entries:
                continue
            # Taken after the read: a socket that joined during it reads these in its backlog.
            with _lock:
                inboxes = tuple(self.inboxes)
            for _position, body in entries:
                event = _event(body)
                for inbox in inboxes:
                    inbox.put(event)
            self.position = entries[-1][0]


_feeds: dict[str, _Feed] = {}
_lock = threading.Lock()


@contextmanager
def subscribe(job_id: str) -> Iterator[queue.Queue]:
    """An inbox that receives the job's events published from now on, while in the block."""
    inbox: queue.Queue = queue.Queue()
    start = None
    while True:
        with _lock:
            feed = _feeds.get(job_id)
            if feed is None and start is not None:
                feed = _feeds[job_id] = _Feed(job_id, start)
                feed.start()
            if feed is not None:
                feed.inboxes.add(inbox)
                break
        # A new feed starts from the stream's end, found before the caller reads the backlog
        # (and outside the lock: other sockets need not wait on this Redis call).
        start = progress.last_position(job_id)
    try:
        yield inbox
    finally:
        with _lock:
            feed.inboxes.discard(inbox)


def watchers() -> int:
    """The sockets watching jobs in this process."""
    with _lock:
        return sum(len(feed.inboxes) for feed in _feeds.values())


def feed_count() -> int:
    """The jobs this process reads events for: one Redis reader each."""
    with _lock:
        return len(_feeds)
