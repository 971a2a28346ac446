"""The HTTP API, ``/api/v1``: submit, read, list, cancel and delete jobs; their artifacts; the job kinds."""

from __future__ import annotations

import contextlib
import mimetypes
import time
from typing import Any, Iterator

from flask import Blueprint, Response, current_app, jsonify, request, send_file, stream_with_context, url_for
from itsdangerous import BadSignature, URLSafeTimedSerializer

from worker import accounts, dispatch, idempotency, retention, risk_models, storage, store
from vitalq.errors import InvalidInput, NotFound
from worker.kinds import all_kinds, find_kind
from worker.models import JobStatus
from worker.objects import get_store

from .auth import current_user, owner_filter, require_admin, visible
from .errors import created, json_body, parse_json

bp = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_PAGE = 200


@bp.get("/kinds")
def list_kinds():
    return jsonify({"kinds": [kind.describe() for kind in all_kinds()]})


@bp.get("/kinds/<name>")
def get_kind(name: str):
    return jsonify(find_kind(name).describe())


@bp.post("/jobs")
def submit_job():
    """Submit a job as JSON ``{"kind", "params", "priority"}`` or as a form with the same
    fields (``params`` JSON-encoded) and, multipart, the input in ``file``."""
    upload = filename = None
    if request.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = request.form
        kind, priority = form.get("kind"), form.get("priority")
        params = _json_field(form.get("params"), "params")
        file = request.files.get("file")
        if file is not None and file.filename:
            upload, filename = file.stream, file.filename
    else:
        body = json_body()
        unknown = sorted(set(body) - {"kind", "params", "priority", "upload"})
        if unknown:  # a misspelt "priority" would otherwise pass unnoticed
            raise InvalidInput(f"unknown field {unknown[0]!r}; a job is kind, params, priority and upload",
                               {"fields": {name: "not a field of a job" for name in unknown}})
        kind, params, priority = body.get("kind"), body.get("params"), body.get("priority")
        if body.get("upload") is not None:
            claim = _upload_claims().read(body["upload"])
            upload, filename = storage.DirectUpload(claim["location"], claim["size"], claim["sha256"]), claim["filename"]
    try:
        request_fingerprint = idempotency.fingerprint(
            endpoint="jobs", kind=kind, params=params, priority=priority,
            file=None if upload is None else (upload.sha256, upload.size, filename))
        with _once(request_fingerprint) as first:
            if first.job_ids:
                return _replayed(store.get(first.job_ids[0]).to_dict())
            job = dispatch.submit(kind, params, priority, upload=upload, filename=filename,
                                  owner_id=current_user().id, admin=current_user().is_admin)
            first.made([job.id])
            if isinstance(upload, storage.DirectUpload):  # an input now, no longer an offer
                storage.release_offer(current_user().id, claim["location"], claim["size"])
    finally:
        if isinstance(upload, storage.DirectUpload):
            upload.discard()
    return created(job.to_dict(), url_for("api.get_job", job_id=job.id))


@bp.post("/uploads")
def offer_upload():
    """A large file's way around the web tier: ``{"filename", "size", "sha256"}`` gets a
    presigned URL to PUT exactly that file into the object store, and an ``upload`` claim
    to submit the job with (``POST /jobs`` as JSON, ``"upload": <claim>``). The worker
    that reads the file checks its sha256. 404 without an object store; 429 past the
    user's offers not yet submitted (``VITALQ_MAX_PENDING_UPLOAD_BYTES``, 64 offers)."""
    stated = json_body()
    offer = storage.offer_direct_upload(stated, current_user().id)
    claim = _upload_claims().make({"location": offer["location"], **stated})
    return jsonify({"upload": claim, "url": offer["url"], "method": "PUT",
                    "headers": {"Content-Length": str(stated["size"])},
                    "expires_in_s": storage.DIRECT_UPLOAD_EXPIRES_S}), 201


class _UploadClaims:
    """Signed claims on direct uploads: what was offered, to whom. A claim names its
    user, so one user's upload cannot become another's input."""

    def __init__(self, secret_key):
        self.serializer = URLSafeTimedSerializer(secret_key, salt="vitalq-direct-upload")

    def make(self, offer: dict[str, Any]) -> str:
        return self.serializer.dumps({**offer, "user": current_user().id})

    def read(self, claim: Any) -> dict[str, Any]:
        try:
            offer = self.serializer.loads(claim, max_age=storage.DIRECT_UPLOAD_EXPIRES_S) if isinstance(claim, str) \
                else None
        except BadSignature:
            offer = None
        if offer is None or offer.get("user") != current_user().id:
            raise InvalidInput("not an upload offered to you, or offered too long ago",
                               {"fields": {"upload": "not a valid upload"}})
        return offer


