"""``diagnostics.selftest``, a job that exercises the whole path (``/health/deep`` runs it), and
``diagnostics.noop``, one that does nothing."""

from __future__ import annotations

import json
import os
import platform
import time
from functools import lru_cache

import numpy as np
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from threadpoolctl import threadpool_info

from vitalq.errors import InvalidInput, TransientError
from worker.jobtask import JobContext, JobTask
from worker.storage import file_sha256

#: The selftest recovers this frequency (Hz) from a synthetic sine to show numpy works.
PROBE_HZ = 7.0
PROBE_FS = 100.0


@shared_task(base=JobTask, name="diagnostics.selftest")
def selftest(job: JobContext) -> dict:
    params = job.params
    if job.attempt <= params["transient_failures"]:
        raise TransientError(f"simulated transient fault on attempt {job.attempt}")
    if params["blocking_s"]:
        _block(params["blocking_s"], params["ignore_soft_limit"])  # no progress point, so no cancel check
    if params["allocate_bytes"]:
        filled = np.ones(params["allocate_bytes"], dtype=np.uint8)  # ones, not zeros: pages really taken
        del filled
    if params["write_bytes"]:
        _write(job, params["write_bytes"])

    steps = params["steps"]
    for step in range(1, steps + 1):
        if params["duration_s"]:  # sleep(0) would still give up the core
            time.sleep(params["duration_s"] / steps)
        job.progress(step / steps, f"step {step} of {steps}", stage="work")

    t = np.arange(int(10 * PROBE_FS)) / PROBE_FS
    spectrum = np.abs(np.fft.rfft(np.sin(2 * np.pi * PROBE_HZ * t)))
    peak_hz = float(np.fft.rfftfreq(t.size, 1 / PROBE_FS)[np.argmax(spectrum)])

    result = {"peak_hz": peak_hz, "expected_peak_hz": PROBE_HZ, "attempt": job.attempt,
              "python": platform.python_version(), "numpy": np.__version__,
              "compute_threads": _compute_threads(), "nice": os.getpriority(os.PRIO_PROCESS, 0)}
    if job.input_path is not None:
        result["input_sha256_matches"] = file_sha256(job.input_path) == job.input["sha256"]
        if not result["input_sha256_matches"]:
            raise InvalidInput("the stored upload does not match its sha256", {"sha256": job.input["sha256"]})
    job.artifact("selftest.json").write_text(json.dumps(result, indent=2))
    return result


@shared_task(base=JobTask, name="diagnostics.noop")
def noop(job: JobContext) -> dict:
    return {}


def _write(job: JobContext, size: int, block: int = 8 * 1024**2) -> None:
    chunk = os.urandom(min(block, size))  # incompressible, whatever the file system
    with open(job.artifact("filler.bin"), "wb") as file:
        for written in range(0, size, block):
            file.write(chunk[:min(block, size - written)])
            file.flush()
            job.progress(0.5 * written / size, f"{written:,} of {size:,} bytes written")


@lru_cache(maxsize=1)
def _compute_threads() -> int | None:
    """The most BLAS/OpenMP threads any numerical library of this process may start (set
    once per pool process; finding the libraries costs a millisecond, so it is asked once)."""
    return max((pool["num_threads"] for pool in threadpool_info()), default=None)


def _block(seconds: float, ignore_soft_limit: bool) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            time.sleep(left)
        except SoftTimeLimitExceeded:
            if not ignore_soft_limit:
                raise
