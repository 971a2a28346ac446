"""The job store: every change of a job's record, each an atomic, conditional update.

Status changes are guarded by the status they leave (``UPDATE ... WHERE status IN``),
so a job is started by one delivery and finished exactly once, whatever races between
the web tier, a worker and a redelivered message. After each change that a watcher
cares about, a status event goes on the job's progress stream (``worker.progress``).
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Iterable

import redis
from sqlalchemy import bindparam, case, func, literal, or_, select, update

from vitalq.errors import JobCancelled, JobFinished, JobLive, NotFound, VitalqError, WorkerLost

from . import progress
from .db import autocommit, execute_prepared, get_engine, session_scope
from .models import FINISHED, STARTABLE, Job, JobStatus, utcnow

log = logging.getLogger(__name__)


def _values(statuses: Iterable[JobStatus]) -> list[str]:
    return [status.value for status in statuses]


# The writes of every job's start and end are Core statements built once, with their
# values bound by name: building a statement and its cache key each time cost a short
# job's worker more CPU than running it. Each is atomic on its own, runs without a
# transaction around it (``db.autocommit``), and on PostgreSQL as a prepared statement
# (``db.execute_prepared``).
_jobs = Job.__table__


def _status_in(statuses: Iterable[JobStatus]):
    # Equalities, not IN: SQLAlchemy renders an IN list again at every execution.
    return or_(*(_jobs.c.status == literal(status.value) for status in statuses))


_INSERT = _jobs.insert().returning(*_jobs.c, sort_by_parameter_order=True)
_RUN = dict(status=JobStatus.RUNNING.value, attempts=_jobs.c.attempts + 1, started_at=bindparam("now"),
            worker=bindparam("worker_name"), updated_at=bindparam("now"))
# The next stage of a job handed on by the last (queued, carrying a result) goes on with
# the same attempt, and the job's run time counts from its first stage.
_next_stage = (_jobs.c.status == JobStatus.QUEUED.value) & _jobs.c.result.is_not(None)
_START = (_jobs.update().where(_jobs.c.id == bindparam("job_id"), _status_in(STARTABLE))
          .values(**{**_RUN, "attempts": case((_next_stage, _jobs.c.attempts), else_=_jobs.c.attempts + 1),
                     "started_at": case((_next_stage, _jobs.c.started_at), else_=bindparam("now"))})
          .returning(*_jobs.c))
_START_AGAIN = (_jobs.update().where(_jobs.c.id == bindparam("job_id"), _jobs.c.status == JobStatus.RUNNING.value,
                                     _jobs.c.redeliveries < bindparam("max_redeliveries"))
                .values(redeliveries=_jobs.c.redeliveries + 1, **_RUN).returning(*_jobs.c))
_SAVE_PROGRESS = (_jobs.update().where(_jobs.c.id == bindparam("job_id"), _jobs.c.progress_seq < bindparam("seq"))
                  .values(progress_fraction=bindparam("fraction"), progress_stage=bindparam("stage"),
                          progress_message=bindparam("message"), progress_seq=bindparam("seq")))


@lru_cache(maxsize=None)
def _finish_statement(columns: tuple[str, ...]):
    """The UPDATE that ends an unfinished job, setting ``columns`` (each bound as
    ``set_<column>``), returning what the log and the status event need."""
    return (_jobs.update().where(_jobs.c.id == bindparam("job_id"), ~_status_in(FINISHED))
            .values({column: bindparam(f"set_{column}") for column in columns})
            .returning(_jobs.c.id, _jobs.c.status, _jobs.c.error_code, _jobs.c.run_seconds,
                       _jobs.c.progress_fraction, _jobs.c.progress_stage, _jobs.c.progress_message))


def _announce(job, message: str | None = None) -> None:
    """Publish the job's new status (``job``: a Job, or a row with its status and
    progress), with ``message`` or the job's progress message: every status event of a
    job comes from here, as its status changes on its row."""
    # The row is the record of truth and is already committed; a watcher that misses
    # this event while Redis is away still sees the change (web.ws re-reads the row).
    try:
        progress.publish(job.id, progress.job_event("status", job.status, job.progress_fraction, job.progress_stage,
                                                    message or job.progress_message))
    except redis.RedisError as exc:
        log.warning("job %s is %s, but its status event was not published: %s", job.id, job.status, exc)


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as null: JSON has no such numbers, and
    PostgreSQL refuses them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def _seconds_since(start: datetime | None, end: datetime) -> float | None:
    if start is None:
        return None
    if start.tzinfo is None:  # SQLite gives back naive UTC
        start = start.replace(tzinfo=timezone.utc)
    return (end - start).total_seconds()


def create(*, kind: str, params: dict[str, Any], priority: int, queue: str,
           soft_time_limit_s: float, time_limit_s: float, input_record: dict[str, Any] | None,
           owner_id: int | None = None) -> Job:
    """Insert a queued job and return it."""
    return create_many([dict(kind=kind, params=params, priority=priority, queue=queue, input_record=input_record,
                             owner_id=owner_id, soft_time_limit_s=soft_time_limit_s, time_limit_s=time_limit_s)])[0]


def create_many(rows: list[dict[str, Any]]) -> list[Job]:
    """Insert queued jobs (each as ``create`` takes them), all or none, and return them
    in order."""
    values = [dict(kind=row["kind"], params=row["params"], priority=row["priority"], queue=row["queue"],
                   input=row["input_record"], owner_id=row["owner_id"], soft_time_limit_s=row["soft_time_limit_s"],
                   time_limit_s=row["time_limit_s"], status=JobStatus.QUEUED.value, progress_fraction=0.0,
                   progress_seq=0, artifacts=[], attempts=0, redeliveries=0, cancel_requested=False)
              for row in rows]
    # One row is one atomic statement; SQLAlchemy may send many as several, so they
    # share a transaction.
    with autocommit() if len(values) == 1 else get_engine().begin() as connection:
        return [Job(**row._mapping) for row in connection.execute(_INSERT, values)]


def get(job_id: str) -> Job:
    """The job ``job_id``; raises NotFound."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        return job