def _upload_claims() -> _UploadClaims:
    return _UploadClaims(current_app.secret_key)


@bp.post("/batches")
def submit_jobs():
    """Submit up to 100 jobs without files at once, ``{"jobs": [{"kind", "params", "priority"}]}``:
    all are queued or none (the first bad one named by its ``index``)."""
    body = json_body()
    if set(body) - {"jobs"}:
        raise InvalidInput("a batch is {\"jobs\": [...]}", {"fields": {name: "not a field of a batch"
                                                                       for name in set(body) - {"jobs"}}})
    with _once(idempotency.fingerprint(endpoint="batches", jobs=body.get("jobs"))) as first:
        if first.job_ids:
            return _replayed({"jobs": [store.get(job_id).to_dict() for job_id in first.job_ids]})
        jobs = dispatch.submit_many(body.get("jobs"), owner_id=current_user().id, admin=current_user().is_admin)
        first.made([job.id for job in jobs])
    response = jsonify({"jobs": [job.to_dict() for job in jobs]})
    response.status_code = 201
    return response


class _FirstRequest:
    """What ``_once`` knows of the first request with this request's Idempotency-Key."""

    def __init__(self, job_ids: list[str] | None):
        self.job_ids = job_ids
        self.made_ids: list[str] | None = None

    def made(self, job_ids: list[str]) -> None:
        self.made_ids = job_ids


@contextlib.contextmanager
def _once(request_fingerprint: str) -> Iterator[_FirstRequest]:
    """A submission under its ``Idempotency-Key`` header, if it has one: ``job_ids`` are
    the jobs a first request with the key made (answer with them), else this request is
    the first and says what it ``made``; a failed first request frees its key."""
    key = idempotency.check_key(request.headers.get("Idempotency-Key"))
    if key is None:
        yield _FirstRequest(None)
        return
    owner = current_user().id
    first = _FirstRequest(idempotency.claim(owner, key, request_fingerprint))
    if first.job_ids:
        yield first
        return
    try:
        yield first
    except BaseException:
        idempotency.release(owner, key)
        raise
    idempotency.record(owner, key, request_fingerprint, first.made_ids or [])


def _replayed(body: dict[str, Any]):
    """The answer to a repeated submission: what its first made, 200 rather than 201."""
    response = jsonify(body)
    response.headers["Idempotent-Replayed"] = "true"
    return response


@bp.get("/jobs")
def list_jobs():
    kind = request.args.get("kind") or None
    status = request.args.get("status")
    if status is not None and status not in {s.value for s in JobStatus}:
        raise InvalidInput(f"unknown status {status!r}", {"fields": {"status": "unknown status"}})
    limit = _int_arg("limit", 50, 1, MAX_PAGE)
    offset = _int_arg("offset", 0, 0, 10**9)
    jobs, total = store.find(kind=kind, status=status, owner_id=owner_filter(), limit=limit, offset=offset)
    next_offset = offset + limit if offset + limit < total else None
    return jsonify({
        "jobs": _with_owners(jobs), "total": total, "limit": limit, "offset": offset,
        "next": None if next_offset is None else url_for("api.list_jobs", kind=kind, status=status,
                                                            limit=limit, offset=next_offset),
    })


@bp.get("/jobs/<job_id>")
def get_job(job_id: str):
    return jsonify(_with_owners([visible(store.get(job_id))])[0])


def _with_owners(jobs) -> list[dict[str, Any]]:
    """Each job as JSON with ``owner``, the name of who submitted it (an admin's list
    holds everyone's jobs)."""
    names = accounts.names_of({job.owner_id for job in jobs if job.owner_id is not None})
    return [{**job.to_dict(), "owner": names.get(job.owner_id)} for job in jobs]


@bp.post("/jobs/<job_id>/cancel")
def cancel_job(job_id: str):
    """200 when the job is cancelled; 202 when a running job has been asked to stop; 409
    JOB_FINISHED when it had already finished (nothing is deleted)."""
    visible(store.get(job_id))
    job = dispatch.cancel(job_id)
    return jsonify(job.to_dict()), 200 if job.finished else 202


