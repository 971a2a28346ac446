"""Every error vitalq reports, each with a stable code: one tree, with no dependencies.

The code is the contract: clients branch on it. Each class also says what the pages tell
a user (``plain``), its HTTP status where it is not the default one (``http_status``),
whether a job decides to retry it (``retryable``, ``worker.jobtask``), and whether the
same input would fail the same way again (``deterministic``: the pages offer no "Run
again" then); ``catalogue`` gathers them for the pages. Bad input is never retried; transient faults
(a broker, database or device that is briefly away) are. The computation (``ml.errors``)
and the camera layer (``hardware.errors``) raise subclasses of these, knowing nothing of
Celery or HTTP.
"""

from __future__ import annotations

import re
from typing import Any

#: An absolute path of two or more parts: the server's own folders, which no message shows.
_SERVER_PATH = re.compile(r"(?<![\w.:/])/(?:[\w.+@-]+/)+([\w.+@-]+)")


def without_paths(message: str) -> str:
    """``message`` with each absolute file path cut to its last part (libraries name the
    file they failed on: an upload's stored path tells nobody anything but the layout of
    this server)."""
    return _SERVER_PATH.sub(r"\1", message)


class VitalqError(Exception):
    """Base of every error with a code. ``details`` (a dict, and keyword arguments) must be
    JSON-serialisable; ``details["field"]`` names the input field at fault."""

    code = "INTERNAL"
    plain = "Something went wrong inside vitalq; the server log has the details."
    #: None: 400 for bad input, 503 for a fault that may pass, else 500 (``web.errors``).
    http_status: int | None = None
    retryable = False
    deterministic = False

    def __init__(self, message: str, details: dict[str, Any] | None = None, **more_details: Any):
        super().__init__(message)
        self.message = message
        self.details = {**(details or {}), **more_details}

    def to_dict(self) -> dict[str, Any]:
        """The error as reported by the API and on the job's record: no server path in its
        message, and the field at fault under ``details["fields"]``."""
        message = without_paths(self.message)
        details = dict(self.details)
        if "field" in details:
            details["fields"] = {details.pop("field"): message}
        return {"code": self.code, "message": message, "details": details}


class InvalidInput(VitalqError):
    """The input cannot be processed as given. Retrying will not help."""

    code = "INVALID_INPUT"
    plain = "The input was not acceptable."
    deterministic = True


class EmptyInput(InvalidInput):
    """An upload (or a file inside one) with nothing in it."""

    code = "EMPTY_INPUT"
    plain = "The file holds no data."


class UnsupportedFormat(InvalidInput):
    code = "UNSUPPORTED_FORMAT"
    plain = "The file is not in a format this job can read."
    http_status = 415


class TooLarge(InvalidInput):
    code = "TOO_LARGE"
    plain = "The input is larger than this server accepts."
    http_status = 413


class TransientError(VitalqError):
    """A fault of a service around the job, which may pass: retried with backoff."""

    code = "TRANSIENT"
    plain = "A temporary fault persisted through every retry."
    retryable = True


class NotFound(VitalqError):
    code = "NOT_FOUND"
    plain = "It is not there (or no longer)."
    http_status = 404


class AlreadyExists(VitalqError):
    """A resource with this id exists already."""

    code = "ALREADY_EXISTS"
    plain = "One with this name exists already."
    http_status = 409


class Unauthenticated(VitalqError):
    """No credentials, or credentials that are not (or no longer) valid."""

    code = "UNAUTHENTICATED"
    plain = "Sign in first."
    http_status = 401


class Forbidden(VitalqError):
    code = "FORBIDDEN"
    plain = "Only an admin may do this."
    http_status = 403


class RateLimited(VitalqError):
    """Too many requests, or too many jobs waiting, for one user; ``retry_after_s`` says when to try again."""

    code = "RATE_LIMITED"
    plain = "Too many requests or waiting jobs; try again shortly."
    http_status = 429

    def __init__(self, message: str, details: dict[str, Any] | None = None, retry_after_s: int = 60):
        super().__init__(message, details)
        self.retry_after_s = retry_after_s


