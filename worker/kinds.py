"""The job kinds vitalq runs: their params schema, queue, time limits and uploads.

One declaration per kind serves every door: ``GET /api/v1/kinds`` publishes it, the web
form and the command line are built from it, and submission validates against it, so
an invalid job is refused before anything is queued. The Celery task that runs a kind
carries the kind's name (``tasks/<module>.py``); the web tier sends it by that name and
never imports the computation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from jsonschema import Draft202012Validator

from vitalq.errors import InvalidInput, NotFound, UnsupportedFormat

#: (params, the uploaded file or None) -> (soft, hard) time limits in seconds.
TimeLimits = Callable[[dict[str, Any], "Path | None"], "tuple[float, float]"]


@dataclass(frozen=True)
class Upload:
    """What a kind accepts as its input file."""

    required: bool
    #: Accepted file name suffixes, lower case with the dot (".npy"); empty accepts any file.
    #: The job checks the content itself: a suffix is a hint, never trusted.
    formats: tuple[str, ...]
    #: Largest accepted upload for this kind in bytes (None: the global limit).
    max_bytes: int | None = None
    #: True: the kind recognises its input from the content (``check`` sniffs it), so
    #: ``formats`` only advises and any file name is accepted.
    by_content: bool = False


@dataclass(frozen=True)
class JobKind:
    name: str
    title: str
    description: str
    params_schema: dict[str, Any]
    #: Time limits, seconds; a kind whose work grows with its upload adds
    #: ``seconds_per_upload_mb`` per megabyte to them (1.5 times as many to the hard one).
    soft_time_limit_s: float
    time_limit_s: float
    seconds_per_upload_mb: float = 0.0
    upload: Upload | None = None
    #: Queue name, or a function of the params for kinds bound to a device.
    queue: str | Callable[[dict[str, Any]], str] = "cpu"
    #: Limits that the params set instead (the selftest's, which says how long it works).
    time_limits: TimeLimits | None = None
    #: Celery task names run one after the other as a chain; None: the task named like the kind.
    stages: tuple[str, ...] | None = None
    #: Checks that a JSON Schema cannot say, across fields and against the uploaded
    #: file (its path, or None): raises InvalidInput or an ``ml.errors.InvalidInput``.
    check: Callable[[dict[str, Any], "Path | None"], None] | None = None
    _validator: Draft202012Validator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        Draft202012Validator.check_schema(self.params_schema)
        object.__setattr__(self, "_validator", Draft202012Validator(self.params_schema))

    def validate(self, params: Any, upload: Path | None = None) -> dict[str, Any]:
        """The params with defaults filled in, checked against the schema and then by
        ``check`` (with the uploaded file); raises InvalidInput naming each bad field."""
        if not isinstance(params, dict):
            raise InvalidInput("params must be a JSON object", {"fields": {"params": "must be an object"}})
        errors = sorted(self._validator.iter_errors(params), key=lambda e: list(e.absolute_path))
        if errors:
            fields: dict[str, str] = {}
            for error in errors:
                if error.validator == "additionalProperties":
                    for name in set(params) - set(self.params_schema.get("properties", {})):
                        fields[name] = "is not a parameter of this job kind"
                    continue
                if error.validator == "required":
                    name = error.message.split("'")[1]
                    fields.setdefault(name, "is required")
                    continue
                path = ".".join(str(part) for part in error.absolute_path) or "params"
                fields.setdefault(path, error.message)
            summary = "; ".join(f"{name}: {message}" for name, message in list(fields.items())[:5])
            more = f"; and {len(fields) - 5} more" if len(fields) > 5 else ""
            raise InvalidInput(f"invalid params for {self.name}: {summary}{more}", {"fields": fields})
        filled = {
            name: spec["default"]
            for name, spec in self.params_schema.get("properties", {}).items()
            if "default" in spec
        }
        filled.update(params)
        if self.check is not None:
            self.check(filled, upload)
        return filled

    def queue_for(self, params: dict[str, Any]) -> str:
        return self.queue(params) if callable(self.queue) else self.queue

    def limits_for(self, params: dict[str, Any], upload: Path | None) -> tuple[float, float]:
        if self.time_limits is not None:
            return self.time_limits(params, upload)
        extra = (upload.stat().st_size / 1e6 if upload is not None else 0.0) * self.seconds_per_upload_mb
        return self.soft_time_limit_s + extra, self.time_limit_s + 1.5 * extra

    def describe(self) -> dict[str, Any]:
        """The kind as ``GET /api/v1/kinds`` publishes it."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "queue": self.queue if isinstance(self.queue, str) else "hw.<device>",
            "params_schema": self.params_schema,
            # Each job carries the limits it runs under; these are those of an empty upload.
            "time_limits": {
                "soft_s": self.soft_time_limit_s,
                "hard_s": self.time_limit_s,
                "seconds_per_upload_mb": self.seconds_per_upload_mb,
                "set_by_params": self.time_limits is not None,
            },
            "stages": list(self.stages or (self.name,)),
            "upload": None
            if self.upload is None
            else {"required": self.upload.required, "formats": list(self.upload.formats),
                  "max_bytes": self.upload.max_bytes, "by_content": self.upload.by_content},
        }


