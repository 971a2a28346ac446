"""What vitalq stores: uploads named by their sha256, and each job's artifacts.

Uploads are streamed to disk while they arrive and hashed on the way, so a large file
is never held in memory, then committed to the object store (``worker.objects``). A
file's name never comes from the client: an upload is stored as
``uploads/<sha256><suffix>``, with the suffix kept only when it is a plain one.

A job writes its artifacts into its folder in this machine's data folder
(``job_dir``); when it ends, ``publish_artifacts`` hands them to the object store (with
the local folder as the store, they are already there) as ``jobs/<job id>/<name>``.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import mimetypes
import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from jsonschema import Draft202012Validator

from vitalq.errors import InsufficientStorage, InvalidInput, NotFound, RateLimited, TooLarge
from .broker import KEY_PREFIX, get_redis
from .objects import get_store
from .schemas import field_errors
from .settings import get_settings

_PLAIN_SUFFIX = re.compile(r"^\.[a-z0-9]{1,10}$")
_ARTIFACT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class StoredUpload:
    sha256: str
    size: int
    #: Where it is stored: a local path or an ``s3://`` URL (``worker.objects``).
    location: str
    filename: str
    #: Its sha256 is the client's word (a direct upload), checked by the worker that reads it.
    declared: bool = False

    def to_record(self) -> dict[str, Any]:
        record = {"sha256": self.sha256, "size": self.size, "filename": self.filename, "path": self.location}
        return {**record, "sha256_declared": True} if self.declared else record


def file_label(filename: str | None) -> str:
    """A client's file name as a label only: without control characters (a NUL, which
    PostgreSQL cannot store) and unpaired surrogates, at most 255 characters."""
    label = "".join(c for c in Path(filename or "").name if c.isprintable() and not "\ud800" <= c <= "\udfff")
    return label[:255]


def file_sha256(path: Path) -> str:
    """The hex SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def plain_suffix(filename: str | None) -> str:
    """The lower-case suffix of a client's file name, or "" if it is not a plain one."""
    suffix = Path(filename or "").suffix.lower()
    return suffix if _PLAIN_SUFFIX.match(suffix) else ""


def disk_space() -> dict[str, int]:
    """Free and total bytes on the data folder's disk."""
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    disk = shutil.disk_usage(settings.data_dir)
    return {"free_bytes": disk.free, "total_bytes": disk.total}


