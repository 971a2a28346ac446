"""The object store: where uploads, artifacts and risk models live for every machine.

Two backends behind one interface, chosen by ``VITALQ_STORAGE_URL``:

- ``LocalFolder`` (the default: the setting empty) is the data folder itself. Every
  web and worker process must see the same folder, so several machines need it on a
  shared file system.
- ``S3Bucket`` (``s3://bucket/prefix``) is a bucket on any S3-compatible server; the
  endpoint, region and credentials come from the standard AWS variables
  (``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_ACCESS_KEY_ID``...). Machines then share
  nothing but the broker, the database and the bucket; each keeps only scratch copies
  in its own data folder.

Objects are named by keys, relative paths: ``uploads/<sha256><suffix>``,
``jobs/<job id>/<artifact>``, ``models/<version>/<file>``. Where a stored file is, its
*location*, is its path in the local folder or its ``s3://bucket/key`` URL: a job's
input record keeps it.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from vitalq.errors import Unavailable

from .settings import get_settings


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    #: Seconds since the epoch of its last write.
    modified: float


class StoreUnavailable(Unavailable):
    """The object store cannot be reached, or answered with a fault of its own (5xx):
    a submission is refused with 503, a job is retried with backoff."""


class LocalFolder:
    """Objects as files under ``root`` (the data folder)."""

    #: Its objects are files of this machine's data folder.
    is_local = True

    def __init__(self, root: Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalFolder({str(self.root)!r})"

    def location(self, key: str) -> str:
        return str(self.root / key)

    def key_of(self, location: str) -> str:
        return Path(location).relative_to(self.root).as_posix()

    def local_path(self, location: str) -> Path | None:
        """The file of a location, where this machine can read it in place (here: always)."""
        return Path(location)

    def put(self, source: Path, key: str, *, keep_existing: bool = False) -> str:
        """Move the file ``source`` to ``key``; returns its location. With
        ``keep_existing`` an object already there stays (``source`` is dropped) and is
        marked as recently used."""
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        if keep_existing and target.exists():
            source.unlink()
            os.utime(target)  # in use again: retention leaves a recently used upload alone
        else:
            os.replace(source, target)
        return str(target)

    def exists(self, location: str) -> bool:
        return Path(location).is_file()

    def modified(self, location: str) -> float | None:
        """When the object was last written (seconds since the epoch), None if it is gone."""
        try:
            return Path(location).stat().st_mtime
        except FileNotFoundError:
            return None

    def size(self, location: str) -> int | None:
        """The object's size in bytes, None if it is not there."""
        try:
            return Path(location).stat().st_size
        except FileNotFoundError:
            return None

    def fetch(self, location: str, into: Path) -> Path:
        """A local file with the object's bytes: here, the object's own file."""
        return Path(location)

    def read_chunks(self, key: str, chunk_bytes: int = 256 * 1024,
                    byte_range: tuple[int, int] | None = None) -> Iterator[bytes]:
        """The object's bytes in chunks, or those of ``byte_range`` (start, stop: a
        half-open interval within the object); opened now, so that a fault is raised here."""
        file = open(self.root / key, "rb")
        if byte_range is None:
            return _chunks(file, chunk_bytes)
        file.seek(byte_range[0])
        return _chunks(file, chunk_bytes, byte_range[1] - byte_range[0])

    def list(self, prefix: str) -> list[StoredObject]:
        """The objects under ``prefix`` (a folder: ends with "/")."""
        found = []
        folder = self.root / prefix
        for root, _dirs, files in os.walk(folder):
            for name in files:
                path = Path(root) / name
                try:
                    stat = path.stat()
                except FileNotFoundError:  # removed meanwhile
                    continue
                found.append(StoredObject(path.relative_to(self.root).as_posix(), stat.st_size, stat.st_mtime))
        return found

    def folders(self, prefix: str) -> dict[str, float]:
        """The folders directly under ``prefix`` (a job's artifacts, say), each with when it
        last changed."""
        folder = self.root / prefix
        if not folder.is_dir():
            return {}
        with os.scandir(folder) as entries:
            return {entry.name: entry.stat().st_mtime for entry in entries if entry.is_dir()}

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            (self.root / key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self.root / prefix, ignore_errors=True)

    def check(self) -> None:
        """Raises StoreUnavailable if the store cannot take files."""
        if not os.access(self.root, os.W_OK):
            raise StoreUnavailable(f"the data folder {self.root} is not writable")

    def sweep_incomplete(self, older_than_s: float) -> int:
        """Aborts uploads left unfinished (none here: a file is moved into place whole)."""
        return 0