_registry: dict[str, JobKind] = {}


def register(kind: JobKind) -> JobKind:
    if kind.name in _registry:
        raise ValueError(f"job kind {kind.name!r} is registered twice")
    _registry[kind.name] = kind
    return kind


def get_kind(name: Any) -> JobKind:
    """The kind called ``name``, as named in a submission; raises InvalidInput listing the kinds."""
    if name is None:
        raise InvalidInput("give the job's kind", {"fields": {"kind": "is required"}, "known_kinds": sorted(_registry)})
    kind = _registry.get(name) if isinstance(name, str) else None
    if kind is None:
        raise InvalidInput(
            f"unknown job kind {name!r}",
            {"fields": {"kind": "unknown job kind"}, "known_kinds": sorted(_registry)},
        )
    return kind


def all_kinds() -> list[JobKind]:
    return [_registry[name] for name in sorted(_registry)]


def find_kind(name: str) -> JobKind:
    """Like get_kind, for lookups by a path segment: raises NotFound."""
    try:
        return _registry[name]
    except KeyError:
        raise NotFound(f"no job kind {name!r}") from None


# --- the kinds -------------------------------------------------------------------------


def _selftest_limits(params: dict[str, Any]) -> tuple[float, float]:
    """The soft limit asked for or, by default, one that fits the work asked for (a 75 s
    selftest is not cut off at 60 s); the hard limit 30 s later unless asked for."""
    soft = params.get("soft_time_limit_s") or max(60.0, params["duration_s"] + params["blocking_s"] + 30.0)
    return soft, params.get("hard_time_limit_s") or soft + 30


def _check_selftest(params: dict[str, Any]) -> None:
    hard = params.get("hard_time_limit_s")
    if hard is not None and hard <= _selftest_limits(params)[0]:
        raise InvalidInput("the hard time limit must be above the soft one",
                           {"fields": {"hard_time_limit_s": "must exceed soft_time_limit_s"}})

