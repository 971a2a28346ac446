"""Where files live: uploads named by their sha256, and each job's artifact folder.

Uploads are streamed to disk while they arrive and hashed on the way, so a large file
is never held in memory. A file's name never comes from the client: an upload is
stored as ``<sha256><suffix>``, with the suffix kept only when it is a plain one.
"""

from __future__ import annotations

import errno
import hashlib
import mimetypes
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from vitalq.errors import InsufficientStorage, InvalidInput, TooLarge
from .settings import get_settings

_PLAIN_SUFFIX = re.compile(r"^\.[a-z0-9]{1,10}$")
_ARTIFACT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class StoredUpload:
    sha256: str
    size: int
    path: Path
    filename: str

    def to_record(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size, "filename": self.filename, "path": str(self.path)}


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
    (see ``web.create_app``); ``commit`` then moves it to its content address.
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
        """Move the file to ``<sha256><suffix>`` in the uploads folder (deduplicated)."""
        self._file.close()
        digest = self.sha256
        target = self._path.parent / f"{digest}{plain_suffix(filename)}"
        if target.exists():
            self._path.unlink()
            os.utime(target)  # in use again: retention leaves a recently used upload alone
        else:
            os.replace(self._path, target)
        self.committed = True
        # The name is a label only: control characters (a NUL, which PostgreSQL cannot
        # store) and unpaired surrogates are left out of it.
        label = "".join(c for c in Path(filename or "").name if c.isprintable() and not "\ud800" <= c <= "\udfff")
        return StoredUpload(digest, self.size, target, label[:255])

    def discard(self) -> None:
        if not self.committed:
            self._file.close()
            self._path.unlink(missing_ok=True)


def job_dir(job_id: str) -> Path:
    """The folder holding a job's artifacts (not created)."""
    return get_settings().jobs_dir / job_id


def artifact_path(job_id: str, name: str) -> Path:
    """Path of the artifact ``name`` of a job; raises InvalidInput for a name that is not plain."""
    if not _ARTIFACT_NAME.match(name):
        raise InvalidInput(f"not an artifact name: {name!r}")
    return job_dir(job_id) / name


def list_artifacts(job_id: str) -> list[dict[str, Any]]:
    """The files in a job's folder as ``[{"name", "size", "media_type"}]``."""
    folder = job_dir(job_id)
    if not folder.is_dir():
        return []
    return [
        {
            "name": path.name,
            "size": path.stat().st_size,
            "media_type": mimetypes.guess_type(path.name)[0] or "application/octet-stream",
        }
        for path in sorted(folder.iterdir())
        if path.is_file() and not path.name.startswith(".")
    ]


def remove_artifacts(job_id: str, keep: frozenset[str] = frozenset()) -> None:
    """Remove a job's folder, or only the files in it not named in ``keep``."""
    if not keep:
        shutil.rmtree(job_dir(job_id), ignore_errors=True)
        return
    for artifact in list_artifacts(job_id):
        if artifact["name"] not in keep:
            (job_dir(job_id) / artifact["name"]).unlink(missing_ok=True)
