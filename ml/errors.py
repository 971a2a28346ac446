"""Errors the computation raises for bad input, each with a stable code.

They are vitalq's own (``vitalq.errors``, which depends on nothing): ml/ knows nothing
of Celery or HTTP, and a job that raises one fails with its code, never retried.
"""

from __future__ import annotations

from vitalq.errors import EmptyInput, InvalidInput, TooLarge, UnsupportedFormat

__all__ = ["CorruptFile", "EmptyInput", "InvalidInput", "NonFiniteSample", "ParseError", "TooLarge",
           "UnsupportedFormat"]


class CorruptFile(InvalidInput):
    """Truncated, mis-sized or internally inconsistent."""

    code = "CORRUPT_FILE"


class ParseError(InvalidInput):
    """Text that is not what it should be; ``details["line"]`` names the 1-based line."""

    code = "PARSE_ERROR"


class NonFiniteSample(InvalidInput):
    """NaN or infinity; ``details["index"]`` is the first bad sample, ``details["channel"]`` its channel."""

    code = "NON_FINITE"
