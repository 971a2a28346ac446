"""Every setting vitalq reads, in one place: ``Settings``, with its defaults written once.

A process's settings come from its environment (``Settings.from_env``), read once, or
are handed to it (``use_settings``: the web app factory does, and the tests build their
own instead of changing the environment). Nothing else in vitalq reads the environment.

With nothing set, vitalq runs on embedded defaults: SQLite under the data folder and
a Redis server that ``vitalq up`` starts for the session (see ``worker.embedded_redis``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

from ml.archives import UnpackLimits


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    redis_url: str
    #: Where uploads, artifacts and risk models are stored: empty for the data folder,
    #: or ``s3://bucket/prefix`` for an S3-compatible object store (``worker.objects``),
    #: its endpoint and credentials from the standard AWS variables.
    storage_url: str = ""
    #: The store's endpoint as clients outside reach it, for the URLs of direct uploads
    #: (``POST /api/v1/uploads``); empty: ``AWS_ENDPOINT_URL``, as vitalq reaches it.
    storage_public_endpoint: str = ""
    #: Largest upload accepted, in bytes (413 beyond it).
    max_upload_bytes: int = 4 * 1024**3
    #: What one user's direct uploads offered and not yet submitted may add up to, bytes.
    max_pending_upload_bytes: int = 16 * 1024**3
    #: Retries of a transient fault before the job fails, with exponential backoff.
    max_retries: int = 5
    retry_backoff_s: float = 2.0
    retry_backoff_max_s: float = 120.0
    #: Deliveries of a job whose worker died before it finished, before ``WORKER_LOST``.
    max_redeliveries: int = 3
    #: Seconds a worker waits out a database outage to record a job's start or outcome
    #: (a job that cannot start goes back on its queue after that), and a broker that
    #: refuses a retry's message.
    database_wait_s: float = 300.0
    #: Memory one job may take on top of what its worker process held when it started
    #: (counted as Linux's data segment, ``RLIMIT_DATA``); beyond it the job fails
    #: ``MEMORY_LIMIT`` and its process lives on. 0: no ceiling.
    max_job_memory_bytes: int = 2 * 1024**3
    #: Disk one job may fill, its artifacts and scratch folders together, checked at each
    #: of its progress points and at its end; beyond it the job fails ``DISK_LIMIT`` and
    #: what it wrote is removed, so one job cannot fill the disk the others write to.
    #: 0: no ceiling.
    max_job_disk_bytes: int = 16 * 1024**3
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
    #: Failed sign-ins and requests with an invalid token a minute from one client address.
    auth_failures_per_min: int = 30
    #: Jobs one user may have waiting (queued or retrying) at once.
    max_queued_per_user: int = 1000
    #: BLAS and OpenMP threads in each worker pool process; 0: the machine's cores shared
    #: out among the pool's processes (a pool of two on two cores gets one thread each),
    #: so that busy processes never multiply the work by fighting over the same cores.
    compute_threads: int = 0
    #: CPU priority of the worker pool's processes, added to the worker's own as ``nice``
    #: takes it: 0 to 19 (0: the same as the worker; below 0 needs root). Jobs run below
    #: the processes that serve them (the worker's main process, which hands jobs out,
    #: acknowledges and heartbeats; the web tier; the database and broker), so a machine
    #: whose cores the jobs fill still answers and keeps its pool fed. Nothing changes
    #: while a core is free.
    pool_nice: int = 5
    #: Seconds the web process waits for one block (up to 64 KiB) of a request body before
    #: answering 408 (a client that trickles bytes holds a connection otherwise).
    body_read_timeout_s: float = 60.0
    #: Days a finished job (its record, artifacts and events, and its upload once no job
    #: refers to it) is kept; beat deletes older ones every ``retention_interval_s``.
    #: 0: kept until deleted.
    retention_days: float = 0.0
    retention_interval_s: float = 3600.0
    #: What an uploaded archive (a WFDB record's zip) may unpack to, in all (bytes) and as
    #: a multiple of its compressed size; beyond either it is refused (413 TOO_LARGE)
    #: from its directory, before anything is written.
    max_unpacked_bytes: int = 2 * 1024**3
    max_unpack_ratio: float = 20.0
    #: Free space on the data folder's disk below which ``/health/ready`` fails.
    min_free_disk_bytes: int = 256 * 1024**2
    #: Signs session cookies; empty: a key made once and kept in the data folder.
    secret_key: str = ""
    #: ``/metrics`` without a token (Prometheus scrapers rarely carry one).
    metrics_public: bool = True
    #: Where Flower runs, the basic auth it asks for ("user:password"), and where the pages link to it.
    flower_upstream: str = "http://127.0.0.1:5555"
    flower_auth: str = ""
    flower_url: str = "/flower/"
    #: Log lines as JSON objects ("json") or plain text for a terminal ("text").
    log_format: str = "json"
    #: Connections one web process serves at once (gunicorn's gevent worker).
    web_connections: int = 4000

    @property
    def unpack_limits(self) -> UnpackLimits:
        return UnpackLimits(self.max_unpacked_bytes, self.max_unpack_ratio)

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @property
    def supervisor_status_path(self) -> Path:
        """Where ``vitalq up`` reports its processes' states (``vitalq.processes``)."""
        return self.data_dir / "processes.json"

    @classmethod
    def from_env(cls) -> "Settings":
        """Each setting from ``VITALQ_<NAME>`` (upper case), when set, else its default;
        the data folder, database and broker from ``VITALQ_DATA_DIR``, ``DATABASE_URL``
        and ``REDIS_URL``."""
        data_dir = Path(os.environ.get("VITALQ_DATA_DIR", "var")).resolve()
        tuned = {}
        for field in fields(cls):
            value = os.environ.get(f"VITALQ_{field.name.upper()}")
            if value is not None and field.name not in ("data_dir", "database_url", "redis_url"):
                tuned[field.name] = _parse(value, type(field.default))
        return cls(data_dir=data_dir,
                   database_url=os.environ.get("DATABASE_URL") or f"sqlite:///{data_dir / 'vitalq.db'}",
                   redis_url=os.environ.get("REDIS_URL") or _embedded_redis_url(data_dir), **tuned)


def _embedded_redis_url(data_dir: Path) -> str:
    """The URL of the Redis ``vitalq up`` runs for this data folder, while it runs (see
    ``worker.embedded_redis``), else a Redis on this machine's default port."""
    try:
        return (data_dir / "redis" / "url").read_text().strip()
    except OSError:
        return "redis://127.0.0.1:6379/0"


def _parse(value: str, kind: type):
    if kind is bool:
        return value.strip().lower() in ("1", "true", "yes", "on")
    return kind(value)


_current: Settings | None = None


def get_settings() -> Settings:
    """The settings of this process: those handed to ``use_settings``, else read once
    from the environment."""
    global _current
    if _current is None:
        _current = Settings.from_env()
    return _current


def use_settings(settings: Settings | None) -> None:
    """Make ``settings`` this process's (None: read the environment again at next use)."""
    global _current
    _current = settings
