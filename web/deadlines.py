"""Request bodies must keep arriving: a client that sends a byte every few seconds
(slowloris) would otherwise hold a connection, and its upload's open file, for as long
as it likes, and a few thousand of them hold every connection the web process has.

gunicorn bounds the time to send a request's headers (its keepalive timeout, 2 s); this
WSGI middleware bounds the body. Under gunicorn's gevent worker (where a blocking read
can be timed out) each read of the body must complete within
``VITALQ_BODY_READ_TIMEOUT_S`` (60 s: Werkzeug reads in blocks of up to 64 KiB, so a
client must send about 1 KiB/s); everywhere, after a grace period, the body must have
come at ``MIN_BYTES_PER_S`` on average. A body that falls behind is answered 408 and
its connection closed.
"""

from __future__ import annotations

import time
from contextlib import nullcontext

from werkzeug.exceptions import RequestTimeout

#: Seconds a body may take before its average rate is checked.
GRACE_S = 20.0
#: Least average rate of a body after the grace period: slower than any link a person
#: uploads a recording from.
MIN_BYTES_PER_S = 1024


class SlowBody(RequestTimeout):
    description = "the request body arrived too slowly"


def _read_limit(seconds: float):
    """A timeout on one blocking read, where gevent can interrupt it; else none."""
    try:
        from gevent import Timeout, monkey
    except ImportError:
        return nullcontext()
    return Timeout(seconds, SlowBody()) if monkey.is_module_patched("socket") else nullcontext()


class DeadlineInput:
    """``wsgi.input`` that raises SlowBody when the body falls behind."""

    def __init__(self, stream, read_timeout_s: float):
        self.stream = stream
        self.read_timeout_s = read_timeout_s
        self.started = time.monotonic()
        self.received = 0

    def _read(self, method: str, *args):
        with _read_limit(self.read_timeout_s):
            data = getattr(self.stream, method)(*args)
        self.received += len(data)
        late = time.monotonic() - self.started - GRACE_S
        if data and late > 0 and self.received < MIN_BYTES_PER_S * late:
            raise SlowBody()
        return data

    def read(self, *args):
        return self._read("read", *args)

    def readline(self, *args):
        return self._read("readline", *args)

    def __iter__(self):
        while line := self.readline():
            yield line


class BodyDeadline:
    """WSGI middleware: every request body read through DeadlineInput."""

    def __init__(self, app, read_timeout_s: float):
        self.app = app
        self.read_timeout_s = read_timeout_s

    def __call__(self, environ, start_response):
        if environ.get("CONTENT_LENGTH") or environ.get("HTTP_TRANSFER_ENCODING"):
            environ["wsgi.input"] = DeadlineInput(environ["wsgi.input"], self.read_timeout_s)
        return self.app(environ, start_response)
