"""``diagnostics.selftest``, the job that exercises the whole path, and
``diagnostics.noop``, the job that does nothing."""

from __future__ import annotations

from typing import Any

from vitalq.errors import InvalidInput

from .base import JobKind, Upload, register


def _selftest_limits(params: dict[str, Any]) -> tuple[float, float]:
    """The soft limit asked for or, by default, one that fits the work asked for (a 75 s
    selftest is not cut off at 60 s); the hard limit 30 s later unless asked for."""
    soft = params.get("soft_time_limit_s") or max(60.0, params["duration_s"] + params["blocking_s"] + 30.0)
    return soft, params.get("hard_time_limit_s") or soft + 30


def _check_selftest(params: dict[str, Any]) -> None:
    hard = params.get("hard_time_limit_s")
    if hard is not None and hard <= _selftest_limits(params)[0]:
        raise InvalidInput("the hard time limit must be above the soft one",
                           {"fields": {"hard_time_limit_s": "must exceed soft_time_limit_s"}})

SELFTEST = register(
    JobKind(
        name="diagnostics.selftest",
        title="Self-test",
        description=(
            "Exercises the whole path of a job: a worker picks it up, computes, reports "
            "progress, writes an artifact and finishes. The deep health check runs it."
        ),
        params_schema={
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "duration_s": {
                    "type": "number", "minimum": 0, "maximum": 600, "default": 0.2,
                    "description": "Time spent working, in seconds, spread over the steps.",
                },
                "steps": {
                    "type": "integer", "minimum": 1, "maximum": 1000, "default": 5,
                    "description": "Progress points reported along the way.",
                },
                "blocking_s": {
                    "type": "number", "minimum": 0, "maximum": 600, "default": 0,
                    "description": "Seconds spent at the start with no progress point, "
                                   "as a computation that cannot be interrupted would.",
                },
                "transient_failures": {
                    "type": "integer", "minimum": 0, "maximum": 10, "default": 0,
                    "description": "Fail with a transient fault on this many first attempts "
                                   "(each is retried with backoff).",
                },
                "soft_time_limit_s": {
                    "type": "number", "minimum": 1, "maximum": 3600,
                    "description": "Soft time limit of this job, in seconds (default: 60, or the work asked "
                                   "for and 30 s more).",
                },
                "hard_time_limit_s": {
                    "type": "number", "minimum": 2, "maximum": 3630,
                    "description": "Hard time limit, in seconds (default: the soft limit + 30).",
                },
                "ignore_soft_limit": {
                    "type": "boolean", "default": False,
                    "description": "Carry on past the soft limit, as a stuck computation would, "
                                   "until the hard limit stops the process.",
                },
                "allocate_bytes": {
                    "type": "integer", "minimum": 0, "maximum": 64 * 1024**3, "default": 0,
                    "description": "Bytes of memory to fill, as a computation on a large input would "
                                   "(beyond the job memory ceiling: MEMORY_LIMIT).",
                },
                "write_bytes": {
                    "type": "integer", "minimum": 0, "maximum": 64 * 1024**3, "default": 0,
                    "description": "Bytes to write to an artifact, a progress point every 8 MiB, as a "
                                   "large output would (beyond the job disk ceiling: DISK_LIMIT).",
                },
            },
        },
        soft_time_limit_s=60,
        time_limit_s=90,
        time_limits=lambda params, _upload: _selftest_limits(params),
        check=lambda params, _upload: _check_selftest(params),
        upload=Upload(required=False, formats=()),
        # Each holds a worker or fails on purpose: a user could keep a worker for an hour.
        admin_params=frozenset({"blocking_s", "transient_failures", "soft_time_limit_s", "hard_time_limit_s",
                                "ignore_soft_limit", "allocate_bytes", "write_bytes"}),
        main_params=("duration_s", "steps"),
    )
)

NOOP = register(
    JobKind(
        name="diagnostics.noop",
        title="No-op",
        description=(
            "Does nothing and succeeds with an empty result: what the platform itself costs "
            "a job (its record, delivery, events and logs), which bench/queue.py measures beside "
            "a no-op Celery task; or a check that a queue's worker answers."
        ),
        params_schema={"type": "object", "additionalProperties": False, "properties": {}},
        soft_time_limit_s=10,
        time_limit_s=20,
    )
)
