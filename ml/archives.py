"""Zip archives as inputs, read defensively: the directory's size is read from its end
record before the directory itself, a zip's declared sizes bound what it may unpack to
(Python's ``zipfile`` never yields more than a member declares), and a member that
expands far beyond what real data compresses to, or that shares its bytes with another
member, is refused as a zip bomb before anything is unpacked."""

from __future__ import annotations

import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import CorruptFile, TooLarge

#: Recorded signals and images deflate 1-10x; a hundredfold is long runs of one byte.
MAX_EXPANSION = 100


@dataclass(frozen=True)
class UnpackLimits:
    """What an archive may unpack to: at most ``max_bytes`` in all, and at most
    ``max_ratio`` times its members' compressed bytes (a 45 MB zip of flat-lined WFDB
    signals, each member under the per-member bound, unpacked to 3 GiB)."""

    max_bytes: int = 2 * 1024**3
    max_ratio: float = 20.0
#: Members this small are let through whatever their ratio (headers, tiny images).
SMALL_MEMBER_BYTES = 1024**2
#: A directory entry is 46 bytes and the member's name; names of real data are short.
MAX_DIRECTORY_ENTRY_BYTES = 1024
_END_RECORD = b"PK\x05\x06"
_END_RECORD_64 = b"PK\x06\x06"
_LOCAL_HEADER_BYTES = 30


def open_zip(path: Path, *, max_members: int) -> zipfile.ZipFile:
    """The zip at ``path``, open, once its end record says that its directory is no larger
    than ``max_members`` entries would need: ``zipfile`` reads the whole directory into
    memory, and a directory of millions of entries takes seconds and gigabytes.

    Raises CorruptFile (not a zip) or TooLarge.
    """
    size = path.stat().st_size
    with open(path, "rb") as file:
        tail_start = max(0, size - (22 + 0xFFFF))  # the end record, and a comment of at most 64 KiB
        file.seek(tail_start)
        tail = file.read()
        at = tail.rfind(_END_RECORD)
        if at < 0 or len(tail) - at < 22:
            raise CorruptFile("not a readable zip file: no end of central directory")
        entries, directory_bytes = struct.unpack("<xxxxxxxxxxHI", tail[at:at + 16])[0:2]
        if entries == 0xFFFF or directory_bytes == 0xFFFFFFFF:  # zip64: the sizes are in a record before it
            at64 = tail.rfind(_END_RECORD_64, 0, at)
            if at64 < 0 or len(tail) - at64 < 56:
                raise CorruptFile("not a readable zip file: a zip64 end record is missing")
            entries, directory_bytes = struct.unpack("<QQ", tail[at64 + 32:at64 + 48])
    if entries > max_members or directory_bytes > max_members * MAX_DIRECTORY_ENTRY_BYTES:
        raise TooLarge(f"the zip holds {entries} files, more than {max_members}", members_limit=max_members)
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise CorruptFile(f"not a readable zip file: {exc}") from None


def check_members(members: list[zipfile.ZipInfo], *, max_total_bytes: int, max_members: int,
                  limits: UnpackLimits | None = None) -> None:
    """Raise TooLarge when the zip holds too many members, unpacks to more than
    ``max_total_bytes`` or than ``limits`` allow (in all, or as a ratio to its compressed
    bytes), has a member that expands more than ``MAX_EXPANSION``-fold, or members whose
    compressed bytes overlap (one small deflate stream named many times over unpacks to
    gigabytes while every ratio looks honest). All of it from the directory, before
    anything is unpacked."""
    if len(members) > max_members:
        raise TooLarge(f"the zip holds {len(members)} files, more than {max_members}", members_limit=max_members)
    total = sum(member.file_size for member in members)
    limits = limits or UnpackLimits()
    if total > min(max_total_bytes, limits.max_bytes):
        limit = min(max_total_bytes, limits.max_bytes)
        raise TooLarge(f"the zip unpacks to {total} bytes, more than {limit}", limit_bytes=limit)

    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > SMALL_MEMBER_BYTES and ratio > MAX_EXPANSION:
            raise TooLarge(f"{member.filename} expands {ratio:.0f}-fold when unpacked: refused as a zip bomb",
                           member=member.filename, expansion=round(ratio), limit=MAX_EXPANSION)
    by_offset = sorted(members, key=lambda member: member.header_offset)
    for first, second in zip(by_offset, by_offset[1:]):
        # A member's local header (30 bytes, then its name) and its data come before the next member.
        end = first.header_offset + _LOCAL_HEADER_BYTES + first.compress_size
        if second.header_offset < end:
            raise TooLarge(f"{first.filename} and {second.filename} share their bytes in the zip: refused as a "
                           "zip bomb", members=[first.filename, second.filename])
    ratio = total / max(sum(member.compress_size for member in members), 1)
    if total > SMALL_MEMBER_BYTES and ratio > limits.max_ratio:
        raise TooLarge(f"the zip unpacks to {ratio:.0f} times its compressed size, more than the {limits.max_ratio:g} "
                       "allowed", expansion=round(ratio), limit=limits.max_ratio)
