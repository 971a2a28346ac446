"""``signal.filter``: zero-phase filtering of recordings of any length; ``signal.beats``:
heartbeats, heart rate, quality and HRV from an ECG or PPG recording of any length."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ml.signals import defaults as filter_defaults
from vitalq.errors import InvalidInput

from ..settings import get_settings
from .base import JobKind, Upload, register
from .risk import chained_into_risk


def _check_filter_request(params: dict[str, Any], upload: Path | None) -> None:
    """Refuse at submission what would fail at once: an unreadable file, a filter that
    cannot be designed at the file's sample rate, a signal shorter than the padding."""
    import tempfile

    from ml.signals import FilterSpec, default_padlen, design_sos, probe_signal

    if upload is None:
        return
    with tempfile.TemporaryDirectory() as scratch:
        # A bounded look (a CSV's first 64 KiB, headers): the worker reads the whole file.
        probe = probe_signal(upload, params, Path(scratch), unpack=get_settings().unpack_limits)
    sos = design_sos(FilterSpec.from_params(params), probe.fs)
    if params["zero_phase"] and probe.n_samples is not None and probe.n_samples <= default_padlen(sos):
        raise InvalidInput(f"the signal has {probe.n_samples} samples; this filter needs more than "
                           f"{default_padlen(sos)}", {"fields": {"file": "too short for this filter"}})


SIGNAL_FILTER = register(
    JobKind(
        name="signal.filter",
        title="Filter a signal",
        description=(
            "Zero-phase (forward-backward) or causal IIR filtering of PPG, ECG or other recordings of any "
            "length, in bounded memory; the zero-phase result equals scipy.signal.sosfiltfilt. Returns the "
            "filtered signal (.npy), a min/max preview for plotting, and per-channel statistics."
        ),
        params_schema={
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "format": {"enum": ["auto", "npy", "raw", "csv", "edf", "bdf", "wfdb"], "default": "auto",
                           "description": "File format; auto recognises it from the content (raw must be named)."},
                "fs": {"type": "number", "exclusiveMinimum": 0, "maximum": 1e6,
                       "description": "Sample rate in Hz (needed for npy, raw, and CSV without a time column)."},
                "dtype": {"enum": ["int8", "uint8", "int16", "uint16", "int32", "uint32", "float32", "float64",
                                   "<i2", ">i2", "<i4", ">i4", "<f4", ">f4", "<f8", ">f8"],
                          "description": "Sample type of a raw file (little-endian unless < or > says)."},
                "n_channels": {"type": "integer", "minimum": 1, "maximum": 1024, "default": 1,
                               "description": "Interleaved channels in a raw file."},
                "channels": {"type": "array", "maxItems": 1024,
                             "items": {"type": ["string", "integer"]},
                             "description": "Channels to filter, by name or 0-based index (default: all)."},
                "time_column": {"type": ["string", "integer"],
                                "description": "CSV column of sample times, from which fs is taken."},
                "time_unit": {"enum": ["s", "ms"], "default": "s", "description": "Unit of a numeric time column."},
                "family": {"enum": [*filter_defaults.FAMILIES, "none"], "default": filter_defaults.FAMILY,
                           "description": "IIR design (none: the notch alone)."},
                "btype": {"enum": list(filter_defaults.BAND_TYPES), "default": filter_defaults.BTYPE},
                # As SciPy takes Wn: a number for one edge, or a list of one or two.
                "cutoff_hz": {"type": ["array", "number"], "exclusiveMinimum": 0,
                              "items": {"type": "number", "exclusiveMinimum": 0},
                              "minItems": 1, "maxItems": 2, "default": list(filter_defaults.CUTOFF_HZ),
                              "description": "Cutoff in Hz: one edge (a number), or two for band filters; "
                                             "inside (0, fs/2)."},
                "order": {"type": "integer", "minimum": 1, "maximum": filter_defaults.MAX_ORDER,
                          "default": filter_defaults.ORDER},
                "ripple_db": {"type": "number", "minimum": filter_defaults.MIN_RIPPLE_DB,
                              "maximum": filter_defaults.MAX_RIPPLE_DB, "default": filter_defaults.RIPPLE_DB,
                              "description": "Passband ripple in dB (cheby1, ellip; below attenuation_db for ellip)."},
                "attenuation_db": {"type": "number", "minimum": 10, "maximum": 150,
                                   "default": filter_defaults.ATTENUATION_DB,
                                   "description": "Stopband attenuation in dB (cheby2, ellip)."},
                "notch_hz": {"type": ["number", "null"], "exclusiveMinimum": 0, "default": filter_defaults.NOTCH_HZ,
                             "description": "Mains frequency to remove in Hz (50 or 60), or null."},
                "notch_harmonics": {"type": "integer", "minimum": 1, "maximum": 20,
                                    "default": filter_defaults.NOTCH_HARMONICS,
                                    "description": "Harmonics of the mains frequency removed too."},
                "notch_q": {"type": "number", "minimum": 1, "maximum": 500, "default": filter_defaults.NOTCH_Q,
                            "description": "Quality factor of each notch."},
                "zero_phase": {"type": "boolean", "default": True,
                               "description": "Forward-backward (no phase shift) or causal."},
                "nan_policy": {"enum": ["raise", "interpolate"], "default": "raise",
                               "description": "NaN or Inf samples fail the job, or are filled linearly."},
                "output_dtype": {"enum": ["float32", "float64"], "default": "float32"},
                "chunk_size": {"type": "integer", "minimum": 1, "maximum": 1 << 24, "default": 1 << 20,
                               "description": "Samples per channel processed at once."},
                "preview_points": {"type": "integer", "minimum": 10, "maximum": 20000, "default": 2000,
                                   "description": "Bins of the min/max preview per channel."},
            },
        },
        soft_time_limit_s=120,
        time_limit_s=240,
        # Generous for this machine's ~100 MB/s through both passes, plus start-up.
        seconds_per_upload_mb=0.05,
        upload=Upload(required=True, formats=(".npy", ".csv", ".txt", ".edf", ".bdf", ".zip", ".bin", ".raw", ".dat"),
                      by_content=True),
        check=_check_filter_request,
        main_params=("fs", "btype", "cutoff_hz", "family", "order", "notch_hz", "channels"),
    )
)


