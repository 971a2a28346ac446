"""A small client of vitalq's HTTP API and websocket, for the command line and scripts."""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import websocket


#: How often a submission is sent when its answer is lost, and the first wait between (s).
SUBMIT_ATTEMPTS = 3
RETRY_DELAY_S = 1.0
#: Files of at least this many bytes go straight into the deployment's object store
#: (``POST /api/v1/uploads``), where it has one; smaller ones, and all where it has
#: none, go with the job through the web tier.
DIRECT_UPLOAD_BYTES = 64 * 1024 * 1024


class ApiError(Exception):
    """An error answer of the API, with its stable code."""

    def __init__(self, status: int, error: dict[str, Any]):
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.status, self.code, self.message = status, error.get("code"), error.get("message")
        self.details = error.get("details") or {}


class ReportingFile:
    """A file being uploaded that reports each block read: ``on_read(bytes so far, size)``.
    Its size comes from the file itself (httpx reads ``fileno``), so the request keeps its
    Content-Length."""

    def __init__(self, file, on_read: Callable[[int, int], None]):
        self.file, self.on_read = file, on_read
        self.size = os.fstat(file.fileno()).st_size

    def read(self, size: int = -1) -> bytes:
        block = self.file.read(size)
        self.on_read(self.file.tell(), self.size)
        return block

    def fileno(self) -> int:
        return self.file.fileno()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self.file.tell()