SELFTEST = register(
    JobKind(
        name="diagnostics.selftest",
        title="Self-test",
        description=(
            "Exercises the whole path of a job: a worker picks it up, computes, reports "
            "progress, writes an artifact and finishes. The deep health check runs it."
        ),
        params_schema={
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "duration_s": {
                    "type": "number", "minimum": 0, "maximum": 600, "default": 0.2,
                    "description": "Time spent working, in seconds, spread over the steps.",
                },
                "steps": {
                    "type": "integer", "minimum": 1, "maximum": 1000, "default": 5,
                    "description": "Progress points reported along the way.",
                },
                "blocking_s": {
                    "type": "number", "minimum": 0, "maximum": 600, "default": 0,
                    "description": "Seconds spent at the start with no progress point, "
                                   "as a computation that cannot be interrupted would.",
                },
                "transient_failures": {
                    "type": "integer", "minimum": 0, "maximum": 10, "default": 0,
                    "description": "Fail with a transient fault on this many first attempts "
                                   "(each is retried with backoff).",
                },
                "soft_time_limit_s": {
                    "type": "number", "minimum": 1, "maximum": 3600,
                    "description": "Soft time limit of this job, in seconds (default: 60, or the work asked "
                                   "for and 30 s more).",
                },
                "hard_time_limit_s": {
                    "type": "number", "minimum": 2, "maximum": 3630,
                    "description": "Hard time limit, in seconds (default: the soft limit + 30).",
                },
                "ignore_soft_limit": {
                    "type": "boolean", "default": False,
                    "description": "Carry on past the soft limit, as a stuck computation would, "
                                   "until the hard limit stops the process.",
                },
            },
        },
        soft_time_limit_s=60,
        time_limit_s=90,
        time_limits=lambda params, _upload: _selftest_limits(params),
        check=lambda params, _upload: _check_selftest(params),
        upload=Upload(required=False, formats=()),
    )
)


def _check_filter_request(params: dict[str, Any], upload: Path | None) -> None:
    """Refuse at submission what would fail at once: an unreadable file, a filter that
    cannot be designed at the file's sample rate, a signal shorter than the padding."""
    import tempfile

    from ml.signals import FilterSpec, default_padlen, design_sos, probe_signal

    if upload is None:
        return
    with tempfile.TemporaryDirectory() as scratch:
        # A bounded look (a CSV's first 64 KiB, headers): the worker reads the whole file.
        probe = probe_signal(upload, params, Path(scratch))
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
                "family": {"enum": ["butter", "cheby1", "cheby2", "bessel", "ellip", "none"], "default": "butter",
                           "description": "IIR design (none: the notch alone)."},
                "btype": {"enum": ["lowpass", "highpass", "bandpass", "bandstop"], "default": "bandpass"},
                "cutoff_hz": {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0},
                              "minItems": 1, "maxItems": 2, "default": [0.5, 8.0],
                              "description": "Cutoff in Hz: one edge, or two for band filters; inside (0, fs/2)."},
                "order": {"type": "integer", "minimum": 1, "maximum": 12, "default": 4},
                "ripple_db": {"type": "number", "minimum": 0.01, "maximum": 20, "default": 1.0,
                              "description": "Passband ripple in dB (cheby1, ellip; below attenuation_db for ellip)."},
                "attenuation_db": {"type": "number", "minimum": 10, "maximum": 150, "default": 40.0,
                                   "description": "Stopband attenuation in dB (cheby2, ellip)."},
                "notch_hz": {"type": ["number", "null"], "exclusiveMinimum": 0, "default": None,
                             "description": "Mains frequency to remove in Hz (50 or 60), or null."},
                "notch_harmonics": {"type": "integer", "minimum": 1, "maximum": 20, "default": 1,
                                    "description": "Harmonics of the mains frequency removed too."},
                "notch_q": {"type": "number", "minimum": 1, "maximum": 500, "default": 30.0,
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
    )
)


_VIDEO_SIGNATURES = {b"ftyp": "mp4/mov", b"RIFF": "avi", b"\x1aE\xdf\xa3": "mkv/webm", b"PK\x03\x04": "zip"}


def _check_video(params: dict[str, Any], upload: Path | None) -> None:
    """Refuse what is not a video container or a zip of images, from its first bytes."""
    if upload is None:
        return
    with open(upload, "rb") as file:
        head = file.read(12)
    if not any(head.startswith(sig) or head[4:8] == sig for sig in _VIDEO_SIGNATURES):
        raise UnsupportedFormat("not a video vitalq can read (mp4, mov, avi, mkv, or a zip of images)",
                                     {"fields": {"file": "not a video"}})
    if head.startswith(b"PK\x03\x04") and not params.get("fps"):
        raise InvalidInput("an image sequence needs its frame rate", {"fields": {"fps": "required for a zip"}})
    from ml.rppg.containers import check_video

    check_video(upload)  # headers, or a zip's directory and first image: absurd frame sizes, bombs
    if params["min_hz"] >= params["max_hz"]:
        raise InvalidInput("min_hz must be below max_hz", {"fields": {"min_hz": "must be below max_hz"}})


