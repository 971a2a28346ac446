"""Errors the computation raises for bad input, each with a stable code.

ml/ and hardware/ know nothing of Celery or HTTP; the job layer (``worker.jobtask``)
turns an ``InputError`` into a failed job with the same code, never retried.
"""

from __future__ import annotations

from typing import Any


class InputError(ValueError):
    """The input cannot be processed as given. Retrying will not help."""

    code = "INVALID_INPUT"

    def __init__(self, message: str, **details: Any):
        super().__init__(message)
        self.message = message
        self.details = details


class UnsupportedFormat(InputError):
    code = "UNSUPPORTED_FORMAT"


class EmptyInput(InputError):
    code = "EMPTY_INPUT"


class TooLarge(InputError):
    code = "TOO_LARGE"


class CorruptFile(InputError):
    """Truncated, mis-sized or internally inconsistent."""

    code = "CORRUPT_FILE"


class ParseError(InputError):
    """Text that is not what it should be; ``details["line"]`` names the 1-based line."""

    code = "PARSE_ERROR"


class NonFiniteSample(InputError):
    """NaN or infinity; ``details["index"]`` is the first bad sample, ``details["channel"]`` its channel."""

    code = "NON_FINITE"
