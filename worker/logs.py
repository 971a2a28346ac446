"""Structured logs: one JSON object a line, each carrying the ``request_id`` of the web
request that caused it and the ``job_id`` it concerns, from the web tier through the
worker, so that one job's story can be read out of the logs of every process.

``VITALQ_LOG_FORMAT=text`` gives plain lines for a terminal instead.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
job_id: ContextVar[str | None] = ContextVar("job_id", default=None)

_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(job_id)s %(process)d"


class ContextFilter(logging.Filter):
    """Stamps every record with the request and job in hand (null when none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = getattr(record, "request_id", None) or request_id.get()
        record.job_id = getattr(record, "job_id", None) or job_id.get()
        return True


def formatter() -> logging.Formatter:
    from .settings import get_settings

    if get_settings().log_format.lower() == "text":
        return logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s %(job_id)s] %(message)s")
    return JsonFormatter(_FIELDS, rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                         timestamp=False)


def use_structured_logs(*handlers: logging.Handler) -> None:
    """Give ``handlers`` (default: the root logger's, or a new stderr handler) the
    structured format and the context filter."""
    root = logging.getLogger()
    if not handlers:
        if not root.handlers:
            root.addHandler(logging.StreamHandler())
        handlers = tuple(root.handlers)
    for handler in handlers:
        handler.setFormatter(formatter())
        if not any(isinstance(f, ContextFilter) for f in handler.filters):
            handler.addFilter(ContextFilter())
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
