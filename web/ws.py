"""``/ws/jobs/<id>``: a job's progress, live.

On connect the client gets ``{"type": "snapshot", "job": {...}}``, then each event in
order (``{"type": "progress" | "status", "seq": n, ...}``), then
``{"type": "final", "job": {...}}`` once the job has finished, and the socket closes.
A client that reconnects passes ``?after=<last seq it saw>`` and misses nothing: the
events are kept on the job's stream (see ``worker.progress``).
"""

from __future__ import annotations

import json
import time

from flask import request
from flask_sock import Sock

from worker import progress, store
from worker.exceptions import NotFound
from worker.models import FINISHED, JobStatus

from .auth import visible

#: How long one wait for new events lasts; also how often a quiet job's row is re-read.
POLL_MS = 1000
RECHECK_S = 5.0


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
    if job.finished and after is None:
        _send_final(ws, job_id)
        return

    last_seq = job.progress_seq if after is None else after
    position, last_check = "0-0", time.monotonic()
    while True:
        events = progress.read(job_id, after=position, block_ms=POLL_MS)
        for position, event in events:
            if event["seq"] <= last_seq:
                continue
            last_seq = event["seq"]
            ws.send(json.dumps(event))
            if event["type"] == "status" and JobStatus(event["status"]) in FINISHED:
                _send_final(ws, job_id)
                return
        # A status event can be missed if Redis was away when it was published: the row decides.
        if not events and time.monotonic() - last_check > RECHECK_S:
            last_check = time.monotonic()
            if store.get(job_id).finished:
                _send_final(ws, job_id)
                return


def _send_final(ws, job_id: str) -> None:
    ws.send(json.dumps({"type": "final", "job": store.get(job_id).to_dict()}))
    ws.close(reason=1000, message="job finished")
