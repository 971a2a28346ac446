"""The web tier: ``create_app()`` builds the Flask app (API, websocket, health, pages).

Run it with ``vitalq serve web`` (gunicorn with one gevent worker; the Procfile and
``vitalq up`` do). It enqueues and reads jobs through ``worker``; it never imports a
job's computation.
"""

from __future__ import annotations


from flask import Flask, g, request
from flask import Request as FlaskRequest
from flask_sock import Sock

from vitalq.errors import InvalidInput
from worker.settings import Settings, get_settings, use_settings
from worker.storage import UploadSink

sock = Sock()

#: vitalq's pages load scripts, styles and images from this site only, and no other site
#: may frame them. (Flower's pages, passed through under /flower/, keep their own.)
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
                           "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
                           "frame-ancestors 'none'")


class StreamingUploadRequest(FlaskRequest):
    """Writes each uploaded file part straight to the uploads folder, hashing it as it comes."""

    @property
    def max_content_length(self) -> int | None:
        """An upload (multipart) streams to disk and may be as large as MAX_CONTENT_LENGTH;
        any other body, JSON above all, is parsed in memory and in the web process's one
        event loop, so it is held to MAX_FORM_MEMORY_SIZE (413 beyond)."""
        limit = super().max_content_length
        if self.mimetype == "multipart/form-data":
            return limit
        return min(filter(None, (limit, self.max_form_memory_size)), default=None)

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        if g.get("upload_sinks"):  # each file part would hold a file open: one is all a job takes
            raise InvalidInput("send one file per request", {"fields": {"file": "one file only"}})
        sink = UploadSink(limit=self.max_content_length)
        g.setdefault("upload_sinks", []).append(sink)
        return sink


def create_app(settings: Settings | None = None) -> Flask:
    """The web app, on ``settings`` (default: the process's, from its environment), which
    become the process's: the job layer it calls reads the same."""
    if settings is not None:
        use_settings(settings)
    settings = get_settings()
    from . import api, auth, devices, errors, flower, health, metrics, openapi, pages, ws
    app = Flask(__name__)
    app.request_class = StreamingUploadRequest
    app.config.from_mapping(
        MAX_CONTENT_LENGTH=settings.max_upload_bytes,
        # What is parsed in memory, form fields and JSON bodies, is bounded (uploads are not),
        # and so are the parts of a form: a job is a few fields and one file.
        MAX_FORM_MEMORY_SIZE=1024 * 1024,
        MAX_FORM_PARTS=32,
        SOCK_SERVER_OPTIONS={"ping_interval": 25, "max_message_size": ws.MAX_MESSAGE_BYTES,
                             "thread_class": ws.bounded_reader},
    )
    app.extensions["vitalq_settings"] = settings

    from .deadlines import BodyDeadline

    app.wsgi_app = BodyDeadline(app.wsgi_app, settings.body_read_timeout_s)

    errors.init_app(app)
    auth.init_app(app)
    app.extensions["vitalq_metrics"] = metrics.init_app(app)
    sock.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(devices.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(flower.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(pages.bp)
    ws.register(sock)

    @app.after_request
    def _security_headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.path.startswith("/flower/"):
            response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    @app.teardown_request
    def _discard_unclaimed_uploads(_exc):
        # An upload is kept only when its job was accepted (dispatch.submit commits it).
        for sink in g.pop("upload_sinks", []):
            sink.discard()

    return app
