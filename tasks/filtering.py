"""``signal.filter``: exact zero-phase filtering of a signal file of any size."""

from __future__ import annotations

from pathlib import Path

from celery import shared_task

from ml.signals import filter_file
from worker.jobtask import JobContext, JobTask
from worker.settings import get_settings


@shared_task(base=JobTask, name="signal.filter")
def filter_signal(job: JobContext) -> dict:
    with job.scratch() as scratch:
        return filter_file(job.input_path, job.params, job.artifact, Path(scratch),
                           unpack=get_settings().unpack_limits, progress=job.progress)
