"""Errors the computation raises for bad input, each with a stable code: every one of
ml/'s, in this one module (the web tier reads their sentences for its pages without
loading what raises them).

They are vitalq's own (``vitalq.errors``, which depends on nothing): ml/ knows nothing
of Celery or HTTP, and a job that raises one fails with its code, never retried.
"""

from __future__ import annotations

from vitalq.errors import EmptyInput, InvalidInput, TooLarge, UnsupportedFormat

__all__ = ["CorruptFile", "EmptyInput", "FilterDesignError", "FrameRateTooLow", "HrvWithheld", "InvalidFeature",
           "InvalidInput", "ModelNotFound", "NoBeats", "NoFaceFound", "NonFiniteSample", "ParseError",
           "SignalTooShort", "TooLarge", "TooShort", "UnreadableVideo", "UnsupportedFormat"]


class CorruptFile(InvalidInput):
    """Truncated, mis-sized or internally inconsistent."""

    code = "CORRUPT_FILE"
    plain = "The file is damaged or truncated."


class ParseError(InvalidInput):
    """Text that is not what it should be; ``details["line"]`` names the 1-based line."""

    code = "PARSE_ERROR"
    plain = "The file could not be read as text in the expected layout."


class NonFiniteSample(InvalidInput):
    """NaN or infinity; ``details["index"]`` is the first bad sample, ``details["channel"]`` its channel."""

    code = "NON_FINITE"
    plain = "The signal contains missing (NaN) or infinite samples."


# --- signals ---------------------------------------------------------------------------------


class FilterDesignError(InvalidInput):
    """A filter that cannot be designed or would not be stable at this sample rate."""


class SignalTooShort(InvalidInput):
    """A signal shorter than the filter's padding (zero-phase filtering needs more)."""


class NoBeats(InvalidInput):
    """No heartbeats to speak of: too few found, or at a rate no heart beats at."""

    code = "NO_BEATS"
    plain = "No heartbeats could be found in this recording (or only at a rate no heart beats at: is the sample rate right?)."


# --- rPPG ------------------------------------------------------------------------------------


class UnreadableVideo(InvalidInput):
    """A file that no decoder reads as a video, or whose frames stop decoding."""

    code = "UNREADABLE_VIDEO"
    plain = "The video could not be decoded."


class TooShort(InvalidInput):
    """A pulse too short for one analysis window."""

    code = "TOO_SHORT"
    plain = "The recording is too short for the analysis window."


class NoFaceFound(InvalidInput):
    """No face in enough of the video."""

    code = "NO_FACE"
    plain = "No face was found in enough of the video."


class FrameRateTooLow(InvalidInput):
    """Frames too far apart to sample a pulse."""

    code = "FRAME_RATE_TOO_LOW"
    plain = "The video's frame rate is too low for a pulse to be measured."


# --- risk ------------------------------------------------------------------------------------


class InvalidFeature(InvalidInput):
    """A feature missing, not a number, or out of its plausible range; names the row and feature."""


class HrvWithheld(InvalidInput):
    """The rPPG result withheld its HRV (its heart rate is unreliable, or its beats were
    timed too roughly): no risk from it."""

    code = "HRV_WITHHELD"
    plain = "The pulse was too unclear to time heartbeats, so no risk was predicted from it."


class ModelNotFound(InvalidInput):
    """No risk model of that version (or none registered yet)."""

    code = "NOT_FOUND"
    plain = "No such risk model version."
    http_status = 404
