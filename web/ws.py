"""``/ws/jobs/<id>``: a job's progress, live.

On connect the client gets ``{"type": "snapshot", "job": {...}}``, then each event in
order (``{"type": "progress" | "status", "seq": n, ...}``), then
``{"type": "final", "job": {...}}`` once the job has finished, and the socket closes.
A client that reconnects passes ``?after=<last seq it saw>`` and misses nothing: the
events are kept on the job's stream (see ``worker.progress``). The sockets watching a
job share one reader of its stream (``web.feeds``).
"""

from __future__ import annotations

import itertools
import json
import queue
import threading
import time
from datetime import datetime, timedelta, timezone

from flask import g, request
from flask_sock import Sock

from worker import store
from vitalq.errors import NotFound
from worker.models import FINISHED, JobStatus

from . import feeds
from .auth import still_signed_in, visible

#: After this long without an event the job's row is re-read: a status event can be
#: missed if Redis was away when it was published, and the row decides.
RECHECK_S = 5.0
#: A progress socket only speaks to its client, which has nothing to say: a message
#: beyond MAX_MESSAGE_BYTES, or more than MAX_UNREAD_BYTES of messages, closes the socket
#: with 1009 (message too big). Without a bound, a client writing into its socket grew the
#: web process by 550 MB, and a 64 MB frame was taken whole.
MAX_MESSAGE_BYTES = 4096
MAX_UNREAD_BYTES = 64 * 1024
CLOSE_TOO_BIG = 1009
#: How often an open socket's token is checked (seconds): a revocation closes it with
#: 1008 (policy violation) within about this long. An open socket kept streaming after
#: its token was revoked.
AUTH_RECHECK_S = 1.0
#: The longest a socket waits for the last status event of a job whose row says it has
#: just finished (the event follows the row by milliseconds).
END_EVENT_WAIT_S = 1.0
CLOSE_POLICY = 1008


def bounded_reader(target, **kwargs) -> threading.Thread:
    """The thread (a greenlet under gevent) that reads one websocket, given to
    simple-websocket as its ``thread_class`` (``SOCK_SERVER_OPTIONS``): ``target`` is the
    socket's reader, whose event handling is wrapped so that the client's unread messages
    never hold more than MAX_UNREAD_BYTES. The bound is kept where messages are buffered,
    as they arrive: a view that read them would fall behind a client that writes as fast
    as the network allows (under gevent the reader does not yield while data keeps coming).
    """
    ws = target.__self__
    handle_events = ws._handle_events

    def handle_events_within_bound() -> bool:
        keep_going = handle_events()
        if keep_going and sum(map(len, ws.input_buffer)) > MAX_UNREAD_BYTES:
            ws.input_buffer.clear()
            ws.close(reason=CLOSE_TOO_BIG, message="this socket takes no messages")
            ws.event.set()
            return False
        return keep_going

    ws._handle_events = handle_events_within_bound
    return threading.Thread(target=target, **kwargs)  # looked up now: gevent patches threading


def register(sock: Sock) -> None:
    sock.route("/ws/jobs/<job_id>")(job_events)


def job_events(ws, job_id: str) -> None:
    try:
        job = visible(store.get(job_id))
    except NotFound as exc:
        ws.send(json.dumps({"type": "error", "error": exc.to_dict()}))
        ws.close(reason=1008, message="no such job")
        return
    after = request.args.get("after", type=int)
    ws.send(json.dumps({"type": "snapshot", "job": job.to_dict()}))
    if job.finished:  # nothing more will come: what the client missed, then the end, at once
        for event in _finished_backlog(job) if after is not None else ():
            if event.seq > after:
                ws.send(event.text)
        _send_final(ws, job_id)
        return

    last_seq = job.progress_seq if after is None else after
    token_id = g.token_id
    with feeds.subscribe(job_id) as inbox:
        for event in itertools.chain(feeds.backlog(job_id), _live(ws, inbox, job_id, token_id)):
            if event.seq <= last_seq:
                continue
            last_seq = event.seq
            ws.send(event.text)
            if _ends(event):
                break
    if ws.connected:  # a client that left needs no final message, nor its database read
        _send_final(ws, job_id)


def _ends(event) -> bool:
    return event.body["type"] == "status" and JobStatus(event.body["status"]) in FINISHED


def _finished_backlog(job) -> list:
    """A finished job's events. Its row is written before its last status event is
    published (a watcher must not hear of an end the row does not hold yet), so a socket
    opened between the two waits up to END_EVENT_WAIT_S for that event, if the job has
    only just finished; one finished long ago (its events expired) gets what is left."""
    finished_at = job.finished_at
    if finished_at is not None and finished_at.tzinfo is None:  # SQLite gives back naive UTC
        finished_at = finished_at.replace(tzinfo=timezone.utc)
    just_finished = finished_at is not None and datetime.now(timezone.utc) - finished_at < timedelta(seconds=10)
    deadline = time.monotonic() + END_EVENT_WAIT_S
    while True:
        events = list(feeds.backlog(job.id))
        if not just_finished or any(_ends(event) for event in events) or time.monotonic() >= deadline:
            return events
        time.sleep(0.02)


def _live(ws, inbox: queue.Queue, job_id: str, token_id: int | None):
    """The inbox's events while the client is there and its token is live (checked every
    AUTH_RECHECK_S: a revoked token's socket is closed with 1008), until the job has
    finished and the inbox has been quiet for RECHECK_S."""
    quiet_since = time.monotonic()
    while ws.connected:
        if not still_signed_in(token_id):
            ws.close(reason=CLOSE_POLICY, message="the token was revoked")
            return
        try:
            yield inbox.get(timeout=AUTH_RECHECK_S)
            quiet_since = time.monotonic()
        except queue.Empty:
            if time.monotonic() - quiet_since >= RECHECK_S:
                if store.get(job_id).finished:
                    return
                quiet_since = time.monotonic()


def _send_final(ws, job_id: str) -> None:
    ws.send(json.dumps({"type": "final", "job": store.get(job_id).to_dict()}))
    ws.close(reason=1000, message="job finished")
