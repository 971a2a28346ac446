"""Submitting a job: validate, store the upload, record the job, then queue it.

Validation comes first and is complete (kind, params against the kind's schema,
priority, upload format), so an invalid job is refused with nothing stored or queued.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
import time
from typing import Any, Callable

import kombu.exceptions
import redis
from celery import chain

from vitalq.errors import (EmptyInput, InvalidInput, JobCancelled, NotFound, QueueFull, RateLimited, TooLarge,
                           Unavailable, UnsupportedFormat, VitalqError)

from . import logs, store
from .celery_app import app, queue_depths
from .kinds import get_kind
from .models import Job, JobStatus
from .settings import get_settings
from .storage import DirectUpload, UploadSink, input_exists, plain_suffix, refuse_if_disk_low, remove_artifacts

log = logging.getLogger(__name__)

PRIORITY_RANGE = range(0, 10)
DEFAULT_PRIORITY = 5


def parse_priority(value: Any) -> int:
    """A job priority from 0 (least urgent) to 9 (most urgent); raises InvalidInput."""
    if value is None or value == "":
        return DEFAULT_PRIORITY
    # ASCII digits only: str.isdigit() takes "²" and "٣", which int() refuses or reads.
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]{1,3}\s*", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value not in PRIORITY_RANGE:
        raise InvalidInput("priority must be an integer from 0 (least urgent) to 9 (most urgent)",
                           {"fields": {"priority": "must be an integer from 0 to 9"}})
    return value


#: Jobs one batch submission may hold.
MAX_BATCH = 100


def submit_many(entries: Any, owner_id: int | None = None, admin: bool = False) -> list[Job]:
    """Validate and queue several jobs without files (``[{"kind", "params", "priority"}]``),
    all or none: one check of the caps, one INSERT, one Redis pipeline of their messages.

    Raises InvalidInput naming the first bad entry by its ``index``, RateLimited,
    QueueFull, or Unavailable: the broker failed the pipeline, so any of its messages
    may or may not be queued; every job of the batch is then recorded failed, and a
    message that did arrive finds its job finished and is dropped (see ``store.start``;
    a job a worker had already begun ends failed too, its result not recorded).
    """
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_BATCH:
        raise InvalidInput(f"jobs must be a list of 1 to {MAX_BATCH} jobs", {"fields": {"jobs": "1 to 100 jobs"}})
    prepared = []
    for index, entry in enumerate(entries):
        try:
            if not isinstance(entry, dict) or set(entry) - {"kind", "params", "priority"}:
                raise InvalidInput("a job is an object of kind, params and priority", {"fields": {"job": "malformed"}})
            kind = get_kind(entry.get("kind"))
            kind.check_role(entry.get("params"), admin or owner_id is None)
            if kind.upload is not None and kind.upload.required:
                raise InvalidInput(f"{kind.name} needs a file: submit it on its own", {"fields": {"file": "required"}})
            params = kind.validate({} if entry.get("params") is None else entry["params"], None)
            prepared.append((kind, params, parse_priority(entry.get("priority"))))
        except VitalqError as exc:
            exc.message, exc.details = f"job {index}: {exc.message}", {**exc.details, "index": index}
            raise
    refuse_if_disk_low()
    refuse_if_too_many_waiting(owner_id, adding=len(prepared))
    for queue, adding in collections.Counter(kind.queue_for(params) for kind, params, _ in prepared).items():
        refuse_if_queue_full(queue, adding)
    jobs = store.create_many([_job_row(kind, params, priority, owner_id) for kind, params, priority in prepared])
    try:
        # kombu's publish batch holds the messages and sends them in one pipeline as the
        # block ends (50 jobs: one round trip instead of 50).
        with app.producer_or_acquire() as producer, producer.batch():
            for job in jobs:
                enqueue(job, producer=producer)
    except (Unavailable, *BROKER_FAULTS) as exc:
        log.error("a batch of %d jobs not queued: the broker failed: %s", len(jobs), exc.__cause__ or exc)
        error = exc if isinstance(exc, Unavailable) else _not_queued()
        for job in jobs:
            store.finish(job.id, JobStatus.FAILED, error=error)
        raise error from None
    return jobs


def submit(kind_name: Any, params: Any, priority: Any = None, upload: UploadSink | DirectUpload | None = None,
           filename: str | None = None, owner_id: int | None = None, admin: bool = False) -> Job:
    """Validate and queue a job; returns it as recorded. A job with an owner is one a user
    submitted, an admin if ``admin``; without one, the platform's own (beat, health).

    Raises Forbidden (a kind or param for admins only), InvalidInput, UnsupportedFormat
    (a file the kind does not take), RateLimited (the owner has
    ``VITALQ_MAX_QUEUED_PER_USER`` jobs waiting), QueueFull, or Unavailable (the broker
    cannot be reached: the job is recorded as failed, not left queued with no message
    behind it).
    """
    kind = get_kind(kind_name)
    kind.check_role(params, admin or owner_id is None)
    refuse_if_disk_low()
    priority = parse_priority(priority)
    if upload is not None and kind.upload is None:
        raise InvalidInput(f"{kind.name} takes no file", {"fields": {"file": "this job kind takes no file"}})
    if upload is None and kind.upload is not None and kind.upload.required:
        raise InvalidInput(f"{kind.name} needs a file", {"fields": {"file": "a file is required"}})
    if upload is not None:
        suffix = plain_suffix(filename)
        if kind.upload.formats and not kind.upload.by_content and suffix not in kind.upload.formats:
            raise UnsupportedFormat(
                f"{kind.name} takes {', '.join(kind.upload.formats)} files, not {suffix or 'this file'}",
                {"fields": {"file": "unsupported format"}, "accepted": list(kind.upload.formats)})
        if upload.size == 0:
            raise EmptyInput("the uploaded file is empty", {"fields": {"file": "is empty"}})
        if kind.upload.max_bytes is not None and upload.size > kind.upload.max_bytes:
            raise TooLarge(f"{kind.name} takes files of at most {kind.upload.max_bytes} bytes",
                           {"fields": {"file": "too large"}, "limit_bytes": kind.upload.max_bytes})
    params = kind.validate({} if params is None else params, upload.path if upload is not None else None)
    refuse_if_too_many_waiting(owner_id)
    refuse_if_queue_full(kind.queue_for(params))
    stored = upload.commit(filename) if upload is not None else None
    job = store.create(**_job_row(kind, params, priority, owner_id, stored.to_record() if stored else None))
    enqueue(job)
    return job


def resubmit(job_id: str, priority: Any = None, owner_id: int | None = None) -> Job:
    """A new job with the kind, params, input file and (unless given) priority of the
    finished job ``job_id``. Raises NotFound, or InvalidInput for a job still live."""
    original = store.get(job_id)
    if not original.finished:
        raise InvalidInput("the job has not finished; cancel it first to run it again",
                           {"fields": {"job": "still " + original.status}})
    kind = get_kind(original.kind)
    priority = original.priority if priority is None else parse_priority(priority)
    stored = original.input
    if stored is not None and not input_exists(stored):
        raise NotFound("the job's input file is no longer stored; submit it again")
    refuse_if_too_many_waiting(owner_id)
    refuse_if_queue_full(original.queue)
    job = store.create(**_job_row(kind, original.params, priority, owner_id, stored))
    enqueue(job)
    return job


class RecentCounts:
    """Counts a process trusts for ``memory_s`` seconds, adding what it queued
    meanwhile: a submission costs no count of the backlog, and a cap is exact within a
    process (the count is taken again whenever the cap looks reached); other processes'
    submissions are seen within ``memory_s``."""

    def __init__(self, memory_s: float = 1.0):
        self.memory_s = memory_s
        self._seen: dict[Any, list] = {}

    def count(self, key: Any, adding: int, limit: int, take: Callable[[], int]) -> int:
        """The count for ``key``: remembered, or ``take()`` when stale or when ``adding``
        more would pass ``limit``."""
        seen = self._seen.get(key)
        if seen is None or time.monotonic() - seen[0] > self.memory_s or seen[1] + adding > limit:
            seen = self._seen[key] = [time.monotonic(), take()]
        return seen[1]

    def add(self, key: Any, adding: int) -> None:
        self._seen[key][1] += adding


_waiting_counts = RecentCounts()
_queue_depths = RecentCounts()


def refuse_if_too_many_waiting(owner_id: int | None, adding: int = 1) -> None:
    """A cap on the jobs one user has waiting (RateLimited, 429), ``adding`` more."""
    if owner_id is None:
        return
    limit = get_settings().max_queued_per_user
    waiting = _waiting_counts.count(owner_id, adding, limit, lambda: store.count_waiting(owner_id, up_to=limit))
    if waiting + adding > limit:
        raise RateLimited(f"you have {waiting} jobs waiting, the most allowed; wait for some to start",
                          {"waiting": waiting, "limit": limit}, retry_after_s=30)
    _waiting_counts.add(owner_id, adding)


def refuse_if_queue_full(queue: str, adding: int = 1) -> None:
    """Backpressure: raise QueueFull (503, Retry-After) when ``queue`` would hold more than
    ``VITALQ_MAX_QUEUE_DEPTH`` waiting jobs, rather than let jobs pile up."""
    settings = get_settings()
    limit, key = settings.max_queue_depth, (settings.redis_url, queue)
    try:
        depth = _queue_depths.count(key, adding, limit, lambda: queue_depths((queue,))[queue])
    except redis.RedisError as exc:
        raise Unavailable("the broker cannot be reached; submit the job again later") from exc
    if depth + adding > limit:
        raise QueueFull(f"queue {queue} holds {depth} waiting jobs, its limit; try again later",
                        {"queue": queue, "depth": depth, "limit": limit})
    _queue_depths.add(key, adding)


def _job_row(kind, params: dict[str, Any], priority: int, owner_id: int | None,
             input_record: dict[str, Any] | None = None) -> dict[str, Any]:
    """A job to record (``store.create``'s arguments): its queue, and its time limits from
    the kind, scaled to the stored input, kept under the visibility timeout."""
    soft, hard = capped_time_limits(*kind.limits_for(params, input_record["size"] if input_record else None))
    return dict(kind=kind.name, params=params, priority=priority, queue=kind.queue_for(params),
                soft_time_limit_s=soft, time_limit_s=hard, input_record=input_record, owner_id=owner_id)


def capped_time_limits(soft: float, hard: float) -> tuple[float, float]:
    """Time limits kept under the broker's visibility timeout, which would otherwise hand
    a job that is still running to a second worker."""
    ceiling = get_settings().visibility_timeout_s - 60
    if hard <= ceiling:
        return soft, hard
    return min(soft, ceiling - 30), ceiling


#: What a publish raises when the broker cannot take it (a publish batch's pipeline
#: failing says so with BatchPublishError: delivery uncertain).
BROKER_FAULTS = (kombu.exceptions.OperationalError, kombu.exceptions.BatchPublishError, redis.RedisError)


def _not_queued() -> Unavailable:
    return Unavailable("the broker cannot be reached; the job was not queued, submit it again later")


def enqueue(job: Job, producer=None) -> None:
    """Send the job's message, carrying only its id; the task id is the job id.
    (``producer``: one Celery producer, and its connection, for several messages.)"""
    # Redis serves priority 0 first; the API's 9 is the most urgent. Every stage of a
    # chain carries the job id as its task id, so that a forced cancel reaches any of them.
    options = dict(task_id=job.id, queue=job.queue, priority=9 - job.priority,
                   soft_time_limit=job.soft_time_limit_s, time_limit=job.time_limit_s)
    kind = get_kind(job.kind)
    stages = kind.stages or (job.kind,)
    try:
        # The web request's id travels with the message, so the worker's logs carry it too.
        kwargs = {"request_id": logs.request_id.get()}
        retry = dict(retry=True, retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5})
        if len(stages) == 1:  # most kinds: a chain of one would cost its machinery for nothing
            # Flower shows the arguments as these strings (an id, a dict of one id):
            # Celery's saferepr makes the same ones for about 20 µs a message.
            app.send_task(stages[0], args=[job.id], kwargs=kwargs, producer=producer, **options, **retry,
                          argsrepr=repr([job.id]), kwargsrepr=repr(kwargs))
        else:
            later = {"queue": kind.later_stages_queue} if kind.later_stages_queue else {}
            chain(*(app.signature(stage, args=[job.id], kwargs=kwargs, immutable=True,
                                  **{**options, **(later if position else {})})
                    for position, stage in enumerate(stages))).apply_async(**retry)
    except BROKER_FAULTS as exc:
        log.error("job %s not queued: broker unreachable: %s", job.id, exc)
        error = _not_queued()
        store.finish(job.id, JobStatus.FAILED, error=error)
        raise error from exc
    log.info("job queued: %s on %s at priority %d", job.kind, job.queue, job.priority, extra={"job_id": job.id})


def cancel(job_id: str) -> Job:
    """Cancel a job. A queued job never starts; a running one stops at its next progress
    point, and if it has not stopped ``VITALQ_CANCEL_GRACE_S`` seconds later, its
    process is killed: by a timer here, and should this process be gone by then, by the
    reconciler (``worker.reconcile``), which finds the request on the job's row. Raises
    NotFound or JobFinished.
    """
    job, running = store.request_cancel(job_id)
    if running:
        timer = threading.Timer(get_settings().cancel_grace_s, kill_if_still_running, args=(job_id,))
        timer.daemon = True
        timer.start()
    else:
        app.control.revoke(job_id)  # a worker holding the message drops it unseen
    return job


def kill_if_still_running(job_id: str) -> None:
    """The last resort of a cancel: the job ignored its cancel flag (it reached no progress point)."""
    try:
        if store.get(job_id).finished:
            return
    except NotFound:  # deleted meanwhile
        return
    log.warning("job %s did not stop within the grace period; killing its process", job_id)
    app.control.revoke(job_id, terminate=True, signal="SIGKILL")
    remove_artifacts(job_id)
    store.finish(job_id, JobStatus.CANCELLED,
                 error=JobCancelled("cancelled; its process was stopped by force after the grace period"))
