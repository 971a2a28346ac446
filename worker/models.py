"""The job record, kept in the database: the record of truth for every job.

The schema is created only by the Alembic migrations in ``migrations/``.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, DateTime, Float, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_job_id() -> str:
    return uuid.uuid4().hex


class JobStatus(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
#: Statuses from which a worker may start the job.
STARTABLE = frozenset({JobStatus.QUEUED, JobStatus.RETRYING})


class Base(DeclarativeBase):
    pass


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_job_id)
    kind: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED.value)
    #: 0 (least urgent) to 9 (most urgent).
    priority: Mapped[int] = mapped_column(Integer, default=5)
    queue: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    #: The uploaded file: ``{"sha256", "filename", "size", "path"}`` or null.
    input: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    soft_time_limit_s: Mapped[float] = mapped_column(Float)
    time_limit_s: Mapped[float] = mapped_column(Float)

    progress_fraction: Mapped[float] = mapped_column(Float, default=0.0)
    progress_stage: Mapped[str | None] = mapped_column(String(64), nullable=True)
    progress_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Sequence number of the last progress event saved here (events carry the same).
    progress_seq: Mapped[int] = mapped_column(Integer, default=0)

    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    #: ``[{"name", "size", "media_type"}]``, files under the job's artifact folder.
    artifacts: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    error_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_details: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)

    #: Times a worker started the job (first run, retries and redeliveries).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: Times the job was found still running when delivered again: its worker died.
    redeliveries: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    worker: Mapped[str | None] = mapped_column(String(255), nullable=True)

    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    #: Seconds from the last start to the finish.
    run_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (
        Index("ix_jobs_created_at", "created_at"),
        Index("ix_jobs_kind_status", "kind", "status"),
        Index("ix_jobs_status", "status"),
    )

    @property
    def finished(self) -> bool:
        return JobStatus(self.status).finished

    def to_dict(self) -> dict[str, Any]:
        """The job as the API shows it."""

        def iso(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:  # SQLite drops the zone; every stored time is UTC
                value = value.replace(tzinfo=timezone.utc)
            return value.isoformat()

        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "priority": self.priority,
            "queue": self.queue,
            "params": self.params,
            "input": None if self.input is None else {k: v for k, v in self.input.items() if k != "path"},
            "progress": {
                "fraction": self.progress_fraction,
                "stage": self.progress_stage,
                "message": self.progress_message,
                "seq": self.progress_seq,
            },
            "result": self.result,
            "artifacts": self.artifacts or [],
            "error": None
            if self.error_code is None
            else {"code": self.error_code, "message": self.error_message, "details": self.error_details or {}},
            "attempts": self.attempts,
            "redeliveries": self.redeliveries,
            "cancel_requested": self.cancel_requested,
            "worker": self.worker,
            "time_limits": {"soft_s": self.soft_time_limit_s, "hard_s": self.time_limit_s},
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "run_seconds": self.run_seconds,
        }