class S3Bucket:
    """Objects in an S3 bucket, under ``prefix``, through boto3.

    Transfers use boto3's managed transfer: multipart above 16 MiB, four parts in flight
    (an upload holds at most 64 MiB of a file in memory)."""

    PART_BYTES = 16 * 1024 * 1024
    is_local = False

    def __init__(self, bucket: str, prefix: str = "", public_endpoint: str = ""):
        import boto3
        import botocore.config
        from boto3.s3.transfer import TransferConfig

        self.bucket, self.prefix = bucket, prefix.strip("/") + "/" if prefix.strip("/") else ""
        # Few retries of its own: a job retries with backoff, and a submission answers 503.
        config = botocore.config.Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5,
                                        read_timeout=60, max_pool_connections=16)
        self.client = boto3.client("s3", config=config)
        # A presigned URL is signed for its host: the one clients outside use, where it differs.
        self.public_client = boto3.client("s3", config=config, endpoint_url=public_endpoint) if public_endpoint \
            else self.client
        self.upload_config = TransferConfig(multipart_threshold=self.PART_BYTES, multipart_chunksize=self.PART_BYTES,
                                            max_concurrency=4)
        # A download streams each range into the file, so larger ranges cost no memory;
        # fewer requests took a 1 GB object from SeaweedFS in half the time.
        self.download_config = TransferConfig(multipart_threshold=self.PART_BYTES, multipart_chunksize=64 * 1024 * 1024,
                                              max_concurrency=4)

    def __repr__(self) -> str:
        return f"S3Bucket({self.bucket!r}, {self.prefix!r})"

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def key_of(self, location: str) -> str:
        return self._object_name(location)[len(self.prefix):]

    def _object_name(self, location: str) -> str:
        start = f"s3://{self.bucket}/"
        if not location.startswith(start):
            raise ValueError(f"{location!r} is not in bucket {self.bucket}")
        return location[len(start):]

    def local_path(self, location: str) -> Path | None:
        return None

    def put(self, source: Path, key: str, *, keep_existing: bool = False) -> str:
        name = self.prefix + key
        if keep_existing and self._head(name) is not None:
            with _faults_as_unavailable():  # in use again: copied onto itself, it counts as recent for retention
                self.client.copy_object(Bucket=self.bucket, Key=name, CopySource={"Bucket": self.bucket, "Key": name},
                                        MetadataDirective="REPLACE")
        else:
            self.upload(source, key)
        source.unlink()
        return self.location(key)

    def upload(self, source: Path, key: str) -> None:
        """Write the file ``source`` at ``key`` (``put`` without moving it: the file stays)."""
        with _faults_as_unavailable():
            self.client.upload_file(str(source), self.bucket, self.prefix + key, Config=self.upload_config)

    def _head(self, name: str) -> dict | None:
        """The object ``name``'s metadata (HeadObject), None if it is not there."""
        import botocore.exceptions

        try:
            with _faults_as_unavailable():
                return self.client.head_object(Bucket=self.bucket, Key=name)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def exists(self, location: str) -> bool:
        return self._head(self._object_name(location)) is not None

    def modified(self, location: str) -> float | None:
        head = self._head(self._object_name(location))
        return None if head is None else head["LastModified"].timestamp()

    def fetch_ends(self, location: str, target: Path, size: int, end_bytes: int) -> None:
        """Write the object's first and last ``end_bytes`` into ``target``, a sparse file of
        its ``size`` (what lies between reads as zeros): the bounded look a submission's
        checks take at headers, a zip's directory or a video's index."""
        name = self._object_name(location)
        ranges = [(0, size - 1)] if size <= 2 * end_bytes else [(0, end_bytes - 1), (size - end_bytes, size - 1)]
        with open(target, "wb") as file, _faults_as_unavailable():
            file.truncate(size)
            for first, last in ranges:
                body = self.client.get_object(Bucket=self.bucket, Key=name, Range=f"bytes={first}-{last}")["Body"]
                file.seek(first)
                for chunk in _chunks(body, 1024 * 1024):
                    file.write(chunk)

    def size(self, location: str) -> int | None:
        """The object's size in bytes, None if it is not there."""
        head = self._head(self._object_name(location))
        return None if head is None else head["ContentLength"]

    def presigned_put(self, key: str, size: int, expires_s: int) -> str:
        """A URL that lets its holder PUT exactly ``size`` bytes at ``key`` for ``expires_s`` seconds."""
        return self.public_client.generate_presigned_url("put_object", ExpiresIn=expires_s, Params={
            "Bucket": self.bucket, "Key": self.prefix + key, "ContentLength": size})

    def fetch(self, location: str, into: Path) -> Path:
        """Download the object into the folder ``into``; returns the copy's path."""
        name = self._object_name(location)
        target = into / name.rsplit("/", 1)[-1]
        with _faults_as_unavailable():
            self.client.download_file(self.bucket, name, str(target), Config=self.download_config)
        return target

    def read_chunks(self, key: str, chunk_bytes: int = 256 * 1024,
                    byte_range: tuple[int, int] | None = None) -> Iterator[bytes]:
        ranged = {} if byte_range is None else {"Range": f"bytes={byte_range[0]}-{byte_range[1] - 1}"}
        with _faults_as_unavailable():
            body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key, **ranged)["Body"]
        return _chunks(body, chunk_bytes)

    def list(self, prefix: str) -> list[StoredObject]:
        found = []
        with _faults_as_unavailable():
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                              Prefix=self.prefix + prefix):
                for item in page.get("Contents", []):
                    found.append(StoredObject(item["Key"][len(self.prefix):], item["Size"],
                                              item["LastModified"].timestamp()))
        return found

    def folders(self, prefix: str) -> dict[str, float]:
        newest: dict[str, float] = {}
        for stored in self.list(prefix):
            name = stored.key[len(prefix):].split("/")[0]
            newest[name] = max(newest.get(name, 0.0), stored.modified)
        return newest

    def delete(self, keys: list[str]) -> None:
        with _faults_as_unavailable():
            for start in range(0, len(keys), 1000):  # DeleteObjects takes 1000 keys at a time
                batch = [{"Key": self.prefix + key} for key in keys[start:start + 1000]]
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def delete_prefix(self, prefix: str) -> None:
        self.delete([stored.key for stored in self.list(prefix)])

    def put_bytes_if_absent(self, key: str, data: bytes) -> bool:
        """Write ``data`` at ``key`` unless an object is there (a conditional write:
        If-None-Match); returns whether this call wrote it."""
        import botocore.exceptions

        try:
            with _faults_as_unavailable():
                self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data, IfNoneMatch="*")
            return True
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise

    def check(self) -> None:
        with _faults_as_unavailable():
            self.client.head_bucket(Bucket=self.bucket)

    def sweep_incomplete(self, older_than_s: float) -> int:
        """Abort the multipart uploads under the prefix begun more than ``older_than_s``
        ago (a process killed mid-transfer leaves its parts, billed, behind). Returns how many."""
        oldest, aborted = time.time() - older_than_s, 0
        with _faults_as_unavailable():
            for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket,
                                                                                     Prefix=self.prefix):
                for upload in page.get("Uploads", []):
                    if upload["Initiated"].timestamp() < oldest:
                        self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"],
                                                           UploadId=upload["UploadId"])
                        aborted += 1
        return aborted


