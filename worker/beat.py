"""Celery beat's scheduler for vitalq: device schedules from the database (a camera's
calibrations, a pulse sensor's recordings).

The device row is the one place a schedule lives. ``DeviceScheduler`` reads every
device's schedule each ``VITALQ_REGISTRY_REFRESH_S`` seconds, so a schedule set, changed
or cleared over the API takes effect without restarting beat. (celery-redbeat and
sqlalchemy-celery-beat would keep a second copy of each schedule to keep in step.)
Static entries of ``beat_schedule`` in ``celeryconfig`` run beside them as usual, and
so does the reconciler (``worker.reconcile``), run in this process every
``VITALQ_RECONCILE_INTERVAL_S`` seconds so that it needs no free worker, and, every
``VITALQ_RETENTION_INTERVAL_S`` seconds, the sweep of what no job refers to (partial
uploads of dropped connections, uploads of deleted jobs, folders of jobs gone) and,
when ``VITALQ_RETENTION_DAYS`` is set, the deletion of old finished jobs
(``worker.retention.purge``).

A due calibration or recording is submitted as a job like any other (``dispatch.submit``), so it
has its record and waits its turn on the device's queue behind a running job; one
that is still waiting from an earlier tick is not queued twice.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Callable

from celery.beat import ScheduleEntry, Scheduler
from celery.schedules import schedule

from hardware.drivers import device_type
from vitalq.errors import VitalqError

from . import devices, dispatch, retention, store
from .reconcile import reconcile
from .schedules import parse_schedule
from .settings import get_settings

log = logging.getLogger(__name__)

ENTRY_PREFIX = "device:"
RECONCILE_ENTRY = "vitalq:reconcile"
RETENTION_ENTRY = "vitalq:retention"
#: What a device's schedule runs, by the device's type: cameras are calibrated, pulse
#: sensors record (``sensor.record``, the recording's beats and HRV).
SCHEDULED_KIND = {"camera": "camera.calibrate", "pulse_sensor": "sensor.record"}


def _reconcile() -> None:
    report = reconcile(min_age_s=get_settings().reconcile_min_age_s)
    if any(report.values()):
        log.warning("reconciler: %s", report)


def _purge() -> None:
    days = get_settings().retention_days
    try:
        removed = retention.purge(days) if days > 0 else retention.sweep()
    except Exception:  # the database or a folder is away: the next run tries again
        log.exception("retention: purge failed")
        return
    if any(removed.values()):
        log.info("retention: removed %s", removed)


def _in_process_runs() -> dict[str, tuple[float, Callable[[], None]]]:
    """What beat runs itself, by entry name: (every how many seconds, what)."""
    settings = get_settings()
    # What no job refers to is swept whether or not old jobs are deleted: without it a
    # dropped upload's partial file and a deleted job's upload stayed on disk for good.
    return {RECONCILE_ENTRY: (settings.reconcile_interval_s, _reconcile),
            RETENTION_ENTRY: (settings.retention_interval_s, _purge)}


class DeviceScheduler(Scheduler):
    def setup_schedule(self) -> None:
        self._refreshed_at = 0.0
        self.data = {}
        self._refresh()

    @property
    def schedule(self) -> dict[str, ScheduleEntry]:
        if time.monotonic() - self._refreshed_at >= get_settings().registry_refresh_s:
            self._refresh()
        return self.data

    def _refresh(self) -> None:
        self._refreshed_at = time.monotonic()
        try:
            found = devices.all_devices()
        except Exception as exc:  # the database is away: keep the schedule we have
            log.warning("device schedules not refreshed: %s", exc)
            return
        entries = {name: entry for name, entry in self.data.items() if not name.startswith(ENTRY_PREFIX)}
        for name, (interval_s, _run) in _in_process_runs().items():
            if name not in entries:
                entries[name] = self.data[name] = ScheduleEntry(
                    name=name, task=name, app=self.app, schedule=schedule(timedelta(seconds=interval_s)))
        static = self.app.conf.beat_schedule or {}
        if set(static) - set(entries):
            self.merge_inplace(static)
            entries = {name: entry for name, entry in self.data.items() if not name.startswith(ENTRY_PREFIX)}
        for device in found:
            if not device.schedule:
                continue
            try:
                when = parse_schedule(device.schedule)
            except VitalqError as exc:  # refused at registration; a hand-edited row is logged, not fatal
                log.error("device %s: %s", device.id, exc.message)
                continue
            name = ENTRY_PREFIX + device.id
            previous = self.data.get(name)
            if previous is not None and previous.schedule == when:
                entries[name] = previous
                continue
            kind = SCHEDULED_KIND[device_type(device.driver)]
            log.info("device %s: %s scheduled %s", device.id, kind, device.schedule)
            # A new or changed schedule counts from its last run, or from when it was set.
            since = device.last_scheduled_at or device.updated_at or datetime.now(timezone.utc)
            if since.tzinfo is None:
                since = since.replace(tzinfo=timezone.utc)
            entries[name] = ScheduleEntry(name=name, task=kind, schedule=when,
                                          kwargs={"device": device.id}, last_run_at=since, app=self.app)
        for name in set(self.data) - set(entries):
            log.info("device %s: schedule cleared", name[len(ENTRY_PREFIX):])
        self.data = entries

    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        in_process = _in_process_runs().get(entry.name)
        if in_process is not None:  # run here: beat is one process, and needs no free worker
            entry = self.reserve(entry) if advance else entry
            in_process[1]()
            return None
        if not entry.name.startswith(ENTRY_PREFIX):
            return super().apply_async(entry, producer=producer, advance=advance, **kwargs)
        entry = self.reserve(entry) if advance else entry
        device_id, kind = entry.kwargs["device"], entry.task
        now = datetime.now(timezone.utc)
        devices.mark_scheduled(device_id, now)
        waiting = store.waiting_jobs(kind, device=device_id)
        if waiting:
            log.info("device %s: a %s (job %s) is still waiting; not queueing another", device_id, kind, waiting[0])
            return None
        job = dispatch.submit(kind, {"device": device_id, "trigger": "schedule"})
        log.info("device %s: scheduled %s queued as job %s", device_id, kind, job.id)
        return SimpleNamespace(id=job.id)
