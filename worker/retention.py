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
from .objects import get_store
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
    """Remove uploads no job refers to (direct ones included) and job artifacts with no
    job, older than SWEEP_GRACE_S, and abort the object store's multipart uploads left unfinished as long."""
    objects, oldest = get_store(), time.time() - SWEEP_GRACE_S
    uploads = _remove_unused_uploads([objects.location(stored.key)
                                      for stored in objects.list("uploads/") + objects.list("incoming/")
                                      if stored.modified < oldest])
    job_folders = 0
    for chunk in _chunks([job_id for job_id, modified in objects.folders("jobs/").items() if modified < oldest]):
        known = store.known_ids(chunk)
        for job_id in chunk:
            if job_id not in known:
                remove_artifacts(job_id)
                job_folders += 1
    if not objects.is_local:
        remove_local_leftovers(oldest)
    return {"uploads": uploads, "job_folders": job_folders,
            "unfinished_uploads": objects.sweep_incomplete(SWEEP_GRACE_S)}


def remove_local_leftovers(oldest: float) -> None:
    """With an object store, what this machine's data folder kept of uploads that never
    reached it and of jobs that are no longer running (a worker killed mid-job leaves
    its folder and scratch copies), untouched since ``oldest``. Beat's sweep does this on
    its machine, and each worker on its own as it starts."""
    settings = get_settings()
    stale: list[Path] = []
    for folder in (settings.uploads_dir, settings.jobs_dir, settings.data_dir / "tmp"):
        if folder.is_dir():
            with os.scandir(folder) as entries:
                stale += [Path(entry.path) for entry in entries if entry.stat(follow_symlinks=False).st_mtime < oldest]
    running = store.running_ids({path.name.split("-")[0] for path in stale})
    for path in stale:
        if path.name.split("-")[0] not in running:
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


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
    _remove_unused_uploads({record["path"] for _, record in deleted if record})


def _remove_unused_uploads(locations: Iterable[str]) -> int:
    """Remove those of these uploads (their locations) that no job refers to and that are
    older than SWEEP_GRACE_S: a recent one may be the input of a submission of the same
    content not yet recorded (``UploadSink.commit`` marks an upload it reuses as new),
    and is left to a later sweep. Returns how many went."""
    objects, oldest = get_store(), time.time() - SWEEP_GRACE_S
    old = [location for location in locations if (objects.modified(location) or float("inf")) < oldest]
    removed = 0
    for chunk in _chunks(old):
        in_use = store.inputs_in_use(chunk)
        unused = [location for location in chunk if location not in in_use]
        objects.delete([objects.key_of(location) for location in unused])
        removed += len(unused)
    return removed


def _chunks(items: list, size: int = 1000) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