VIDEO_RPPG = register(
    JobKind(
        name="video.rppg",
        title="Heart rate from face video (rPPG)",
        description=(
            "Heart rate over time and overall, the blood-volume pulse, signal quality and HRV from a face "
            "video: face tracking, skin regions (forehead, cheeks), and an rPPG method (GREEN, CHROM, POS, "
            "LGI, PBV, OMIT, ICA). Returns a summary, pulse and heart-rate CSVs, and a plot."
        ),
        params_schema={
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "method": {"enum": ["POS", "CHROM", "GREEN", "LGI", "PBV", "OMIT", "ICA"], "default": "POS",
                           "description": "rPPG method."},
                "roi": {"enum": ["face", "full"], "default": "face",
                        "description": "face: track the face and use its skin; full: the video is already skin."},
                "window_s": {"type": "number", "minimum": 4, "maximum": 120, "default": 10,
                             "description": "Heart-rate window, in seconds."},
                "step_s": {"type": "number", "minimum": 0.25, "maximum": 60, "default": 1,
                           "description": "Step between windows, in seconds."},
                "min_hz": {"type": "number", "minimum": 0.3, "maximum": 3, "default": 0.65,
                           "description": "Lowest pulse frequency, in Hz (0.65 Hz = 39 bpm)."},
                "max_hz": {"type": "number", "minimum": 1, "maximum": 6, "default": 4.0,
                           "description": "Highest pulse frequency, in Hz (4 Hz = 240 bpm)."},
                "min_quality": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.4,
                                "description": "Windows whose spectral peak holds less of the power are rejected."},
                "detect_every": {"type": "integer", "minimum": 1, "maximum": 120, "default": 10,
                                 "description": "Run the face detector every this many frames; track between."},
                "fps": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000,
                        "description": "Frame rate of an image sequence (zip), in Hz."},
            },
        },
        soft_time_limit_s=120,
        time_limit_s=240,
        # About 1 MB per 5 s of 640x480 video; analysis runs at 300+ frames per second.
        seconds_per_upload_mb=10.0,
        upload=Upload(required=True, formats=(".mp4", ".avi", ".mov", ".mkv", ".zip"), by_content=True),
        check=_check_video,
    )
)


def _check_training(params: dict[str, Any], upload: Path | None) -> None:
    if upload is not None:
        from ml.risk.training import read_header

        read_header(upload)  # its first line: the worker reads the rows, naming a bad one's line


def _check_prediction(params: dict[str, Any], upload: Path | None) -> None:
    from ml.risk import feature_matrix

    if (params.get("rows") is None) == (upload is None):
        raise InvalidInput("give the features either as rows or as a CSV file, not both or neither",
                           {"fields": {"rows": "rows or a file"}})
    if params.get("rows") is not None:
        feature_matrix(params["rows"])
    else:
        from ml.risk.training import read_header

        read_header(upload, labelled=False)
    _check_model_version(params)


def _check_model_version(params: dict[str, Any]) -> None:
    """A chosen risk model must exist (NOT_FOUND otherwise)."""
    if params.get("model_version") is not None:
        from .risk_models import registry

        registry().get(params["model_version"])


RISK_TRAIN = register(
    JobKind(
        name="risk.train",
        title="Train a risk model",
        description=("Trains a scikit-learn pipeline (imputation, scaling, a classifier) on a labelled CSV of HRV "
                     "features (mean_hr_bpm, sdnn_ms, rmssd_ms, pnn50_pct, lf_ms2, hf_ms2, lf_hf, quality, label), "
                     "with cross-validated ROC AUC, balanced accuracy and Brier score, and registers it as a new "
                     "version, served through OpenVINO when it converts and matches."),
        params_schema={
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "model_type": {"enum": ["logistic", "gradient_boosting", "mlp"], "default": "logistic"},
                "name": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9._-]+$",
                         "default": "hrv-risk"},
                "activate": {"type": "boolean", "default": True, "description": "Make it the active version."},
                "seed": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1, "default": 0},
            },
        },
        soft_time_limit_s=600,
        time_limit_s=900,
        upload=Upload(required=True, formats=(".csv",), max_bytes=256 * 1024**2),
        check=_check_training,
    )
)

