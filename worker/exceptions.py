"""Every error vitalq reports, each with a stable code.

The code is the contract: clients branch on it, the web tier maps it to an HTTP status,
and the worker decides from ``retryable`` whether a fault is worth another attempt.
Bad input is never retried; transient faults (a broker, database or device that is
briefly away) are.
"""

from __future__ import annotations

import re
from typing import Any


class VitalqError(Exception):
    """Base of every error with a code. ``details`` must be JSON-serialisable."""

    code = "INTERNAL"
    http_status = 500
    retryable = False

    def __init__(self, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class InvalidInput(VitalqError):
    code = "INVALID_INPUT"
    http_status = 400


class EmptyInput(InvalidInput):
    """An upload (or a file inside one) with nothing in it."""

    code = "EMPTY_INPUT"


class UnsupportedFormat(VitalqError):
    code = "UNSUPPORTED_FORMAT"
    http_status = 415


class TooLarge(VitalqError):
    code = "TOO_LARGE"
    http_status = 413


class NotFound(VitalqError):
    code = "NOT_FOUND"
    http_status = 404


class AlreadyExists(VitalqError):
    """A resource with this id exists already."""

    code = "ALREADY_EXISTS"
    http_status = 409


class Unauthenticated(VitalqError):
    """No credentials, or credentials that are not (or no longer) valid."""

    code = "UNAUTHENTICATED"
    http_status = 401


class Forbidden(VitalqError):
    code = "FORBIDDEN"
    http_status = 403


class RateLimited(VitalqError):
    """Too many requests, or too many jobs waiting, for one user; ``retry_after_s`` says when to try again."""

    code = "RATE_LIMITED"
    http_status = 429

    def __init__(self, message: str, details: dict[str, Any] | None = None, retry_after_s: int = 60):
        super().__init__(message, details)
        self.retry_after_s = retry_after_s


class JobFinished(VitalqError):
    """An operation that needs a live job was asked of a finished one."""

    code = "JOB_FINISHED"
    http_status = 409


class JobLive(VitalqError):
    """An operation that needs a finished job was asked of a live one."""

    code = "JOB_LIVE"
    http_status = 409


class Unavailable(VitalqError):
    """A service vitalq depends on (broker, database) cannot be reached right now."""

    code = "UNAVAILABLE"
    http_status = 503
    retryable = True
    #: Seconds a client should wait before trying again (the Retry-After header).
    retry_after_s = 5


class QueueFull(Unavailable):
    """The job's queue holds more waiting jobs than it is configured to."""

    code = "QUEUE_FULL"
    retry_after_s = 30


class TransientError(VitalqError):
    """A fault that may pass on its own: the job is retried with backoff."""

    code = "TRANSIENT"
    http_status = 503
    retryable = True


class DeviceBusy(TransientError):
    code = "DEVICE_BUSY"


class DeviceUnavailable(TransientError):
    code = "DEVICE_UNAVAILABLE"


class JobCancelled(VitalqError):
    """Raised inside a running job at its next progress point after a cancel."""

    code = "CANCELLED"
    http_status = 409


class JobTimeout(VitalqError):
    code = "TIMEOUT"
    http_status = 504


class WorkerLost(VitalqError):
    code = "WORKER_LOST"


def from_device_error(exc) -> TransientError:
    """The job-world error for a device fault (``hardware.errors.DeviceError``): retried."""
    error_class = DeviceBusy if exc.code == DeviceBusy.code else DeviceUnavailable
    return error_class(exc.message, dict(exc.details))


_STATUS_BY_CODE = {"UNSUPPORTED_FORMAT": 415, "TOO_LARGE": 413, "NOT_FOUND": 404}


#: An absolute path of two or more parts: the server's own folders, which no message shows.
_SERVER_PATH = re.compile(r"(?<![\w.:/])/(?:[\w.+@-]+/)+([\w.+@-]+)")


def without_paths(message: str) -> str:
    """``message`` with each absolute file path cut to its last part (libraries name the
    file they failed on: an upload's stored path tells nobody anything but the layout of
    this server)."""
    return _SERVER_PATH.sub(r"\1", message)


def from_input_error(exc) -> VitalqError:
    """The job-world error for a computation's ``ml.errors.InputError``: same code and
    details, an HTTP status to match, ``details["fields"]`` when it names a field, and
    no server path in its message."""
    details = dict(exc.details)
    message = without_paths(exc.message)
    if "field" in details:
        details["fields"] = {details.pop("field"): message}
    error = InvalidInput(message, details)
    error.code = exc.code
    error.http_status = _STATUS_BY_CODE.get(exc.code, 400)
    return error


class JobFailed(Exception):
    """What a job's task raises to Celery once the job's failure (or cancel) is recorded:
    Celery's events, and Flower, then count the job as a failed task. Not a VitalqError:
    it reports, it is never reported back; expected (``JobTask.throws``), so Celery
    logs it without a traceback and never retries it."""

    def __init__(self, error: VitalqError):
        super().__init__(f"{error.code}: {error.message}")
        self.code = error.code
