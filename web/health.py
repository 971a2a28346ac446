"""Health and metrics: ``/health/live``, ``/health/ready``, ``/health/deep``, ``/metrics``."""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any, Callable

from flask import Blueprint, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from vitalq.errors import InsufficientStorage
from worker import db, devices, dispatch, storage, store
from worker.broker import KEY_PREFIX, get_redis
from worker.celery_app import app as celery_app
from worker.kinds import SELFTEST
from worker.objects import get_store
from worker.settings import get_settings

bp = Blueprint("health", __name__)

#: Seconds a deep check's result is served before another selftest job runs.
DEEP_CHECK_EVERY_S = 30
DEEP_RESULT_KEY = f"{KEY_PREFIX}health:deep"
DEEP_RUNNING_KEY = f"{KEY_PREFIX}health:deep:running"


@bp.get("/health/live")
def live():
    return jsonify({"status": "ok"})


@bp.get("/health/ready")
def ready():
    """Ready when the database is reachable and migrated, the broker answers, a worker
    consumes every queue, the data folder's disk has room for uploads and results, the
    object store answers, and (under ``vitalq up``) none of the processes it supervises is down."""
    checks = {
        "database": _check(db.ping),
        "migrations": _check(_migrations_at_head),
        "broker": _check(lambda: get_redis().ping() and None),
        "workers": _check(_every_queue_served),
        "disk": _check(_disk_has_room),
        "store": _check(lambda: get_store().check() or repr(get_store())),
        "processes": _check(_supervised_processes_up),
    }
    ok = all(check["ok"] for check in checks.values())
    return jsonify({"status": "ready" if ok else "not_ready", "checks": checks}), 200 if ok else 503


@bp.get("/health/deep")
def deep():
    """The latest selftest job run end to end, and its latency. A new one runs only when
    the last is older than DEEP_CHECK_EVERY_S, and only one at a time across every web
    process: callers meanwhile get the last result, so no number of calls (the endpoint is
    public, for load balancers) can fill a queue. ``?timeout=`` seconds, default 30."""
    timeout = min(max(request.args.get("timeout", 30.0, type=float), 1.0), 300.0)
    redis = get_redis()
    deadline = time.monotonic() + timeout + 5
    while (cached := redis.get(DEEP_RESULT_KEY)) is None:
        if redis.set(DEEP_RUNNING_KEY, "1", nx=True, ex=int(timeout) + 5):
            try:
                body = _run_selftest(timeout)
                redis.set(DEEP_RESULT_KEY, json.dumps(body), ex=DEEP_CHECK_EVERY_S)
            finally:
                redis.delete(DEEP_RUNNING_KEY)
            break
        if time.monotonic() > deadline:  # another process's check outlived its own timeout
            body = {"status": "failing", "error": {"code": "TIMEOUT", "message": "the running selftest did not "
                                                                                  "report in time"}}
            break
        time.sleep(0.1)
    else:
        body = json.loads(cached)
    body["checked_s_ago"] = round(time.time() - body.get("checked_at", time.time()), 1)
    return jsonify(body), 200 if body["status"] == "ok" else 503


def _run_selftest(timeout: float) -> dict[str, Any]:
    started = time.perf_counter()
    job = dispatch.submit(SELFTEST.name, {"duration_s": 0, "steps": 1}, priority=9)
    while not job.finished and time.perf_counter() - started < timeout:
        time.sleep(0.05)
        job = store.get(job.id)
    ok = job.status == "succeeded"
    body = {"status": "ok" if ok else "failing", "job_id": job.id, "job_status": job.status,
            "latency_s": round(time.perf_counter() - started, 4), "error": job.to_dict()["error"],
            "checked_at": time.time()}
    if not job.finished:
        body["error"] = {"code": "TIMEOUT", "message": f"the selftest job did not finish within {timeout:g} s"}
    return body


@bp.get("/metrics")
def metrics():
    return Response(generate_latest(current_app.extensions["vitalq_metrics"]), mimetype=CONTENT_TYPE_LATEST)


def _check(probe: Callable[[], Any]) -> dict[str, Any]:
    try:
        detail = probe()
    except Exception as exc:  # every failure is a finding here, not an error
        return {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, "detail": detail}


def _disk_has_room() -> dict[str, int]:
    try:
        return storage.refuse_if_disk_low()
    except InsufficientStorage as exc:  # said to an operator: which setting to look at
        raise OSError(f"{exc.message} (VITALQ_MIN_FREE_DISK_BYTES)") from None


def _supervised_processes_up() -> dict[str, Any] | str:
    """Under ``vitalq up`` on this machine, every process it supervises is running (one
    that crashed is down until its restart)."""
    try:
        report = json.loads(get_settings().supervisor_status_path.read_text())
    except (OSError, ValueError):
        return "not supervised by vitalq up"
    if report.get("host") != socket.gethostname() or not _pid_alive(report.get("supervisor_pid")):
        return "not supervised by vitalq up"  # a report left by a supervisor that is gone
    down = {name: state for name, state in report["processes"].items() if state["state"] != "running"}
    if down:
        raise RuntimeError(f"down, restarting: {json.dumps(down)}")
    return {name: state["pid"] for name, state in report["processes"].items()}


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _migrations_at_head() -> str:
    current, head = db.schema_revision()
    if current != head:
        raise RuntimeError(f"database at revision {current}, code expects {head}; run `vitalq db upgrade`")
    return head


#: The workers that answered the last check: the next one waits for that many replies,
#: not for its whole timeout (a broadcast cannot know how many workers will answer).
_workers_seen: set[str] = set()


def _every_queue_served() -> dict[str, list[str]]:
    def ask(expected: int | None) -> dict[str, list[str]]:
        replies = celery_app.control.inspect(timeout=1.0, limit=expected).active_queues() or {}
        served: dict[str, list[str]] = {queue: [] for queue in devices.queues()}
        for worker, queues in replies.items():
            for queue in queues:
                served.setdefault(queue["name"], []).append(worker)
        return served

    served = ask(len(_workers_seen) or None)
    if _workers_seen and not all(served.values()):  # a worker may have joined: hear them all
        served = ask(None)
    _workers_seen.clear()
    _workers_seen.update(worker for workers in served.values() for worker in workers)
    missing = [queue for queue, workers in served.items() if not workers]
    if missing:
        raise RuntimeError(f"no worker consumes {', '.join(missing)}")
    return served