_FEATURE_ROW = {"type": "object", "maxProperties": 32,
                "additionalProperties": {"type": ["number", "null", "string", "integer"]}}

RISK_PREDICT = register(
    JobKind(
        name="risk.predict",
        title="Predict risk",
        description=("Class probabilities from HRV features, one row or thousands, with the active (or a chosen) "
                     "model version, and which runtime served it. The shipped default is a demonstration model, "
                     "not clinically validated."),
        params_schema={
            "type": "object",
            "additionalProperties": False,
            "properties": {
                # Checked in the web process: a larger batch comes as a CSV, read by the worker.
                "rows": {"type": "array", "minItems": 1, "maxItems": 1000, "items": _FEATURE_ROW,
                         "description": "Up to 1000 rows of features; upload a CSV for more."},
                "model_version": {"type": "integer", "minimum": 1, "description": "Default: the active version."},
            },
        },
        soft_time_limit_s=300,
        time_limit_s=420,
        upload=Upload(required=False, formats=(".csv",), max_bytes=256 * 1024**2),
        check=_check_prediction,
    )
)

_ANALYZE_PARAMS = {**VIDEO_RPPG.params_schema, "properties": {
    **VIDEO_RPPG.params_schema["properties"],
    "model_version": {"type": "integer", "minimum": 1, "description": "Risk model version (default: the active one)."},
}}


def _check_analysis(params: dict[str, Any], upload: Path | None) -> None:
    _check_video(params, upload)
    _check_model_version(params)


VIDEO_ANALYZE = register(
    JobKind(
        name="video.analyze",
        title="Face video to risk (rPPG, then risk prediction)",
        description=("Runs video.rppg, then risk.predict on the HRV it found, as one job of two stages (a Celery "
                     "chain); a failure in either stage fails the job with that stage's error."),
        params_schema=_ANALYZE_PARAMS,
        soft_time_limit_s=120,
        time_limit_s=240,
        # About 1 MB per 5 s of 640x480 video; analysis runs at 300+ frames per second.
        seconds_per_upload_mb=10.0,
        upload=VIDEO_RPPG.upload,
        stages=("video.analyze.rppg", "video.analyze.risk"),
        check=_check_analysis,
    )
)


def _check_calibration(params: dict[str, Any], _upload: Path | None) -> None:
    from . import devices

    try:
        devices.get(params["device"])
    except NotFound:
        raise InvalidInput(f"no device {params['device']!r} is registered",
                           {"fields": {"device": "no such device"}}) from None


def _calibration_schema() -> dict[str, Any]:
    from .devices import DEVICE_ID_PATTERN, PLAN_SCHEMA

    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["device"],
        "properties": {
            "device": {"type": "string", "pattern": DEVICE_ID_PATTERN, "description": "The device to calibrate."},
            "plan": {**PLAN_SCHEMA, "description": "Settings for this run, over the device's own calibration settings."},
            "trigger": {"enum": ["manual", "schedule"], "default": "manual",
                        "description": "What asked for the calibration."},
        },
    }


CAMERA_CALIBRATE = register(
    JobKind(
        name="camera.calibrate",
        title="Calibrate a camera",
        description=("On the device's own queue, one job at a time: an exposure sweep, the gain with the least noise, "
                     "a coarse-to-fine focus sweep, then intrinsics and distortion from checkerboard views, with a "
                     "verdict. The result is stored as a new profile version, made current and applied when it passes."),
        params_schema=_calibration_schema(),
        soft_time_limit_s=300,
        time_limit_s=420,
        queue=lambda params: f"hw.{params['device']}",
        check=_check_calibration,
    )
)