class IdempotencyConflict(VitalqError):
    """An Idempotency-Key sent with another request than its first, or while its first
    is still being served (then ``retry_after_s`` says when to try again)."""

    code = "IDEMPOTENCY_CONFLICT"
    plain = "This request repeats an earlier one's key with other content, or while it is still served."
    http_status = 409

    def __init__(self, message: str, details: dict[str, Any] | None = None, retry_after_s: int | None = None):
        super().__init__(message, details)
        self.retry_after_s = retry_after_s


class JobFinished(VitalqError):
    """An operation that needs a live job was asked of a finished one."""

    code = "JOB_FINISHED"
    plain = "The job has finished already."
    http_status = 409


class JobLive(VitalqError):
    """An operation that needs a finished job was asked of a live one."""

    code = "JOB_LIVE"
    plain = "The job has not finished yet."
    http_status = 409


class Unavailable(VitalqError):
    """A service vitalq depends on (broker, database) cannot be reached right now."""

    code = "UNAVAILABLE"
    plain = "A service vitalq depends on could not be reached; try again in a moment."
    retryable = True
    #: Seconds a client should wait before trying again (the Retry-After header).
    retry_after_s = 5


class InsufficientStorage(Unavailable):
    """The data folder's disk is below its free-space floor (``VITALQ_MIN_FREE_DISK_BYTES``):
    nothing new is taken until there is room."""

    code = "INSUFFICIENT_STORAGE"
    plain = "The server's disk is nearly full; try again later."
    http_status = 507
    retry_after_s = 60


class QueueFull(Unavailable):
    """The job's queue holds more waiting jobs than it is configured to."""

    code = "QUEUE_FULL"
    plain = "The job's queue is full; try again later."
    retry_after_s = 30


class JobCancelled(VitalqError):
    """Raised inside a running job at its next progress point after a cancel."""

    code = "CANCELLED"
    plain = "The job was cancelled before it finished."
    http_status = 409


class JobTimeout(VitalqError):
    code = "TIMEOUT"
    plain = "The job ran longer than its time limit and was stopped."
    http_status = 504


class WorkerLost(VitalqError):
    code = "WORKER_LOST"
    plain = "The worker running this job stopped unexpectedly, more than once."


class MemoryLimit(VitalqError):
    """A job needed more memory than one job may have (``VITALQ_MAX_JOB_MEMORY_BYTES``)."""

    code = "MEMORY_LIMIT"
    plain = "The job needed more memory than one job may have on this server."


class DiskLimit(VitalqError):
    """A job wrote more than one job may (``VITALQ_MAX_JOB_DISK_BYTES``)."""

    code = "DISK_LIMIT"
    plain = "The job wrote more to disk than one job may on this server."


def catalogue() -> dict[str, dict[str, Any]]:
    """Every code of the classes defined so far (import ``ml.errors`` and
    ``hardware.errors`` first for theirs), each with its ``plain`` sentence and whether it
    is ``deterministic``: from the first class, nearest the root, that has the code."""
    found: dict[str, dict[str, Any]] = {}
    todo = [VitalqError]
    while todo:
        error = todo.pop(0)
        found.setdefault(error.code, {"plain": error.plain, "deterministic": error.deterministic})
        todo += error.__subclasses__()
    return found


class JobFailed(Exception):
    """What a job's task raises to Celery once the job's failure (or cancel) is recorded:
    Celery's events, and Flower, then count the job as a failed task. Not a VitalqError:
    it reports, it is never reported back; expected (``JobTask.throws``), so Celery
    logs it without a traceback and never retries it."""

    def __init__(self, code: str, message: str):
        # Its arguments are its whole state, so it pickles from the pool process to the
        # worker: one that did not arrived as an UnpickleableExceptionWrapper, which is
        # no expected exception, and every expected failure was logged as a crash.
        super().__init__(code, message)
        self.code, self.message = code, message

    @classmethod
    def of(cls, error: VitalqError) -> "JobFailed":
        reported = error.to_dict()  # as users see it: no server path
        return cls(reported["code"], reported["message"])

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
