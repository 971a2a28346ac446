"""``signal.filter``: exact zero-phase filtering of a signal file of any size."""

from __future__ import annotations

import json
from pathlib import Path

from celery import shared_task

from ml.signals import FilterSpec, design_sos, filter_source, open_signal
from worker.jobtask import JobContext, JobTask
from worker.settings import get_settings


@shared_task(base=JobTask, name="signal.filter")
def filter_signal(job: JobContext) -> dict:
    params = job.params
    with job.scratch() as scratch:
        job.progress(0.0, "reading the file's header", stage="open")
        source = open_signal(job.input_path, params, Path(scratch), unpack=get_settings().unpack_limits)
        spec = FilterSpec.from_params(params)
        sos = design_sos(spec, source.fs)
        job.progress(0.0, f"{source.n_samples:,} samples x {source.n_channels} channels at {source.fs:g} Hz",
                     stage="filter")
        report = filter_source(
            source, sos, job.artifact("filtered.npy"),
            zero_phase=params["zero_phase"], nan_policy=params["nan_policy"], out_dtype=params["output_dtype"],
            chunk_size=params["chunk_size"], preview_points=params["preview_points"],
            progress=lambda fraction, message: job.progress(fraction, message),
        )
    names = list(source.channel_names)
    duration_s = source.n_samples / source.fs
    preview = {
        "fs": source.fs, "n_samples": source.n_samples, "bins": report.preview_before.bins,
        "bin_start_s": (report.preview_before.first_sample_of_bins() / source.fs).tolist(),
        "channels": [{"name": name, "before": report.preview_before.to_dict(i), "after": report.preview_after.to_dict(i)}
                     for i, name in enumerate(names)],
    }
    job.artifact("preview.json").write_text(json.dumps(preview))
    return {
        "fs_hz": source.fs,
        "samples": source.n_samples,
        "duration_s": duration_s,
        "sections": int(sos.shape[0]),
        "padlen": report.padlen,
        "zero_phase": params["zero_phase"],
        "output_dtype": params["output_dtype"],
        "channels": [{"name": name, "before": report.before.to_dict(i), "after": report.after.to_dict(i)}
                     for i, name in enumerate(names)],
    }
