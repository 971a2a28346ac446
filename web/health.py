"""Health and metrics: ``/health/live``, ``/health/ready``, ``/health/deep``, ``/metrics``."""

from __future__ import annotations

import time
from typing import Any, Callable

from flask import Blueprint, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from worker import db, devices, dispatch, store
from worker.broker import get_redis
from worker.celery_app import app as celery_app
from worker.kinds import SELFTEST

bp = Blueprint("health", __name__)


@bp.get("/health/live")
def live():
    return jsonify({"status": "ok"})


@bp.get("/health/ready")
def ready():
    """Ready when the database is reachable and migrated, the broker answers, and a
    worker consumes every queue."""
    checks = {
        "database": _check(db.ping),
        "migrations": _check(_migrations_at_head),
        "broker": _check(lambda: get_redis().ping() and None),
        "workers": _check(_every_queue_served),
    }
    ok = all(check["ok"] for check in checks.values())
    return jsonify({"status": "ready" if ok else "not_ready", "checks": checks}), 200 if ok else 503


@bp.get("/health/deep")
def deep():
    """Runs a selftest job end to end (``?timeout=`` seconds, default 30) and reports its latency."""
    timeout = min(max(request.args.get("timeout", 30.0, type=float), 1.0), 300.0)
    started = time.perf_counter()
    job = dispatch.submit(SELFTEST.name, {"duration_s": 0, "steps": 1}, priority=9)
    while not job.finished and time.perf_counter() - started < timeout:
        time.sleep(0.05)
        job = store.get(job.id)
    latency = time.perf_counter() - started
    ok = job.status == "succeeded"
    body = {"status": "ok" if ok else "failing", "job_id": job.id, "job_status": job.status,
            "latency_s": round(latency, 4), "error": job.to_dict()["error"]}
    if not job.finished:
        body["error"] = {"code": "TIMEOUT", "message": f"the selftest job did not finish within {timeout:g} s"}
    return jsonify(body), 200 if ok else 503


@bp.get("/metrics")
def metrics():
    return Response(generate_latest(current_app.extensions["vitalq_metrics"]), mimetype=CONTENT_TYPE_LATEST)


def _check(probe: Callable[[], Any]) -> dict[str, Any]:
    try:
        detail = probe()
    except Exception as exc:  # every failure is a finding here, not an error
        return {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, "detail": detail}


def _migrations_at_head() -> str:
    current, head = db.schema_revision()
    if current != head:
        raise RuntimeError(f"database at revision {current}, code expects {head}; run `vitalq db upgrade`")
    return head


def _every_queue_served() -> dict[str, list[str]]:
    replies = celery_app.control.inspect(timeout=1.0).active_queues() or {}
    served: dict[str, list[str]] = {queue: [] for queue in devices.queues()}
    for worker, queues in replies.items():
        for queue in queues:
            served.setdefault(queue["name"], []).append(worker)
    missing = [queue for queue, workers in served.items() if not workers]
    if missing:
        raise RuntimeError(f"no worker consumes {', '.join(missing)}")
    return served