@bp.delete("/jobs/<job_id>")
def delete_job(job_id: str):
    """A finished job is deleted, with its artifacts, its events and (once no other job
    refers to it) its upload: 204. A live job is cancelled, as ``POST .../cancel`` does."""
    if not visible(store.get(job_id)).finished:
        return cancel_job(job_id)
    retention.delete_job(job_id)
    return "", 204


@bp.post("/jobs/<job_id>/retry")
def retry_job(job_id: str):
    """Run a finished job again, as a new job with the same kind, params and input file."""
    priority = json_body(optional=True).get("priority")
    visible(store.get(job_id))
    job = dispatch.resubmit(job_id, priority, owner_id=current_user().id)
    return created(job.to_dict(), url_for("api.get_job", job_id=job.id))


@bp.get("/jobs/<job_id>/artifacts")
def list_artifacts(job_id: str):
    return jsonify({"artifacts": visible(store.get(job_id)).artifacts or []})


@bp.get("/jobs/<job_id>/artifacts/<name>")
def get_artifact(job_id: str, name: str):
    job = visible(store.get(job_id))
    if name not in {artifact["name"] for artifact in job.artifacts or []}:
        raise NotFound(f"job {job_id} has no artifact {name!r}")
    as_attachment = request.args.get("download") == "1"
    objects, key = get_store(), storage.artifact_key(job_id, name)
    local = objects.local_path(objects.location(key))
    if local is None:  # in an object store: passed through as it arrives
        [size] = [artifact["size"] for artifact in job.artifacts if artifact["name"] == name]
        headers = {"Accept-Ranges": "bytes",
                   "Content-Disposition": f'{"attachment" if as_attachment else "inline"}; filename="{name}"'}
        # One byte range, as send_file serves a local file's: a page reads a stretch of a
        # long signal without the rest. Several ranges, or none that fits, get it whole.
        wanted = request.range.range_for_length(size) if request.range and len(request.range.ranges) == 1 else None
        if wanted is not None:
            start, stop = wanted
            return Response(stream_with_context(objects.read_chunks(key, byte_range=(start, stop))), status=206,
                            mimetype=_media_type(name),
                            headers={**headers, "Content-Length": str(stop - start),
                                     "Content-Range": f"bytes {start}-{stop - 1}/{size}"})
        return Response(stream_with_context(objects.read_chunks(key)), mimetype=_media_type(name),
                        headers={**headers, "Content-Length": str(size)})
    # Streamed in blocks that give the process's other requests a turn (see ``CooperativeFile``).
    request.environ["wsgi.file_wrapper"] = CooperativeFile
    return send_file(local, as_attachment=as_attachment)


def _media_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


class CooperativeFile:
    """A file served in 256 KiB blocks, giving the other requests of the process a turn
    after each (``time.sleep(0)``: under gevent, a switch to the event loop; under threads,
    the GIL). A socket to a fast client never blocks, so a download in gunicorn's own
    file wrapper held the gevent loop until its buffer filled: with ten clients
    downloading an 80 MB result, a job's record took 200 ms at the 95th percentile to
    answer instead of 6 ms. The WSGI ``wsgi.file_wrapper`` interface, with werkzeug's
    seeking (for ranges)."""

    BLOCK = 256 * 1024
    #: Gunicorn sends a file wrapper's ``filelike`` with sendfile(2), which never lets the
    #: loop run: with none, it iterates the wrapper as any response.
    filelike = None

    def __init__(self, file, _block_size: int = 0):
        self.file = file

    def __iter__(self) -> "CooperativeFile":
        return self

    def __next__(self) -> bytes:
        time.sleep(0)
        block = self.file.read(self.BLOCK)
        if not block:
            raise StopIteration
        return block

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self.file.tell()

    def close(self) -> None:
        self.file.close()


def _json_field(raw: str | None, name: str) -> Any:
    return None if raw is None or raw == "" else parse_json(raw, field=name)


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be an integer from {low} to {high}", {"fields": {name: "out of range"}})
    return value


@bp.get("/models")
def list_models():
    """The risk-model registry: every version, newest last, and which is active."""
    models = risk_models.registry()
    return jsonify({"models": [record.to_dict() for record in models.versions()],
                    "active_version": models.active_version()})


@bp.get("/models/<int(max=2147483647):version>")
def get_model(version: int):
    return jsonify(_model_call(lambda models: models.get(version)).to_dict())


@bp.post("/models/<int(max=2147483647):version>/activate")
def activate_model(version: int):
    require_admin()
    return jsonify(_model_call(lambda models: models.activate(version)).to_dict())


def _model_call(call):
    return call(risk_models.registry())
