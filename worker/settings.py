"""Every setting vitalq reads, from the environment, in one place.

With nothing set, vitalq runs on embedded defaults: SQLite under the data folder and
a Redis server that ``vitalq up`` starts for the session (see ``worker.embedded_redis``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


def _float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    redis_url: str
    #: Largest upload accepted, in bytes (413 beyond it).
    max_upload_bytes: int = 4 * 1024**3
    #: Retries of a transient fault before the job fails, with exponential backoff.
    max_retries: int = 5
    retry_backoff_s: float = 2.0
    retry_backoff_max_s: float = 120.0
    #: Deliveries of a job whose worker died before it finished, before ``WORKER_LOST``.
    max_redeliveries: int = 3
    #: Seconds a worker waits out a database outage to record a job's start or outcome
    #: (a job that cannot start goes back on its queue after that).
    database_wait_s: float = 300.0
    #: Seconds a running job has to honour a cancel before its process is killed.
    cancel_grace_s: float = 10.0
    #: Minimum seconds between two progress writes to the job row (events are not throttled).
    progress_db_interval_s: float = 1.0
    #: Broker redelivers an unacknowledged message after this long; it must exceed
    #: every hard time limit or long jobs would run twice.
    visibility_timeout_s: int = 6 * 3600
    #: Celery ``unacked_restore_interval``: how often workers look for abandoned messages.
    unacked_restore_interval_s: int = 10
    #: Seconds between two readings of the device registry by celery beat (schedules)
    #: and by the hardware pool (which devices get a worker).
    registry_refresh_s: float = 5.0
    #: How often beat runs the reconciler, and how old a job must be for it to act.
    reconcile_interval_s: float = 60.0
    reconcile_min_age_s: float = 60.0
    #: Messages waiting in a queue beyond which new submissions get 503 and Retry-After.
    max_queue_depth: int = 10_000
    #: Requests a minute one token (or signed-in user) may make; 0: no limit.
    rate_limit_per_min: int = 1200
    #: Jobs one user may have waiting (queued or retrying) at once.
    max_queued_per_user: int = 1000
    #: BLAS and OpenMP threads in each worker pool process; 0: the machine's cores shared
    #: out among the pool's processes (a pool of two on two cores gets one thread each),
    #: so that busy processes never multiply the work by fighting over the same cores.
    compute_threads: int = 0
    #: Seconds the web process waits for one block (up to 64 KiB) of a request body before
    #: answering 408 (a client that trickles bytes holds a connection otherwise).
    body_read_timeout_s: float = 60.0

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @classmethod
    def from_env(cls) -> "Settings":
        data_dir = Path(os.environ.get("VITALQ_DATA_DIR", "var")).resolve()
        return cls(
            data_dir=data_dir,
            database_url=os.environ.get("DATABASE_URL") or f"sqlite:///{data_dir / 'vitalq.db'}",
            redis_url=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0",
            registry_refresh_s=_float("VITALQ_REGISTRY_REFRESH_S", 5.0),
            reconcile_interval_s=_float("VITALQ_RECONCILE_INTERVAL_S", 60.0),
            reconcile_min_age_s=_float("VITALQ_RECONCILE_MIN_AGE_S", 60.0),
            max_queue_depth=_int("VITALQ_MAX_QUEUE_DEPTH", 10_000),
            rate_limit_per_min=_int("VITALQ_RATE_LIMIT_PER_MIN", 1200),
            max_queued_per_user=_int("VITALQ_MAX_QUEUED_PER_USER", 1000),
            compute_threads=_int("VITALQ_COMPUTE_THREADS", 0),
            body_read_timeout_s=_float("VITALQ_BODY_READ_TIMEOUT_S", 60.0),
            max_upload_bytes=_int("VITALQ_MAX_UPLOAD_BYTES", 4 * 1024**3),
            max_retries=_int("VITALQ_MAX_RETRIES", 5),
            retry_backoff_s=_float("VITALQ_RETRY_BACKOFF_S", 2.0),
            retry_backoff_max_s=_float("VITALQ_RETRY_BACKOFF_MAX_S", 120.0),
            max_redeliveries=_int("VITALQ_MAX_REDELIVERIES", 3),
            database_wait_s=_float("VITALQ_DATABASE_WAIT_S", 300.0),
            cancel_grace_s=_float("VITALQ_CANCEL_GRACE_S", 10.0),
            progress_db_interval_s=_float("VITALQ_PROGRESS_DB_INTERVAL_S", 1.0),
            visibility_timeout_s=_int("VITALQ_VISIBILITY_TIMEOUT_S", 6 * 3600),
            unacked_restore_interval_s=_int("VITALQ_UNACKED_RESTORE_INTERVAL_S", 10),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once from the environment."""
    return Settings.from_env()
