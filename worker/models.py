"""The job record, kept in the database: the record of truth for every job.

The schema is created only by the Alembic migrations in ``migrations/``.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from hardware.drivers import device_type

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


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite drops the zone; every stored time is UTC
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat()


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
    #: Who submitted it (null: vitalq itself, as for scheduled calibrations).
    owner_id: Mapped[int | None] = mapped_column(Integer, nullable=True)

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
        Index("ix_jobs_owner_status", "owner_id", "status"),
    )

    @property
    def finished(self) -> bool:
        return JobStatus(self.status).finished

    def to_dict(self) -> dict[str, Any]:
        """The job as the API shows it."""
        iso = _iso
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
            "owner_id": self.owner_id,
            "time_limits": {"soft_s": self.soft_time_limit_s, "hard_s": self.time_limit_s},
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "run_seconds": self.run_seconds,
        }


class Device(Base):
    """A camera or a pulse sensor attached to a machine, served by its own queue ``hw.<id>``."""

    __tablename__ = "devices"

    #: Lower-case letters, digits, ``-`` and ``_``: it names the device's queue.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    #: A camera's (``opencv``, ``simulated``) or a pulse sensor's (``pulse-serial``,
    #: ``pulse-simulated``): ``hardware.drivers``.
    driver: Mapped[str] = mapped_column(String(32))
    #: The driver's settings: a V4L2 index or device path, a stream URL, a simulated scene.
    connection: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    #: The calibration plan's settings for this device (board, views, thresholds).
    calibration: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    #: When to calibrate a camera or record a pulse sensor: a crontab line (UTC),
    #: ``@hourly``-style, ``@every 6h``, or null.
    schedule: Mapped[str | None] = mapped_column(String(128), nullable=True)
    #: The machine whose hardware pool serves it (null: any).
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    #: What the driver reported when the device was last opened.
    capabilities: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    current_profile_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_calibrated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: When celery beat last queued a scheduled job (the schedule counts from it).
    last_scheduled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    @property
    def queue(self) -> str:
        return f"hw.{self.id}"

    def to_dict(self, redact_connection: bool = False) -> dict[str, Any]:
        """The device as JSON; ``redact_connection`` hides its connection's values (a URL
        may hold a password), keeping their names."""
        connection = {key: "[redacted]" for key in self.connection} if redact_connection else self.connection
        return {
            "id": self.id, "name": self.name, "driver": self.driver, "type": device_type(self.driver),
            "connection": connection,
            "calibration": self.calibration, "schedule": self.schedule, "host": self.host, "queue": self.queue,
            "capabilities": self.capabilities, "current_profile_version": self.current_profile_version,
            "last_calibrated_at": _iso(self.last_calibrated_at), "last_scheduled_at": _iso(self.last_scheduled_at),
            "created_at": _iso(self.created_at), "updated_at": _iso(self.updated_at),
        }


class CameraProfile(Base):
    """One calibration's outcome, kept for good: versions count up per device."""

    __tablename__ = "camera_profiles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(64), ForeignKey("devices.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    passed: Mapped[bool] = mapped_column(Boolean)
    reasons: Mapped[list[str]] = mapped_column(JSONType, default=list)
    checks: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    #: exposure (ms), gain (x), focus (steps).
    settings: Mapped[dict[str, float]] = mapped_column(JSONType, default=dict)
    intrinsics: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    sweeps: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (UniqueConstraint("device_id", "version", name="uq_camera_profiles_device_version"),)

    def to_dict(self, current: bool = False) -> dict[str, Any]:
        return {
            "device_id": self.device_id, "version": self.version, "job_id": self.job_id, "passed": self.passed,
            "current": current, "reasons": self.reasons, "checks": self.checks, "settings": self.settings,
            "intrinsics": self.intrinsics, "sweeps": self.sweeps, "created_at": _iso(self.created_at),
        }


class User(Base):
    """Someone who submits jobs. An admin sees and manages everything."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "is_admin": self.is_admin, "created_at": _iso(self.created_at)}


class ApiToken(Base):
    """A bearer token of a user, kept only as its SHA-256 (a token is 256 random bits,
    so a fast hash is enough); revoked tokens are kept, marked."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(Integer, ForeignKey("users.id", ondelete="CASCADE"))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    #: The first characters of the token, to tell tokens apart in listings.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "prefix": self.prefix, "created_at": _iso(self.created_at),
                "revoked_at": _iso(self.revoked_at)}
