"""``video.rppg`` and ``video.analyze``: heart rate, pulse and HRV from face video, and on to risk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ml.rppg import defaults as rppg
from vitalq.errors import InvalidInput, UnsupportedFormat

from .base import JobKind, Upload, register
from .risk import chained_into_risk


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
            "video: face tracking, the face's skin, and an rPPG method (AUTO: GREEN or POS, whichever holds a "
            "clear pulse, or both where they agree; or one of GREEN, CHROM, POS, LGI, PBV, OMIT, ICA). A heart "
            "rate whose evidence is too weak is reported with reliable: false and the reason, its HRV withheld. "
            "Returns a summary, pulse and heart-rate CSVs, and a plot."
        ),
        params_schema={
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "method": {"enum": list(rppg.METHOD_NAMES), "default": rppg.METHOD,
                           "description": "rPPG method; AUTO reads the video by GREEN and by POS and gives the "
                                          "result of the one that holds a clear pulse, or of both where they agree."},
                "roi": {"enum": list(rppg.ROI_NAMES), "default": rppg.ROI,
                        "description": "face: track the face and use its skin (a crop of skin is read whole); "
                                       "full: every pixel of the frame."},
                "window_s": {"type": "number", "minimum": 4, "maximum": 120, "default": rppg.WINDOW_S,
                             "description": "Heart-rate window, in seconds."},
                "step_s": {"type": "number", "minimum": 0.25, "maximum": 60, "default": rppg.STEP_S,
                           "description": "Step between windows, in seconds."},
                "min_hz": {"type": "number", "minimum": 0.3, "maximum": 3, "default": rppg.BAND_HZ[0],
                           "description": "Lowest pulse frequency, in Hz (0.65 Hz = 39 bpm)."},
                "max_hz": {"type": "number", "minimum": 1, "maximum": 6, "default": rppg.BAND_HZ[1],
                           "description": "Highest pulse frequency, in Hz (4 Hz = 240 bpm)."},
                "min_quality": {"type": "number", "minimum": 0, "maximum": 1, "default": rppg.MIN_QUALITY,
                                "description": "Windows whose spectral peak holds less of the power are rejected."},
                "detect_every": {"type": "integer", "minimum": 1, "maximum": 120, "default": rppg.DETECT_EVERY,
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
        main_params=("method", "roi"),
    )
)


_ANALYZE_PARAMS, _check_analysis = chained_into_risk(VIDEO_RPPG)


VIDEO_ANALYZE = register(
    JobKind(
        name="video.analyze",
        title="Face video to risk (rPPG, then risk prediction)",
        description=("Runs video.rppg, then risk.predict on the HRV it found, as one job of two stages (a Celery "
                     "chain); a failure in either stage fails the job with that stage's error, and a failed risk "
                     "stage keeps the heart rate, pulse and plot the first one found."),
        params_schema=_ANALYZE_PARAMS,
        soft_time_limit_s=120,
        time_limit_s=240,
        # About 1 MB per 5 s of 640x480 video; analysis runs at 300+ frames per second.
        seconds_per_upload_mb=10.0,
        upload=VIDEO_RPPG.upload,
        stages=("video.analyze.rppg", "video.analyze.risk"),
        check=_check_analysis,
        main_params=("method", "roi", "model_version"),
    )
)