def bytes_under(folder: Path, allocated: bool = False) -> int:
    """Bytes of the files under ``folder`` (a walk of every file; none if it is not
    there): their sizes, or with ``allocated`` the disk blocks they take (a sparse file
    counts what it holds)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                stat = os.stat(os.path.join(root, name), follow_symlinks=False)
            except OSError:  # removed meanwhile
                continue
            total += stat.st_blocks * 512 if allocated else stat.st_size
    return total


def refuse_if_disk_low() -> dict[str, int]:
    """``disk_space``, or InsufficientStorage (507) when the data folder's disk has less
    free than ``VITALQ_MIN_FREE_DISK_BYTES``: a submission is refused before anything is
    written, rather than accepted and then failed."""
    space, required = disk_space(), get_settings().min_free_disk_bytes
    if space["free_bytes"] < required:
        raise InsufficientStorage(f"the server's disk has {space['free_bytes']} bytes free, under the "
                                  f"{required} it keeps free; try again later",
                                  {"free_bytes": space["free_bytes"], "required_bytes": required})
    return space


class UploadSink:
    """A file that hashes and counts what is written to it, refusing past ``limit`` bytes.

    Werkzeug's multipart parser writes each uploaded file part into one of these
    (see ``web.create_app``), in this machine's uploads folder, where the submission's
    checks read its headers; ``commit`` then stores it under its content address.
    """

    def __init__(self, limit: int | None = None, directory: Path | None = None):
        refuse_if_disk_low()
        directory = directory or get_settings().uploads_dir
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, prefix=".incoming-")
        self._file: BinaryIO = os.fdopen(fd, "w+b")
        self._path = Path(name)
        self._hash = hashlib.sha256()
        self._limit = limit
        self.size = 0
        self.committed = False

    @property
    def path(self) -> Path:
        """Where the upload lies until ``commit`` (for checks of its content)."""
        self._file.flush()
        return self._path

    @property
    def sha256(self) -> str:
        """The hex SHA-256 of what has been written."""
        return self._hash.hexdigest()

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self._limit is not None and self.size > self._limit:
            raise TooLarge(f"upload is larger than the limit of {self._limit} bytes", {"limit_bytes": self._limit})
        self._hash.update(data)
        try:
            written = self._file.write(data)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise InsufficientStorage("the server's disk filled while the upload arrived; try again later") \
                    from None
            raise
        # A fast client never makes the socket wait, so parsing a large upload would hold the
        # web process's one event loop for seconds: give the other requests a turn (under
        # gevent, sleep(0) yields to them; with threads it lets go of the GIL).
        time.sleep(0)
        return written

    def __getattr__(self, name: str) -> Any:  # read, seek, tell, flush... of the file
        return getattr(self._file, name)

    def commit(self, filename: str | None) -> StoredUpload:
        """Store the file as ``uploads/<sha256><suffix>`` (deduplicated); raises
        StoreUnavailable if the store cannot take it (the file is then discarded)."""
        self._file.close()
        digest = self.sha256
        location = get_store().put(self._path, f"uploads/{digest}{plain_suffix(filename)}", keep_existing=True)
        self.committed = True
        return StoredUpload(digest, self.size, location, file_label(filename))

    def discard(self) -> None:
        if not self.committed:
            self._file.close()
            self._path.unlink(missing_ok=True)


#: What a client states of a file it would put into the store itself (``POST /api/v1/uploads``).
DIRECT_UPLOAD_SCHEMA = {
    "type": "object", "required": ["filename", "size", "sha256"], "additionalProperties": False,
    "properties": {"filename": {"type": "string", "minLength": 1, "maxLength": 255},
                   "size": {"type": "integer", "minimum": 1, "description": "bytes"},
                   "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "lower-case hex"}},
}
_direct_upload_validator = Draft202012Validator(DIRECT_UPLOAD_SCHEMA)
#: How long the URL of a direct upload, and its claim, are good for (seconds).
DIRECT_UPLOAD_EXPIRES_S = 3600
#: The submission's checks read this many bytes at each end of a direct upload.
DIRECT_UPLOAD_LOOK_BYTES = 8 * 1024 * 1024


#: Direct uploads one user may have offered and not yet submitted, at most (beside
#: ``VITALQ_MAX_PENDING_UPLOAD_BYTES`` of them).
MAX_PENDING_OFFERS = 64

# A user's offers not yet submitted: a sorted set of "<bytes> <key>" by when each
# expires. Expired ones are dropped, then the new one is held if the user's offers stay
# within both bounds: {-1} when held, else {bytes held, offers held, the oldest's expiry}.
_HOLD_OFFER = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local offers = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local held = 0
for i = 1, #offers, 2 do held = held + tonumber(string.match(offers[i], '^(%d+) ')) end
if held + tonumber(ARGV[4]) > tonumber(ARGV[5]) or #offers / 2 >= tonumber(ARGV[6]) then
  return {held, #offers / 2, offers[2] or ARGV[2]}
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIREAT', KEYS[1], math.ceil(tonumber(ARGV[2])))
return {-1}
"""


@functools.lru_cache(maxsize=None)
def _hold_offer_script(client):
    return client.register_script(_HOLD_OFFER)  # sent once per process and server, then run by its SHA1


def _offers_key(owner_id: int) -> str:
    return f"{KEY_PREFIX}offers:{owner_id}"


def offer_direct_upload(stated: dict[str, Any], owner_id: int) -> dict[str, str]:
    """Where a client may put a file it states (DIRECT_UPLOAD_SCHEMA) into the object
    store itself, bypassing the web tier: ``{"location", "url"}`` (a presigned PUT, for
    exactly its size). Each offer is a key of its own under ``incoming/``: a client's
    file never takes a content address it only claims.

    The offers one user holds (not yet submitted, nor expired) are bounded, by bytes
    (``VITALQ_MAX_PENDING_UPLOAD_BYTES``) and in number (MAX_PENDING_OFFERS): the store
    is shared, and a user who asked for a thousand offers could otherwise fill it for
    everyone. ``release_offer`` frees one as its job is submitted.

    Raises InvalidInput for a statement the schema refuses, NotFound without an object
    store, TooLarge beyond the upload limit, RateLimited past the user's bounds."""
    refused = field_errors(_direct_upload_validator, stated)
    if refused:
        raise InvalidInput(f"invalid upload: {'; '.join(f'{name}: {why}' for name, why in refused.items())}",
                           {"fields": refused})
    filename, size = stated["filename"], stated["size"]
    store, limit = get_store(), get_settings().max_upload_bytes
    if store.is_local:
        raise NotFound("direct uploads need an object store (VITALQ_STORAGE_URL); send the file with the job")
    if size > limit:
        raise TooLarge(f"upload is larger than the limit of {limit} bytes", {"limit_bytes": limit})
    key = f"incoming/{uuid.uuid4().hex}{plain_suffix(filename)}"
    _hold_offer(owner_id, key, size)
    return {"location": store.location(key), "url": store.presigned_put(key, size, DIRECT_UPLOAD_EXPIRES_S)}


