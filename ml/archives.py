"""Zip archives as inputs, read defensively: a zip's declared sizes bound what it may
unpack to (Python's ``zipfile`` never yields more than a member declares), and a member
that expands far beyond what real data compresses to is refused as a zip bomb before
anything is unpacked."""

from __future__ import annotations

import zipfile

from .errors import TooLarge

#: Recorded signals and images deflate 1-10x; a hundredfold is long runs of one byte.
MAX_EXPANSION = 100
#: Members this small are let through whatever their ratio (headers, tiny images).
SMALL_MEMBER_BYTES = 1024**2


def check_members(members: list[zipfile.ZipInfo], *, max_total_bytes: int, max_members: int) -> None:
    """Raise TooLarge when the zip holds too many members, unpacks to more than
    ``max_total_bytes``, or has a member that expands more than ``MAX_EXPANSION``-fold."""
    if len(members) > max_members:
        raise TooLarge(f"the zip holds {len(members)} files, more than {max_members}", members_limit=max_members)
    total = sum(member.file_size for member in members)
    if total > max_total_bytes:
        raise TooLarge(f"the zip unpacks to {total} bytes, more than {max_total_bytes}", limit_bytes=max_total_bytes)
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > SMALL_MEMBER_BYTES and ratio > MAX_EXPANSION:
            raise TooLarge(f"{member.filename} expands {ratio:.0f}-fold when unpacked: refused as a zip bomb",
                           member=member.filename, expansion=round(ratio), limit=MAX_EXPANSION)
