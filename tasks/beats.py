"""``signal.beats``: heartbeats, heart rate, quality and HRV of an ECG or PPG recording."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from celery import shared_task

from ml.signals import find_beats, open_signal, summarize
from ml.signals.beats import WINDOW_S
from worker.jobtask import JobContext, JobTask
from worker.settings import get_settings

#: The cleaned signal the beats were found in, a little-endian float32 per sample: the
#: job page reads the stretch around a chosen time by its byte range.
CLEANED = "cleaned.f32"


@shared_task(base=JobTask, name="signal.beats")
def beats(job: JobContext) -> dict:
    return run_beats(job, job.input_path, job.params)


def run_beats(job: JobContext, path: Path, params: dict) -> dict:
    """The beats of the recording at ``path``, read as ``params`` say (``signal.beats``'s):
    its artifacts written, its summary returned (``signal.beats``, the first stage of
    ``signal.analyze``, the second of ``sensor.record``)."""
    with job.scratch() as scratch:
        job.progress(0.0, "reading the file's header", stage="open")
        source = open_signal(path, {**params, "channels": [params["channel"]]}, Path(scratch),
                             unpack=get_settings().unpack_limits)
        job.progress(0.0, f"{source.n_samples / source.fs / 3600:.2f} hours at {source.fs:g} Hz", stage="beats")
        with open(job.artifact(CLEANED), "wb") as cleaned_to:
            found = find_beats(source, params["signal_type"], progress=job.progress, cleaned_to=cleaned_to)
        channel = source.channel_names[0]
    summary = summarize(found, params["signal_type"])
    _write_beats(job.artifact("beats.csv"), found)
    _write_windows(job.artifact("heart_rate.csv"), found)
    return {"channel": channel, **summary, "cleaned_signal": CLEANED}


def _write_beats(path: Path, found) -> None:
    """One row a beat: its time (s), sample, the interval before it (ms), its quality and
    whether it lies in a usable window."""
    intervals = np.diff(found.times_s, prepend=np.nan) * 1000.0
    usable = found.usable
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["time_s", "sample", "rr_ms", "quality", "label"])
        for time_s, sample, rr, quality, ok in zip(found.times_s, found.samples, intervals, found.quality, usable):
            writer.writerow([f"{time_s:.4f}", int(sample), "" if np.isnan(rr) else f"{rr:.1f}",
                             "" if np.isnan(quality) else f"{quality:.3f}", "ok" if ok else "unusable"])


def _write_windows(path: Path, found) -> None:
    """One row a window: its start (s), heart rate (bpm, from its beats' median interval;
    empty where unusable), quality and whether it is usable."""
    bounds = found.window_bounds
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["start_s", "heart_rate_bpm", "quality", "usable"])
        for window, (quality, usable) in enumerate(zip(found.window_quality, found.window_usable)):
            times = found.times_s[bounds[window]:bounds[window + 1]]
            rate = 60.0 / np.median(np.diff(times)) if usable and times.size >= 3 else None
            writer.writerow([f"{window * WINDOW_S:g}", "" if rate is None else f"{rate:.1f}", f"{quality:.3f}",
                             "yes" if usable else "no"])