def find(*, kind: str | None = None, status: str | None = None, owner_id: int | None = None, limit: int = 50,
         offset: int = 0) -> tuple[list[Job], int]:
    """Jobs newest first, filtered by kind, status and owner, and how many match in all."""
    query = select(Job)
    if owner_id is not None:
        query = query.where(Job.owner_id == owner_id)
    if kind:
        query = query.where(Job.kind == kind)
    if status:
        query = query.where(Job.status == status)
    with session_scope() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery()))
        jobs = session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit).offset(offset)).all()
        return list(jobs), int(total or 0)


def start(job_id: str, *, worker: str, max_redeliveries: int, stage: str | None = None) -> tuple | None:
    """Mark the job running for this delivery and return its row (a named tuple of a
    Job's columns), or return None if it must not run. Its status event names the
    attempt, and ``stage``, the task of a chain's stage that starts.

    A job already finished (a redelivered message, a job cancelled while queued) is
    not run again. A job found still ``running`` was abandoned by a worker that died:
    it is counted as a redelivery and run again, until ``max_redeliveries`` is
    exceeded, when it fails with ``WORKER_LOST``.
    """
    bound = dict(job_id=job_id, now=utcnow(), worker_name=worker, max_redeliveries=max_redeliveries)
    # Not durable on its own: the job's end is (see db.autocommit). A crash of the database
    # during the run can forget only the start: the job, its message still unacknowledged,
    # is started again or its end recorded all the same, with one attempt fewer counted.
    with autocommit(durable=False) as connection:
        started = execute_prepared(connection, _START, bound) or execute_prepared(connection, _START_AGAIN, bound)
        status = None if started else connection.scalar(select(_jobs.c.status).where(_jobs.c.id == job_id))
    if started:
        _announce(started[0], f"attempt {started[0].attempts}" + (f", stage {stage}" if stage else ""))
        return started[0]
    if status is None or JobStatus(status).finished:
        return None
    # Running, and redelivered more times than allowed: its worker keeps dying.
    finish(job_id, JobStatus.FAILED, error=WorkerLost(
        f"the worker running this job died {max_redeliveries + 1} times; giving up",
        {"redeliveries": max_redeliveries + 1}))
    return None


