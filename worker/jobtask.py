"""``JobTask``: the base class of every job kind's Celery task.

A job kind's task is a plain function of a :class:`JobContext`::

    @shared_task(base=JobTask, name="diagnostics.selftest")
    def selftest(job: JobContext) -> dict:
        job.progress(0.5, "half way")
        return {"summary": ...}

The message carries only the job id. ``JobTask`` marks the job running (counting
attempts and redeliveries), hands the function its context, and records the end:
the returned dict as the result and the files in the job folder as artifacts, or the
error with its code (and then raises JobFailed, so that Celery's events and Flower count
a failed job as a failed task). Transient faults are retried with exponential backoff and full
jitter; everything else fails at once.

PostgreSQL is the record of truth, so a worker that cannot reach it waits (see
``wait_out``) rather than lose what it has to record: a job's start, or its outcome,
already computed. Progress is written to the row only when the database answers. A
retry's new message waits out a broker that refuses it the same way.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, NoReturn, TypeVar

import redis
import kombu.exceptions
import sqlalchemy.exc
from celery import Task
from celery.exceptions import Reject, Retry, SoftTimeLimitExceeded
from celery.worker.request import Request

from vitalq.errors import InvalidInput, JobCancelled, JobFailed, JobTimeout, TransientError, VitalqError

from . import limits, logs, progress, storage, store
from .models import Job, JobStatus
from .objects import StoreUnavailable, get_store
from .settings import get_settings

log = logging.getLogger(__name__)

#: Faults of the services around a job, worth another attempt: unreachable, or Redis
#: refusing writes for now (full, a replica, loading its data; MISCONF, its disk full,
#: comes as a plain ResponseError: see ``is_transient``).
TRANSIENT_FAULTS = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.OutOfMemoryError,
                    redis.exceptions.ReadOnlyError, redis.exceptions.BusyLoadingError,
                    sqlalchemy.exc.OperationalError)


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT_FAULTS) or (isinstance(exc, redis.ResponseError)
                                                 and str(exc).startswith("MISCONF"))

T = TypeVar("T")


def wait_out(write: Callable[[], T], budget_s: float, outage: Callable[[BaseException], bool],
             service: str) -> T:
    """``write()``, tried again with backoff while it fails with an ``outage`` of
    ``service``, for up to ``budget_s`` seconds; then the error is raised."""
    deadline = time.monotonic() + budget_s
    for attempt in itertools.count():
        try:
            return write()
        except Exception as exc:
            delay = 0.2 + backoff_with_full_jitter(attempt, 0.5, 5.0)
            if not outage(exc) or time.monotonic() + delay > deadline:
                raise
            cause = getattr(exc, "orig", None) or getattr(exc, "reason", None) or exc
            log.warning("%s is unavailable (%s); trying again in %.1f s", service,
                        str(cause).strip().splitlines()[0], delay)
            time.sleep(delay)


def _database_outage(exc: BaseException) -> bool:
    return isinstance(exc, sqlalchemy.exc.OperationalError)


def _retry_refused(exc: BaseException) -> bool:
    """Celery's retry could not send its new message (the broker down or refusing writes):
    it says so with a Reject that would drop the job."""
    return isinstance(exc, Reject) and isinstance(exc.reason, kombu.exceptions.OperationalError)


class JobContext:
    """What a running job sees: its params, its input file, its folder, and progress."""

    def __init__(self, job: Job, span: tuple[float, float] = (0.0, 1.0)):
        """``job``: its row, as ``store.start`` returns it (a named tuple of its columns), or a Job."""
        settings = get_settings()
        self.id: str = job.id
        self.kind: str = job.kind
        self.params: dict[str, Any] = dict(job.params)
        #: 1 on the first run; retries and redeliveries count up.
        self.attempt: int = job.attempts
        self.input: dict[str, Any] | None = job.input
        self._input_path: Path | None = None
        #: Scratch copies of stored files (an object store's), removed by ``close``.
        self._copies: list[tempfile.TemporaryDirectory] = []
        #: What earlier stages of a multi-stage job returned (see ``JobTask.final_stage``),
        #: and the artifacts they wrote: kept whatever becomes of this stage.
        self.previous_result: dict[str, Any] = dict(job.result or {})
        #: The part of the job's progress bar this task covers (a stage of a chain covers less).
        self._span = span
        self._stage = job.progress_stage
        self._db_interval = settings.progress_db_interval_s
        self._last_saved = time.monotonic()  # the start was just written; the end carries the last progress
        self._unsaved: dict[str, Any] | None = None
        #: The disk the job's folder and scratch folders take, against its ceiling.
        self.disk = limits.DiskMeter(self._folders, settings.max_job_disk_bytes)

    @property
    def input_path(self) -> Path | None:
        """The job's input file on this machine (None if it has none): the stored file
        itself, or, from an object store, a copy made at first use in a scratch folder
        (counted against the job's disk, removed when the job ends: ``close``)."""
        if self.input is None:
            return None
        if self._input_path is None:
            copies = len(self._copies)
            self._input_path = self._on_this_machine(self.input["path"])
            if self.input.get("sha256_declared") and len(self._copies) > copies:  # a copy: check what came
                check_sha256(self._input_path, self.input["sha256"])
        return self._input_path

    def earlier_artifact(self, name: str) -> Path:
        """The artifact ``name`` an earlier stage of the job stored, on this machine (as
        ``input_path``: in place, or a scratch copy removed when the job ends)."""
        return self._on_this_machine(get_store().location(storage.artifact_key(self.id, name)))

    def _on_this_machine(self, location: str) -> Path:
        store = get_store()
        path = store.local_path(location)
        if path is None:
            self._copies.append(self.scratch())
            path = store.fetch(location, Path(self._copies[-1].name))
        return path

    def close(self) -> None:
        """Remove the scratch copies of stored files, if any were made."""
        for copy in self._copies:
            copy.cleanup()
        self._copies, self._input_path = [], None

    def progress(self, fraction: float, message: str | None = None, stage: str | None = None) -> None:
        """Report progress (``fraction`` from 0 to 1); raises JobCancelled if asked to stop.

        Every call is an event on the job's stream; the job row is updated at most
        every ``VITALQ_PROGRESS_DB_INTERVAL_S`` seconds, and the write that records the
        job's end (or its retry) carries the last progress: a short job writes its row
        twice, when it starts and when it ends.
        """
        low, high = self._span
        fraction = low + (high - low) * min(max(float(fraction), 0.0), 1.0)
        self._stage = stage or self._stage
        seq, cancel = progress.publish(self.id, progress.job_event("progress", JobStatus.RUNNING.value, fraction,
                                                                   self._stage, message))
        self._unsaved = dict(fraction=fraction, stage=self._stage, message=message, seq=seq)
        self.disk.check()
        if time.monotonic() - self._last_saved >= self._db_interval:
            self.save_progress()
        if cancel:
            raise JobCancelled("cancelled on request")

    def unsaved_progress(self) -> dict[str, Any] | None:
        """The progress not yet on the job's row, for the write that ends the job; then none."""
        unsaved, self._unsaved = self._unsaved, None
        return unsaved

    def save_progress(self) -> None:
        """Write the latest progress to the job row, if it is not there yet. The row's
        progress is a convenience (the events carry it): a database outage skips the
        write, and the job runs on."""
        if self._unsaved is None:
            return
        try:
            store.save_progress(self.id, **self._unsaved)
        except sqlalchemy.exc.OperationalError as exc:
            log.warning("job %s: progress not written to the database: %s", self.id, type(exc.orig or exc).__name__)
        else:
            self._unsaved = None
        self._last_saved = time.monotonic()

    def scratch(self) -> tempfile.TemporaryDirectory:
        """A temporary folder under the data folder, removed when the ``with`` block ends."""
        root = get_settings().data_dir / "tmp"
        root.mkdir(parents=True, exist_ok=True)
        return tempfile.TemporaryDirectory(dir=root, prefix=f"{self.id}-")

    @functools.cached_property
    def earlier_artifacts(self) -> list[dict[str, Any]] | None:
        """The artifacts earlier stages of the job stored (none for a first stage), or None
        if the object store cannot say (it is unreachable)."""
        if not self.previous_result:
            return []
        try:
            return storage.list_artifacts(self.id)
        except StoreUnavailable:
            return None

    def discard_partial_outputs(self) -> None:
        """Remove what this stage wrote; what earlier stages finished stays."""
        earlier = self.earlier_artifacts
        try:
            if earlier is None:  # which are the earlier stages' is unknown: only this machine's files go
                shutil.rmtree(storage.job_dir(self.id), ignore_errors=True)
            else:
                storage.remove_artifacts(self.id, keep=frozenset(artifact["name"] for artifact in earlier))
        except StoreUnavailable as exc:  # its local files are gone; a retry writes the same names again
            log.warning("job %s: what it stored before failing is left in the object store: %s", self.id, exc)

    def _folders(self) -> list[Path]:
        """Where the job writes: its own folder and its scratch folders."""
        return [storage.job_dir(self.id), *(get_settings().data_dir / "tmp").glob(f"{self.id}-*")]

    def artifact(self, name: str) -> Path:
        """Path to write the artifact ``name`` to; every file there is listed with the result."""
        path = storage.artifact_path(self.id, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


def check_sha256(path: Path, declared: str) -> None:
    """Raises InvalidInput if the file's SHA-256 is not ``declared`` (a direct upload's,
    which the client stated when it was offered)."""
    found = storage.file_sha256(path)
    if found != declared:
        raise InvalidInput("the uploaded file's sha256 is not the one stated when its upload was offered",
                           {"fields": {"file": "sha256 differs"}, "sha256": found})


def backoff_with_full_jitter(retries: int, base_s: float, cap_s: float) -> float:
    """Seconds to wait before retry ``retries + 1``: uniform in [0, min(cap, base * 2**retries)].

    "Full jitter" (Brooker, "Exponential Backoff And Jitter", AWS Architecture Blog,
    2015) spreads the retries of many jobs that failed together. Celery's own helper
    rounds to whole seconds, too coarse for sub-second bases.
    """
    return random.uniform(0.0, min(cap_s, base_s * 2.0**retries))


class JobRequest(Request):
    """Runs in the worker's main process, which outlives a pool child killed by a hard limit."""

    def on_timeout(self, soft: bool, timeout: float) -> None:
        super().on_timeout(soft, timeout)
        if not soft:
            storage.remove_artifacts(self.id)
            store.finish(self.id, JobStatus.FAILED,
                         error=JobTimeout(f"stopped by force at the hard time limit of {timeout:g} s"))


#: A job's record holds at most this much of its result (bytes of JSON): the web tier
#: reads records on every request, and an 81 MB result (a million-row prediction) held a
#: web worker for 5 s a read. A larger result is written whole to the artifact
#: RESULT_ARTIFACT, and the record keeps its small fields and says where the rest is.
MAX_RECORDED_RESULT_BYTES = 64 * 1024
RESULT_ARTIFACT = "result.json"
#: A field of a large result that is kept in the record is at most this large (bytes of JSON).
MAX_KEPT_FIELD_BYTES = 4096


def recorded_result(job_id: str, result: dict[str, Any]) -> dict[str, Any]:
    """What the job's record holds of ``result``: all of it if small, else its small
    top-level fields with ``{"truncated": true, "result_artifact", "result_bytes"}``,
    the whole written to the job's RESULT_ARTIFACT."""
    safe = store.json_safe(result)
    text = json.dumps(safe, separators=(",", ":"))
    if len(text) <= MAX_RECORDED_RESULT_BYTES:
        return result
    storage.artifact_path(job_id, RESULT_ARTIFACT).parent.mkdir(parents=True, exist_ok=True)
    storage.artifact_path(job_id, RESULT_ARTIFACT).write_text(text)
    kept = {key: value for key, value in safe.items()
            if len(json.dumps(value, separators=(",", ":"))) <= MAX_KEPT_FIELD_BYTES}
    return {**kept, "truncated": True, "result_artifact": RESULT_ARTIFACT, "result_bytes": len(text),
            "left_out": sorted(set(safe) - set(kept))}


class JobTask(Task):
    """Base of every job kind's task. A job of several stages (a Celery chain, see
    ``JobKind.stages``) declares on each stage's task the part of the progress bar it
    covers (``progress_span``) and whether it ends the job (``final_stage``); a stage
    that is not the last hands the job on, queued again, with its result."""

    Request = JobRequest
    throws = (JobFailed,)
    acks_late = True
    reject_on_worker_lost = True
    typing = False
    final_stage = True
    progress_span = (0.0, 1.0)

    def __call__(self, job_id: str, request_id: str | None = None) -> None:
        job_token, request_token = logs.job_id.set(job_id), logs.request_id.set(request_id)
        try:
            self._deliver(job_id)
        finally:
            logs.job_id.reset(job_token)
            logs.request_id.reset(request_token)

    def _deliver(self, job_id: str) -> None:
        settings = get_settings()
        try:
            job = self._record(lambda: store.start(job_id, worker=f"{self.request.hostname}/{os.getpid()}",
                                                   max_redeliveries=settings.max_redeliveries,
                                                   stage=None if self.progress_span == (0.0, 1.0) else self.name))
        except sqlalchemy.exc.OperationalError:
            log.error("job %s: the database stayed unreachable; the job goes back on its queue", job_id)
            raise Reject("database unreachable", requeue=True) from None
        if job is None:
            log.info("job %s is finished or unknown; delivery ignored", job_id)
            return None
        log.info("job started: %s, attempt %d", job.kind, job.attempts)
        try:
            self._run_and_record(job, settings)
        except (Retry, JobFailed):
            raise
        except Exception:  # the recording itself broke: settle the job rather than leave it running
            log.exception("job %s: recording its outcome failed", job_id)
            error = VitalqError("internal error while recording the job's outcome")
            self._record(lambda: store.finish(job_id, JobStatus.FAILED, error=error))
            raise JobFailed.of(error) from None
        return None

    def _record(self, write: Callable[[], T]) -> T:
        return wait_out(write, get_settings().database_wait_s, _database_outage, "the database")

    def _run_and_record(self, job: Job, settings) -> None:
        job_id = job.id
        context = JobContext(job, span=self.progress_span)
        try:
            context.earlier_artifacts  # read before this stage stores anything of its own
            with limits.memory_ceiling(settings.max_job_memory_bytes):
                result = self.run(context)
            context.disk.check(now=True)
            if self.final_stage:
                result = recorded_result(job_id, result or {})
            storage.publish_artifacts(job_id)
        except JobCancelled as exc:
            self._fail(context, job, JobStatus.CANCELLED, exc)
        except SoftTimeLimitExceeded:
            self._fail(context, job, JobStatus.FAILED, JobTimeout(
                f"exceeded its soft time limit of {job.soft_time_limit_s:g} s",
                {"soft_time_limit_s": job.soft_time_limit_s}))
        except VitalqError as exc:  # bad input fails at once; a device or service fault is retried
            if exc.retryable:
                self._retry(context, job, exc, settings)
            else:
                self._fail(context, job, JobStatus.FAILED, exc)
        except Exception as exc:
            if is_transient(exc):
                self._retry(context, job, TransientError(f"{type(exc).__name__}: {exc}"), settings)
            else:  # a bug: the user gets a code, the log gets the traceback
                log.exception("job %s (%s) failed", job_id, job.kind)
                self._fail(context, job, JobStatus.FAILED, VitalqError(f"internal error: {type(exc).__name__}"))
        else:
            unsaved = context.unsaved_progress()
            if self.final_stage:
                artifacts = storage.list_artifacts(job_id)
                self._record(lambda: store.finish(job_id, JobStatus.SUCCEEDED, result=result,
                                                  artifacts=artifacts, started_at=job.started_at, progress=unsaved))
            else:
                self._record(lambda: store.hand_off(job_id, result or {}, progress=unsaved))
        finally:
            context.close()

    def _fail(self, context: JobContext, job: Job, status: JobStatus, error: VitalqError) -> NoReturn:
        """Record the failure, then tell Celery. The job keeps the progress it had made, and
        what its earlier stages finished (their result and artifacts: a video.analyze whose
        risk step is refused keeps its heart rate); this stage's partial outputs go."""
        context.discard_partial_outputs()
        if context.previous_result:
            error.details = {**error.details, "finished_parts": sorted(context.previous_result)}
        unsaved = context.unsaved_progress()
        self._record(lambda: store.finish(job.id, status, error=error, artifacts=context.earlier_artifacts or None,
                                          started_at=job.started_at, progress=unsaved))
        raise JobFailed.of(error) from None

    def _retry(self, context: JobContext, job: Job, error: VitalqError, settings) -> None:
        """Retry later with backoff, or fail with the error once retries are spent."""
        job_id = job.id
        if self.request.retries >= settings.max_retries:
            error.details = {**error.details, "retries": self.request.retries}
            self._fail(context, job, JobStatus.FAILED, error)
            return
        countdown = backoff_with_full_jitter(self.request.retries, settings.retry_backoff_s, settings.retry_backoff_max_s)
        context.discard_partial_outputs()
        unsaved = context.unsaved_progress()
        self._record(lambda: store.mark_retrying(job_id, error, progress=unsaved))
        log.warning("job %s: %s; retry %d in %.1f s", job_id, error.message, self.request.retries + 1, countdown)
        wait_out(lambda: self._send_retry(countdown, settings.max_retries), settings.database_wait_s,
                 _retry_refused, "the broker")

    def _send_retry(self, countdown: float, max_retries: int) -> NoReturn:
        raise self.retry(countdown=countdown, max_retries=max_retries)  # Retry, once the message is sent