def _hold_offer(owner_id: int, key: str, size: int) -> None:
    limit, now = get_settings().max_pending_upload_bytes, time.time()
    answer = _hold_offer_script(get_redis())(
        keys=[_offers_key(owner_id)], args=[now, now + DIRECT_UPLOAD_EXPIRES_S, f"{size} {key}", size, limit,
                                            MAX_PENDING_OFFERS])
    if answer[0] == -1:
        return
    held, offers, oldest_expires = int(answer[0]), int(answer[1]), float(answer[2])
    raise RateLimited(f"your direct uploads not yet submitted hold {held} bytes in {offers} offers; at most "
                      f"{limit} bytes in {MAX_PENDING_OFFERS} offers at once: submit their jobs, or wait",
                      {"held_bytes": held, "held_offers": offers, "limit_bytes": limit,
                       "limit_offers": MAX_PENDING_OFFERS},
                      retry_after_s=max(1, int(oldest_expires - now) + 1))


def release_offer(owner_id: int, location: str, size: int) -> None:
    """The direct upload at ``location`` no longer counts against its offerer's bounds:
    its job was submitted (it is then an upload like any other)."""
    get_redis().zrem(_offers_key(owner_id), f"{size} {get_store().key_of(location)}")


class DirectUpload:
    """A file a client put into the object store itself (``offer_direct_upload``), as a
    submission takes it: ``path`` is a bounded look at it for the submission's checks
    (its first and last DIRECT_UPLOAD_LOOK_BYTES in a sparse file of its size), and
    ``commit`` records it where it is. Raises InvalidInput if it has not arrived whole."""

    def __init__(self, location: str, size: int, sha256: str):
        store = get_store()
        arrived = store.size(location)
        if arrived != size:
            raise InvalidInput("the upload has not arrived in the object store: PUT the file to its URL first"
                               if arrived is None else f"the stored upload has {arrived} bytes, not the {size} offered",
                               {"fields": {"upload": "not arrived" if arrived is None else "incomplete"}})
        refuse_if_disk_low()
        directory = get_settings().uploads_dir
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, prefix=".look-")
        os.close(fd)
        self.path, self.location, self.size, self.sha256 = Path(name), location, size, sha256
        try:
            store.fetch_ends(location, self.path, size, DIRECT_UPLOAD_LOOK_BYTES)
        except BaseException:
            self.discard()
            raise

    def commit(self, filename: str | None) -> StoredUpload:
        self.discard()
        return StoredUpload(self.sha256, self.size, self.location, file_label(filename), declared=True)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def input_exists(record: dict[str, Any]) -> bool:
    """Whether a job's input (its input record) is still stored."""
    return get_store().exists(record["path"])


def job_dir(job_id: str) -> Path:
    """The folder of this machine's data folder where a job writes its artifacts (not created)."""
    return get_settings().jobs_dir / job_id


def artifact_path(job_id: str, name: str) -> Path:
    """Path to write the artifact ``name`` of a job to; raises InvalidInput for a name that is not plain."""
    if not _ARTIFACT_NAME.match(name):
        raise InvalidInput(f"not an artifact name: {name!r}")
    return job_dir(job_id) / name


def artifact_key(job_id: str, name: str) -> str:
    """The object store's key of a job's artifact."""
    return f"jobs/{job_id}/{name}"


def publish_artifacts(job_id: str) -> None:
    """Hand the files of the job's folder to the object store (with the local folder as
    the store: nothing to do), then remove the folder; raises StoreUnavailable."""
    store, folder = get_store(), job_dir(job_id)
    if store.is_local or not folder.is_dir():
        return
    for path in sorted(folder.iterdir()):
        if path.is_file() and _ARTIFACT_NAME.match(path.name):  # a plain name: no hidden files
            store.put(path, artifact_key(job_id, path.name))
    shutil.rmtree(folder, ignore_errors=True)


def list_artifacts(job_id: str) -> list[dict[str, Any]]:
    """The job's stored artifacts as ``[{"name", "size", "media_type"}]``."""
    found = []
    for stored in get_store().list(f"jobs/{job_id}/"):
        name = stored.key.rsplit("/", 1)[-1]
        if stored.key == artifact_key(job_id, name) and not name.startswith("."):
            found.append({"name": name, "size": stored.size,
                          "media_type": mimetypes.guess_type(name)[0] or "application/octet-stream"})
    return sorted(found, key=lambda artifact: artifact["name"])


def remove_artifacts(job_id: str, keep: frozenset[str] = frozenset()) -> None:
    """Remove a job's artifacts, stored and local, or only those not named in ``keep``."""
    store = get_store()
    if not store.is_local:  # this machine's folder holds only what is not stored yet
        shutil.rmtree(job_dir(job_id), ignore_errors=True)
    if not keep:
        store.delete_prefix(f"jobs/{job_id}/")
        return
    store.delete([stored.key for stored in store.list(f"jobs/{job_id}/")
                  if stored.key.rsplit("/", 1)[-1] not in keep])