def save_progress(job_id: str, *, fraction: float, stage: str | None, message: str | None, seq: int) -> None:
    with autocommit(durable=False) as connection:  # the events carry it; the job's end writes the last
        connection.execute(_SAVE_PROGRESS, dict(job_id=job_id, fraction=fraction, stage=stage, message=message, seq=seq))


def _progress_values(progress: dict[str, Any] | None) -> dict[str, Any]:
    """Columns for a job's last progress (``JobContext.unsaved_progress``), if any."""
    if not progress:
        return {}
    return dict(progress_fraction=progress["fraction"], progress_stage=progress["stage"],
                progress_message=progress["message"], progress_seq=progress["seq"])


def hand_off(job_id: str, result: dict[str, Any], progress: dict[str, Any] | None = None) -> None:
    """A stage of a multi-stage job is done: the job waits, queued, for its next stage,
    carrying what this one returned."""
    with session_scope() as session:
        done = session.execute(
            update(Job).where(Job.id == job_id, Job.status == JobStatus.RUNNING.value)
            .values(status=JobStatus.QUEUED.value, result=json_safe(result), **_progress_values(progress))
        ).rowcount
        job = session.get(Job, job_id, populate_existing=True) if done else None
    if job is not None:
        _announce(job)


def mark_retrying(job_id: str, error: VitalqError, progress: dict[str, Any] | None = None) -> None:
    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is None or job.finished:
            return
        job.status = JobStatus.RETRYING.value
        reported = error.to_dict()
        job.error_code, job.error_message, job.error_details = reported["code"], reported["message"], reported["details"]
        for column, value in _progress_values(progress).items():
            setattr(job, column, value)
    _announce(job)


def finish(job_id: str, status: JobStatus, *, result: dict[str, Any] | None = None,
           artifacts: list[dict[str, Any]] | None = None, error: VitalqError | None = None,
           started_at: datetime | None = None, progress: dict[str, Any] | None = None) -> bool:
    """Record the job's end, once: returns False if it had already finished.

    ``started_at``, when the caller knows it, spares reading the row first; ``progress``
    is the last progress not yet written (one write for both)."""
    now = utcnow()
    with autocommit() as connection:
        if started_at is None:
            known = connection.execute(select(_jobs.c.started_at).where(_jobs.c.id == job_id)).first()
            if known is None:
                return False
            started_at = known.started_at
        values: dict[str, Any] = dict(status=status.value, finished_at=now, updated_at=now,
                                      run_seconds=_seconds_since(started_at, now), **_progress_values(progress))
        if status == JobStatus.SUCCEEDED:
            values.update(result=json_safe(result), artifacts=artifacts or [], progress_fraction=1.0,
                          error_code=None, error_message=None, error_details=None)
        elif error is not None:
            reported = error.to_dict()
            values.update(error_code=reported["code"], error_message=reported["message"],
                          error_details=json_safe(reported["details"]))
            if artifacts is not None:  # what earlier stages finished, kept
                values["artifacts"] = artifacts
        ended = execute_prepared(connection, _finish_statement(tuple(sorted(values))),
                                  {"job_id": job_id, **{f"set_{column}": value for column, value in values.items()}})
        if not ended:
            return False
        job = ended[0]
    log.info("job %s: %s", job.status, job.error_code or f"{job.run_seconds or 0:.2f} s",
             extra={"job_id": job_id, "status": job.status, "error_code": job.error_code, "run_seconds": job.run_seconds})
    _announce(job)
    return True


def request_cancel(job_id: str) -> tuple[Job, bool]:
    """Cancel a job: a queued one at once, a running one at its next progress point.

    Returns the job and whether it was still running (its task must be told, and
    stopped by force if it does not listen). Raises NotFound, or JobFinished.
    """
    cancelled = JobCancelled("cancelled before it started")
    with session_scope() as session:
        if session.get(Job, job_id) is None:
            raise NotFound(f"no job {job_id!r}")
        queued = session.execute(
            update(Job).where(Job.id == job_id, Job.status.in_(_values(STARTABLE))).values(cancel_requested=True)
        ).rowcount
    if queued and finish(job_id, JobStatus.CANCELLED, error=cancelled):
        return get(job_id), False
    with session_scope() as session:
        running = session.execute(
            # When it was asked: a job still running, its row unmoved, a grace period later
            # ignored it (``worker.reconcile``).
            update(Job).where(Job.id == job_id, Job.status == JobStatus.RUNNING.value)
            .values(cancel_requested=True, updated_at=utcnow())
        ).rowcount
    if not running:
        job = get(job_id)
        raise JobFinished(f"job {job_id} has already finished ({job.status})", {"status": job.status})
    progress.request_cancel(job_id)
    return get(job_id), True