def _chunks(file, chunk_bytes: int, limit: int | None = None) -> Iterator[bytes]:
    """What ``file`` reads, ``chunk_bytes`` at a time, up to ``limit`` bytes (None: to its end)."""
    left = float("inf") if limit is None else limit
    try:
        while left > 0 and (chunk := file.read(int(min(chunk_bytes, left)))):
            left -= len(chunk)
            yield chunk
    finally:
        file.close()


class _faults_as_unavailable:
    """Connection faults and the store's own (5xx, throttling) as StoreUnavailable; a
    refusal about the request itself (403, 404...) passes as it is."""

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, _traceback):
        if exc is None:
            return False
        import botocore.exceptions

        if isinstance(exc, botocore.exceptions.ClientError):
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status < 500 and exc.response.get("Error", {}).get("Code") != "SlowDown":
                return False
        elif not isinstance(exc, (botocore.exceptions.BotoCoreError, OSError)):
            return False
        raise StoreUnavailable(f"the object store cannot be reached: {exc}") from exc


ObjectStore = LocalFolder | S3Bucket


@lru_cache(maxsize=8)
def _open(storage_url: str, data_dir: Path, public_endpoint: str) -> ObjectStore:
    if not storage_url:
        return LocalFolder(data_dir)
    if not storage_url.startswith("s3://"):
        raise ValueError(f"VITALQ_STORAGE_URL must be empty or s3://bucket[/prefix], not {storage_url!r}")
    bucket, _, prefix = storage_url[len("s3://"):].partition("/")
    return S3Bucket(bucket, prefix, public_endpoint)


def get_store() -> ObjectStore:
    """This process's object store, from its settings."""
    settings = get_settings()
    return _open(settings.storage_url, settings.data_dir, settings.storage_public_endpoint)