#: How a recording is read: the keys ``signal.filter`` and ``signal.beats`` share.
_READING = {key: SIGNAL_FILTER.params_schema["properties"][key]
            for key in ("format", "fs", "dtype", "n_channels", "time_column", "time_unit")}


def _check_beats_request(params: dict[str, Any], upload: Path | None) -> None:
    """Refuse at submission a file that cannot be read, a channel it does not have, or a
    sample rate the detector is not made for."""
    import tempfile

    from ml.signals import probe_signal
    from ml.signals.beats import check_sample_rate

    if upload is None:
        return
    with tempfile.TemporaryDirectory() as scratch:
        probe = probe_signal(upload, {**params, "channels": [params["channel"]]}, Path(scratch),
                             unpack=get_settings().unpack_limits)
    check_sample_rate(probe.fs, params["signal_type"])


SIGNAL_BEATS = register(
    JobKind(
        name="signal.beats",
        title="Heartbeats from an ECG or PPG",
        description=(
            "Every heartbeat of an ECG or PPG recording of any length (a day at 360 Hz in bounded memory), "
            "each with its quality; heart rate over time, the mean heart rate with its confidence (the share "
            "of the recording clean enough to count), signal quality per 10 s window (noisy stretches are "
            "marked, not counted), and HRV over the clean beats. Detection by NeuroKit2, chunk by chunk."
        ),
        params_schema={
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "signal_type": {"enum": ["ecg", "ppg"], "default": "ecg",
                                "description": "What the channel holds: an ECG lead, or a PPG."},
                "channel": {"type": ["string", "integer"], "default": 0,
                            "description": "The channel to read, by name or 0-based index."},
                **_READING,
            },
        },
        soft_time_limit_s=120,
        time_limit_s=240,
        # A day of ECG at 360 Hz (31 M samples, 250 MB as CSV, 62 MB as WFDB) in about a minute.
        seconds_per_upload_mb=0.5,
        upload=SIGNAL_FILTER.upload,
        check=_check_beats_request,
        main_params=("signal_type", "channel", "fs"),
    )
)


_ANALYZE_PARAMS, _check_analysis = chained_into_risk(SIGNAL_BEATS)


SIGNAL_ANALYZE = register(
    JobKind(
        name="signal.analyze",
        title="ECG or PPG to risk (beats, then risk prediction)",
        description=("Runs signal.beats, then risk.predict on the HRV of its clean beats, as one job of two stages "
                     "(a Celery chain); a failed risk stage (HRV_WITHHELD: too little clean signal) keeps the "
                     "beats, heart rate and files the first one found."),
        params_schema=_ANALYZE_PARAMS,
        soft_time_limit_s=SIGNAL_BEATS.soft_time_limit_s,
        time_limit_s=SIGNAL_BEATS.time_limit_s,
        seconds_per_upload_mb=SIGNAL_BEATS.seconds_per_upload_mb,
        upload=SIGNAL_FILTER.upload,
        stages=("signal.analyze.beats", "signal.analyze.risk"),
        check=_check_analysis,
        main_params=("signal_type", "channel", "fs", "model_version"),
    )
)