def delete(job_id: str) -> dict[str, Any] | None:
    """Delete a finished job's record; returns its input record (None if it had no file).
    Raises NotFound, or JobLive for a job not finished."""
    with session_scope() as session:
        deleted = session.execute(_jobs.delete().where(_jobs.c.id == job_id, _jobs.c.status.in_(_values(FINISHED)))
                                  .returning(_jobs.c.input)).first()
        if deleted is not None:
            return deleted.input
        job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id!r}")
    raise JobLive(f"job {job_id} is {job.status}; cancel it first", {"status": job.status})


def delete_finished_before(cutoff: datetime, limit: int = 500) -> list[tuple[str, dict[str, Any] | None]]:
    """Delete up to ``limit`` jobs finished before ``cutoff``; returns their ids and input records."""
    oldest = (select(_jobs.c.id).where(_jobs.c.status.in_(_values(FINISHED)), _jobs.c.finished_at < cutoff)
              .order_by(_jobs.c.finished_at).limit(limit))
    with session_scope() as session:
        rows = session.execute(_jobs.delete().where(_jobs.c.id.in_(oldest.scalar_subquery()))
                               .returning(_jobs.c.id, _jobs.c.input))
        return [(row.id, row.input) for row in rows]


def inputs_in_use(paths: Iterable[str]) -> set[str]:
    """Which of these upload paths a job still refers to."""
    paths = list(paths)
    if not paths:
        return set()
    stored_path = Job.input["path"].as_string()
    with session_scope() as session:
        return set(session.scalars(select(stored_path).where(stored_path.in_(paths)).distinct()))


def known_ids(job_ids: Iterable[str]) -> set[str]:
    """Which of these job ids have a record."""
    with session_scope() as session:
        return set(session.scalars(select(Job.id).where(Job.id.in_(list(job_ids)))))


def running_ids(job_ids: Iterable[str]) -> set[str]:
    """Which of these job ids are of jobs not finished."""
    with session_scope() as session:
        return set(session.scalars(select(Job.id).where(Job.id.in_(list(job_ids)),
                                                        Job.status.not_in(_values(FINISHED)))))


def counts_by_kind_and_status() -> list[tuple[str, str, int]]:
    with session_scope() as session:
        rows = session.execute(select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status))
        return [(kind, status, int(count)) for kind, status, count in rows]


def run_seconds_histogram(buckets: Iterable[float]) -> dict[str, tuple[list[int], int, float]]:
    """Per kind: (cumulative counts of finished jobs at or under each bucket, count, sum of seconds)."""
    buckets = list(buckets)
    columns = [func.sum(case((Job.run_seconds <= bound, 1), else_=0)) for bound in buckets]
    with session_scope() as session:
        rows = session.execute(
            select(Job.kind, func.count(), func.sum(Job.run_seconds), *columns)
            .where(Job.run_seconds.is_not(None)).group_by(Job.kind)
        )
        return {row[0]: ([int(c or 0) for c in row[3:]], int(row[1]), float(row[2] or 0.0)) for row in rows}


def count_waiting(owner_id: int, up_to: int) -> int:
    """Jobs of ``owner_id`` not yet started (queued or retrying), counted up to ``up_to``
    (a cap only needs to know whether it is reached: no scan of a long backlog)."""
    waiting = select(Job.id).where(Job.owner_id == owner_id, Job.status.in_(_values(STARTABLE))).limit(up_to)
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(waiting.subquery())) or 0)


def waiting_jobs(kind: str, **params: str) -> list[str]:
    """Ids of the jobs of ``kind`` not yet started (queued or retrying) whose params
    have these string values."""
    query = select(Job.id).where(Job.kind == kind, Job.status.in_(_values(STARTABLE)))
    for name, value in params.items():
        query = query.where(Job.params[name].as_string() == value)
    with session_scope() as session:
        return list(session.scalars(query))