class Client:
    def __init__(self, base_url: str = "http://127.0.0.1:8000", token: str | None = None, timeout_s: float = 60.0,
                 direct_upload_bytes: int = DIRECT_UPLOAD_BYTES):
        self.direct_upload_bytes = direct_upload_bytes
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout_s, headers=self.headers)

    def _call(self, method: str, path: str, **kwargs) -> Any:
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
            except (ValueError, KeyError, TypeError):
                error = {"code": "HTTP_" + str(response.status_code), "message": response.text[:500]}
            raise ApiError(response.status_code, error)
        return None if response.status_code == 204 else response.json()

    def kinds(self) -> dict[str, dict[str, Any]]:
        return {kind["name"]: kind for kind in self._call("GET", "/api/v1/kinds")["kinds"]}

    def submit(self, kind: str, params: dict[str, Any] | None = None, priority: int | None = None,
               file: Path | None = None, idempotency_key: str | None = None,
               on_upload: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """Submit a job; returns it. The request carries an ``Idempotency-Key`` (a new
        UUID unless given), and one whose answer was lost (a timeout, a dropped
        connection) is sent again with the same key, up to SUBMIT_ATTEMPTS times: the
        server answers a repeat with the job the first attempt made, never a twin.
        ``on_upload(sent, total)`` is told the bytes of ``file`` sent so far. A file of
        ``direct_upload_bytes`` or more goes straight into the object store, where the
        deployment has one (``direct_upload``)."""
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        claim = None
        if file is not None and os.path.getsize(file) >= self.direct_upload_bytes:
            claim = self.direct_upload(Path(file), on_upload)
        for attempt in range(SUBMIT_ATTEMPTS):
            try:
                if file is None or claim is not None:
                    body = {"kind": kind, "params": params or {}, "priority": priority}
                    return self._call("POST", "/api/v1/jobs", headers=headers,
                                      json=body if claim is None else {**body, "upload": claim})
                data = {"kind": kind, "params": json.dumps(params or {})}
                if priority is not None:
                    data["priority"] = str(priority)
                with open(file, "rb") as stream:  # httpx streams the file; it is never read whole
                    upload = ReportingFile(stream, on_upload) if on_upload else stream
                    return self._call("POST", "/api/v1/jobs", headers=headers, data=data,
                                      files={"file": (Path(file).name, upload)})
            except ApiError as error:
                if error.code != "IDEMPOTENCY_CONFLICT" or attempt == SUBMIT_ATTEMPTS - 1 \
                        or error.details.get("fields", {}).get("Idempotency-Key") != "in use":
                    raise
            except httpx.TransportError:
                if attempt == SUBMIT_ATTEMPTS - 1:
                    raise
            time.sleep(RETRY_DELAY_S * 2**attempt)
        raise AssertionError("unreachable")

    def direct_upload(self, file: Path, on_upload: Callable[[int, int], None] | None = None) -> str | None:
        """Put ``file`` into the deployment's object store through a presigned URL, the web
        tier bypassed; returns the claim to submit its job with, or None if the deployment
        has no object store (404: send the file with the job)."""
        size, digest = file.stat().st_size, hashlib.sha256()
        with open(file, "rb") as stream:
            while block := stream.read(1024 * 1024):
                digest.update(block)
        try:
            offer = self._call("POST", "/api/v1/uploads",
                               json={"filename": file.name, "size": size, "sha256": digest.hexdigest()})
        except ApiError as error:
            if error.status == 404:
                return None
            raise

        def blocks() -> Iterator[bytes]:
            with open(file, "rb") as stream:
                while block := stream.read(1024 * 1024):
                    yield block
                    if on_upload:
                        on_upload(stream.tell(), size)

        # Not this client's session: the URL carries its own signature, and a store refuses a second one.
        answer = httpx.put(offer["url"], content=blocks(), headers=offer["headers"], timeout=self.http.timeout)
        if answer.status_code >= 300:
            raise ApiError(answer.status_code, {"code": "UPLOAD_FAILED",
                                                "message": f"the object store refused the upload: {answer.text[:300]}"})
        return offer["upload"]

    def job(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/jobs/{job_id}")

    def jobs(self, **filters: Any) -> dict[str, Any]:
        return self._call("GET", "/api/v1/jobs", params={k: v for k, v in filters.items() if v is not None})

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._call("POST", f"/api/v1/jobs/{job_id}/cancel")

    def delete(self, job_id: str) -> None:
        """Delete a finished job with its artifacts (a live one is cancelled instead)."""
        self._call("DELETE", f"/api/v1/jobs/{job_id}")

    def events(self, job_id: str, after: int | None = None, timeout_s: float = 3600.0) -> Iterator[dict[str, Any]]:
        """The job's websocket messages (snapshot, events, final) until it closes."""
        url = self.base_url.replace("http", "ws", 1) + f"/ws/jobs/{job_id}"
        if after is not None:
            url += f"?after={after}"
        ws = websocket.create_connection(url, timeout=timeout_s, header=self.headers)
        try:
            while True:
                try:
                    raw = ws.recv()
                except websocket.WebSocketConnectionClosedException:
                    return
                if not raw:
                    return
                message = json.loads(raw)
                yield message
                if message["type"] in ("final", "error"):
                    return
        finally:
            ws.close()

    def wait(self, job_id: str, on_event: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Follow the job's websocket to its end; returns the final job."""
        for message in self.events(job_id):
            if on_event is not None:
                on_event(message)
            if message["type"] == "final":
                return message["job"]
        return self.job(job_id)


def coerce_param(schema: dict[str, Any], name: str, raw: str) -> Any:
    """A ``--param name=value`` string as the type the kind's schema declares: the first
    of its types (``["number", "null"]``, ``["string", "integer"]``) that reads it, a
    string last; ``null`` for a type that allows it."""
    spec = schema.get("properties", {}).get(name)
    if spec is None:
        return raw  # the server names unknown params in its answer
    declared = spec.get("type")
    types = declared if isinstance(declared, list) else [declared]
    if "null" in types and raw.lower() in ("null", "none", ""):
        return None
    readers = {"integer": int, "number": float, "array": json.loads, "object": json.loads,
               "boolean": lambda text: {"true": True, "1": True, "yes": True, "false": False, "0": False,
                                        "no": False}[text.lower()]}
    for kind in sorted((t for t in types if t in readers), key=["integer", "number", "boolean", "array",
                                                                  "object"].index):
        try:
            return readers[kind](raw)
        except (ValueError, KeyError):
            continue
    if "string" in types or declared is None:
        return raw
    wanted = " or ".join(t for t in types if t != "null")
    article = "an" if wanted[:1] in "aeiou" else "a"
    raise ValueError(f"--param {name}: {raw!r} is not {article} {wanted}")  # the server names unknown params in its answer
    kind = spec.get("type")
    try:
        if kind == "integer":
            return int(raw)
        if kind == "number":
            return float(raw)
        if kind == "boolean":
            return {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}[raw.lower()]
        if kind in ("array", "object"):
            return json.loads(raw)
    except (ValueError, KeyError):
        raise ValueError(f"--param {name}: {raw!r} is not a {kind}") from None
    return raw
