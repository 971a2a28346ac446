"""Retention: finished jobs deleted with everything they left behind, and disk use.

A job leaves its record, its artifacts folder, its event stream in Redis, and its
upload. Uploads are stored by content (``worker.storage``), so jobs may share one: an
upload goes when no job refers to it any more. ``delete_job`` deletes one finished job
(``DELETE /api/v1/jobs/<id>``); ``purge`` deletes those finished more than
``VITALQ_RETENTION_DAYS`` ago and sweeps what an interrupted deletion left (beat runs it
every hour, see ``worker.beat``).

The record goes first: it is what users see, and a file without a record is found
and removed by the next sweep, where a record without its files would be a broken job.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable

import redis

from . import progress, store
from .broker import get_redis
from .settings import get_settings
from .storage import bytes_under, disk_space, remove_artifacts

log = logging.getLogger(__name__)

#: An upload or job folder younger than this is never swept: its job may be on its way
#: to being recorded (a file is stored, then its job's row is inserted).
SWEEP_GRACE_S = 3600


def delete_job(job_id: str) -> None:
    """Delete a finished job, its artifacts and events, and its upload if no other job
    refers to it. Raises NotFound, or JobLive for a job not finished."""
    input_record = store.delete(job_id)
    _forget([(job_id, input_record)])
    log.info("job deleted", extra={"job_id": job_id})


def purge(retention_days: float, now: datetime | None = None) -> dict[str, int]:
    """Delete the jobs finished more than ``retention_days`` ago, then sweep uploads no
    job refers to and job folders with no record. Returns how many of each went."""
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=retention_days)
    jobs = 0
    while batch := store.delete_finished_before(cutoff):
        _forget(batch)
        jobs += len(batch)
    return {"jobs": jobs, **sweep()}


def sweep() -> dict[str, int]:
    """Remove uploads no job refers to and job folders with no job, older than SWEEP_GRACE_S."""
    settings = get_settings()
    uploads = _remove_unused_uploads(path for path in _old_entries(settings.uploads_dir) if path.is_file())
    job_folders = 0
    for chunk in _chunks([path for path in _old_entries(settings.jobs_dir) if path.is_dir()]):
        known = store.known_ids(path.name for path in chunk)
        for path in chunk:
            if path.name not in known:
                shutil.rmtree(path, ignore_errors=True)
                job_folders += 1
    return {"uploads": uploads, "job_folders": job_folders}


def disk_usage() -> dict[str, int]:
    """``disk_space``, and the bytes held by uploads and by job folders (a walk of every file)."""
    settings = get_settings()
    return {**disk_space(), "uploads_bytes": bytes_under(settings.uploads_dir),
            "jobs_bytes": bytes_under(settings.jobs_dir)}


def _forget(deleted: list[tuple[str, dict[str, Any] | None]]) -> None:
    """What deleted jobs left: folders, event streams, and uploads no job refers to now."""
    for job_id, _ in deleted:
        remove_artifacts(job_id)
    try:
        get_redis().delete(*(key for job_id, _ in deleted for key in progress.keys(job_id)))
    except redis.RedisError as exc:  # the streams expire on their own (progress.EVENT_TTL_S)
        log.warning("events of %d deleted jobs left to expire: %s", len(deleted), exc)
    _remove_unused_uploads({Path(record["path"]) for _, record in deleted if record})


def _remove_unused_uploads(paths: Iterable[Path]) -> int:
    """Remove those of these uploads that no job refers to and that are older than
    SWEEP_GRACE_S: a recent one may be the input of a submission of the same content not
    yet recorded (``UploadSink.commit`` touches a file it reuses), and is left to a later
    sweep. Returns how many went."""
    oldest = time.time() - SWEEP_GRACE_S
    removed = 0
    for chunk in _chunks([path for path in paths if _modified(path) < oldest]):
        in_use = store.inputs_in_use(str(path) for path in chunk)
        for path in chunk:
            if str(path) not in in_use:
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def _modified(path: Path) -> float:
    """When ``path`` was last modified (infinitely late if it is gone: nothing to remove)."""
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def _chunks(items: list, size: int = 1000) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _old_entries(folder: Path) -> Iterable[Path]:
    if not folder.is_dir():
        return []
    oldest = time.time() - SWEEP_GRACE_S
    with os.scandir(folder) as entries:
        return [Path(entry.path) for entry in entries if entry.stat().st_mtime < oldest]
