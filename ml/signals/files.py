"""``filter_file``: a signal file in, its filtered copy, preview and summary out, in
memory bounded by bytes whatever the file's shape (``signal.filter`` runs it; so does
``bench/filtering.py``, which measures that bound)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from ml.archives import UnpackLimits

from .chunked import FilterReport, filter_source
from .design import FilterSpec, design_sos
from .readers import open_signal


def filter_file(path: Path, params: dict[str, Any], artifact: Callable[[str], Path], scratch: Path,
                unpack: UnpackLimits | None = None, progress: Callable[..., None] | None = None) -> dict[str, Any]:
    """Filter the signal file at ``path`` as ``params`` (``signal.filter``'s) ask.

    Writes ``filtered.npy`` and ``preview.json`` (a min/max envelope of each channel
    before and after) where ``artifact(name)`` says; ``scratch`` is a folder for what a
    reader unpacks or parses. ``progress(fraction, message)`` is told of each chunk, and
    of each stage's start with ``stage=`` ("open", "filter") as well. Returns the
    summary: sample rate (Hz), samples, duration (s), the design's sections and padding,
    and per-channel statistics before and after.
    """
    progress = progress or (lambda fraction, message, stage=None: None)
    progress(0.0, "reading the file's header", stage="open")
    source = open_signal(path, params, scratch, unpack=unpack)
    sos = design_sos(FilterSpec.from_params(params), source.fs)
    progress(0.0, f"{source.n_samples:,} samples x {source.n_channels} channels at {source.fs:g} Hz", stage="filter")
    report = filter_source(
        source, sos, artifact("filtered.npy"),
        zero_phase=params["zero_phase"], nan_policy=params["nan_policy"], out_dtype=params["output_dtype"],
        chunk_size=params["chunk_size"], preview_points=params["preview_points"], progress=progress,
    )
    names = list(source.channel_names)
    write_preview(artifact("preview.json"), report, names, source.fs, source.n_samples)
    return {
        "fs_hz": source.fs,
        "samples": source.n_samples,
        "duration_s": source.n_samples / source.fs,
        "sections": int(sos.shape[0]),
        "padlen": report.padlen,
        "zero_phase": params["zero_phase"],
        "output_dtype": params["output_dtype"],
        "channels": [{"name": name, "before": report.before.to_dict(i), "after": report.after.to_dict(i)}
                     for i, name in enumerate(names)],
    }


def write_preview(path: Path, report: FilterReport, names: list[str], fs: float, n_samples: int) -> None:
    """The envelopes as JSON, written a channel at a time: for thousands of channels the
    whole document as Python objects would take more memory than the filtering did."""
    with open(path, "w") as file:
        head = {"fs": fs, "n_samples": n_samples, "bins": report.preview_before.bins,
                "bin_start_s": (report.preview_before.first_sample_of_bins() / fs).tolist()}
        file.write(json.dumps(head)[:-1] + ', "channels": [')
        for i, name in enumerate(names):
            channel = {"name": name, "before": report.preview_before.to_dict(i),
                       "after": report.preview_after.to_dict(i)}
            file.write((", " if i else "") + json.dumps(channel))
        file.write("]}")
