"""One error shape for every failure: ``{"error": {"code", "message", "details", "request_id"}}``."""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from http import HTTPStatus

import redis
import sqlalchemy.exc
from flask import Flask, g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from vitalq.errors import InvalidInput, Unavailable, VitalqError
from worker import logs

log = logging.getLogger(__name__)
access_log = logging.getLogger("vitalq.access")

#: Codes for the HTTP errors Werkzeug raises itself (routing, methods, body size).
HTTP_CODES = {400: "INVALID_INPUT", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 408: "TIMEOUT", 413: "TOO_LARGE",
              415: "UNSUPPORTED_FORMAT", 429: "RATE_LIMITED"}


def http_status(error: VitalqError) -> int:
    """The error's own status (``VitalqError.http_status``), else 400 for bad input, 503
    for a fault that may pass, 500 for the rest."""
    if error.http_status is not None:
        return error.http_status
    if isinstance(error, InvalidInput):
        return 400
    return 503 if error.retryable else 500


def created(body: dict, location: str):
    """201 Created with the new resource and where it lives."""
    response = jsonify(body)
    response.status_code = 201
    response.headers["Location"] = location
    return response


#: What an error answer carries at most: a body of 80,000 unknown keys is not answered
#: with 80,000 field messages.
MAX_ERROR_FIELDS = 20
MAX_MESSAGE_CHARS = 2000


#: Integers beyond a signed 64-bit one are refused anywhere in a body: no database
#: column or JSON client that reads numbers as doubles keeps them.
MAX_JSON_INTEGER = 2**63 - 1


def parse_json(text: str | bytes, field: str = "body"):
    """JSON as RFC 8259 has it, and as a database can store it: NaN and Infinity, which
    Python's parser takes, are refused (they pass a schema's minimum and maximum, and no
    JSON client can read them back), and so are numbers that overflow to them
    (``1e999``: SQLite stored it as Infinity, PostgreSQL refused it with a 500), integers
    beyond MAX_JSON_INTEGER, and strings with a NUL character or an unpaired surrogate
    (``\\u0000``, ``\\ud800``: PostgreSQL cannot store them)."""
    def refuse(constant: str):
        raise ValueError(f"{constant} is not a JSON number")

    def finite(literal: str) -> float:
        value = float(literal)
        if not math.isfinite(value):
            raise ValueError(f"{literal[:40]} is beyond what a JSON number holds")
        return value

    def bounded(literal: str) -> int:
        value = int(literal)
        if abs(value) > MAX_JSON_INTEGER:
            raise ValueError(f"{literal[:40]}... is an integer beyond 64 bits")
        return value

    try:
        value = json.loads(text, parse_constant=refuse, parse_float=finite, parse_int=bounded)
        _check_strings(value)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InvalidInput(f"{field} is not valid JSON: {exc}", {"fields": {field: "malformed JSON"}}) from None
    return value


def _check_strings(value) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("a string holds a NUL character")
        value.encode("utf-8")  # UnicodeEncodeError (a ValueError) for an unpaired surrogate
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key)
            _check_strings(item)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)


def json_body(optional: bool = False) -> dict:
    """The request's JSON object, else INVALID_INPUT; with ``optional``, no body is ``{}``."""
    raw = request.get_data(cache=True)
    if optional and not raw:
        return {}
    body = parse_json(raw) if request.is_json else None
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object (Content-Type: application/json)",
                           {"fields": {"body": "malformed JSON"}})
    return body


def error_response(code: str, message: str, status: int, details: dict | None = None):
    details = dict(details or {})
    fields = details.get("fields")
    if isinstance(fields, dict) and len(fields) > MAX_ERROR_FIELDS:
        details["fields"] = dict(list(fields.items())[:MAX_ERROR_FIELDS])
        details["more_fields"] = len(fields) - MAX_ERROR_FIELDS
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[:MAX_MESSAGE_CHARS] + "…"
    if _wants_a_page():
        title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        return render_template("error.html", code=code, message=message, status=status, title=title,
                               request_id=g.get("request_id")), status
    body = {"error": {"code": code, "message": message, "details": details, "request_id": g.get("request_id")}}
    return jsonify(body), status


#: Paths whose answers are for programs: their errors are JSON whoever asks.
MACHINE_PREFIXES = ("/api/", "/ws/", "/health/", "/metrics", "/flower/", "/static/")


def _wants_a_page() -> bool:
    """A browser asking for a page (it prefers HTML to JSON) gets its error as a page;
    the API, and any client that does not prefer HTML (curl sends ``*/*``), JSON."""
    return (not request.path.startswith(MACHINE_PREFIXES)
            and request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html")


def init_app(app: Flask) -> None:
    @app.before_request
    def _request_id():  # the first hook of every request: its clock starts here
        g.request_started = time.perf_counter()
        g.request_id = request.headers.get("X-Request-ID", "")[:64] or uuid.uuid4().hex
        g.request_id_token = logs.request_id.set(g.request_id)
        # A NUL in a path or query (%00) reaches no database: PostgreSQL cannot take it.
        if "\x00" in request.path or any("\x00" in key + value for key, value in request.args.items(multi=True)):
            raise InvalidInput("a NUL character in the address", {"fields": {"url": "holds a NUL character"}})

    @app.teardown_request
    def _forget_request_id(_exc):
        token = g.pop("request_id_token", None)
        if token is not None:
            logs.request_id.reset(token)

    @app.after_request
    def _echo_request_id(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        if not request.path.startswith("/static/"):
            duration_ms = round((time.perf_counter() - g.request_started) * 1000, 2) if "request_started" in g else None
            access_log.info("%s %s %d", request.method, request.path, response.status_code,
                            extra={"method": request.method, "path": request.path, "status": response.status_code,
                                   "duration_ms": duration_ms})
        return response

    @app.errorhandler(VitalqError)
    def _vitalq_error(exc: VitalqError):
        reported = exc.to_dict()
        response, status = error_response(reported["code"], reported["message"], http_status(exc), reported["details"])
        if getattr(exc, "retry_after_s", None):
            response.headers["Retry-After"] = str(exc.retry_after_s)
        return response, status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = HTTP_CODES.get(exc.code or 500, "INVALID_INPUT" if (exc.code or 500) < 500 else "INTERNAL")
        response, status = error_response(code, exc.description or exc.name, exc.code or 500)
        if getattr(exc, "valid_methods", None):  # a 405 says what is allowed (RFC 9110)
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response, status

    @app.errorhandler(redis.RedisError)
    @app.errorhandler(sqlalchemy.exc.OperationalError)
    def _service_down(exc: Exception):
        log.error("a backing service is unreachable: %s", exc)
        error = Unavailable("a service vitalq depends on is unreachable; try again shortly")
        response, status = error_response(error.code, error.message, http_status(error))
        response.headers["Retry-After"] = "5"
        return response, status

    @app.errorhandler(RecursionError)
    def _nested_too_deeply(_exc: RecursionError):
        # JSON nested hundreds deep: refused as input, not an internal error.
        return error_response("INVALID_INPUT", "the JSON is nested too deeply", 400,
                              {"fields": {"body": "nested too deeply"}})

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response("INTERNAL", "internal error; the request id identifies it in the logs", 500)
