"""Frame sizes as a file declares them, read from its headers without decoding it: a few
hundred bytes of an AVI's main header or of an MP4/MOV's track headers, the first
bytes of a PNG, JPEG or BMP. What a check may read before a job is queued, and what
the worker reads before it decodes an image (a 16384x16384 PNG decodes to 800 MB).
No OpenCV here: the web process imports this."""

from __future__ import annotations

import re
import struct
import zipfile
from pathlib import Path
from typing import BinaryIO

from ..archives import check_members, open_zip
from ..errors import CorruptFile, EmptyInput, InvalidInput, TooLarge, UnreadableVideo

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: Refused before decoding: a frame larger than this many pixels, or a zip entry larger than this.
MAX_FRAME_PIXELS = 8192 * 8192
MAX_IMAGE_BYTES = 64 * 1024**2
#: Images in one zipped sequence (over an hour at 30 fps).
MAX_ZIP_IMAGES = 200_000
#: Bytes of an image read to find its size (a JPEG's size follows its EXIF block).
IMAGE_HEAD_BYTES = 64 * 1024
#: Boxes of an MP4/MOV looked at before giving up: real files have dozens.
MAX_BOXES = 4096


def check_frame_size(width: int, height: int, name: str | None = None) -> None:
    """TooLarge for frames of more than MAX_FRAME_PIXELS pixels (or of none)."""
    if width * height > MAX_FRAME_PIXELS or width <= 0 or height <= 0:
        what = f"image {name}" if name else "frames"
        raise TooLarge(f"{what} of {width}x{height} pixels are not accepted (at most {MAX_FRAME_PIXELS} pixels)",
                       width=width, height=height, limit_pixels=MAX_FRAME_PIXELS)


def declared_frame_size(path: Path) -> tuple[int, int] | None:
    """(width, height) in pixels of an AVI's or MP4/MOV's video frames as its headers
    declare them; None for other containers (MKV) or headers not understood."""
    with open(path, "rb") as file:
        head = file.read(72)
        if head[:4] == b"RIFF" and head[8:12] == b"AVI " and head[24:28] == b"avih" and len(head) == 72:
            # MainAVIHeader, from byte 32: dwWidth and dwHeight are its 9th and 10th double words.
            return struct.unpack("<II", head[64:72])
        if head[4:8] == b"ftyp":
            return _mp4_frame_size(file, path.stat().st_size)
    return None


def _boxes(file: BinaryIO, start: int, end: int, budget: list[int]):
    """(type, payload start, payload end) of the boxes between ``start`` and ``end``."""
    at = start
    while at + 8 <= end and budget[0] > 0:
        budget[0] -= 1
        file.seek(at)
        size, kind = struct.unpack(">I4s", file.read(8))
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", file.read(8))[0], 16
        elif size == 0:
            size = end - at
        if size < header:
            return
        yield kind, at + header, min(at + size, end)
        at += size


def _mp4_frame_size(file: BinaryIO, file_size: int) -> tuple[int, int] | None:
    budget = [MAX_BOXES]
    largest = None
    for kind, start, end in _boxes(file, 0, file_size, budget):
        if kind != b"moov":
            continue
        for track, track_start, track_end in _boxes(file, start, end, budget):
            if track != b"trak":
                continue
            for box, box_start, _box_end in _boxes(file, track_start, track_end, budget):
                if box != b"tkhd":
                    continue
                file.seek(box_start)
                payload = file.read(92)
                offset = 88 if payload[:1] == b"\x01" else 76  # version 1 has 64-bit times
                if len(payload) < offset + 8:
                    continue
                width, height = (value >> 16 for value in struct.unpack(">II", payload[offset:offset + 8]))
                if width and height and (largest is None or width * height > largest[0] * largest[1]):
                    largest = (width, height)  # audio tracks declare 0 x 0
    return largest


def image_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, JPEG or BMP from its first bytes; None if not found."""
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return struct.unpack(">II", head[16:24])
    if head[:2] == b"BM" and len(head) >= 26:
        width, height = struct.unpack("<ii", head[18:26])
        return abs(width), abs(height)
    if head[:2] == b"\xff\xd8":
        at = 2
        while at + 4 <= len(head):
            if head[at] != 0xFF:
                return None
            marker, length = head[at + 1], struct.unpack(">H", head[at + 2:at + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                if at + 9 > len(head):
                    return None
                height, width = struct.unpack(">HH", head[at + 5:at + 9])
                return width, height
            at += 2 + length
    return None


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def open_image_archive(path: Path) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    """A zip of images, open, and its images in natural order; raises UnreadableVideo,
    EmptyInput or TooLarge (too many, too big, or a zip bomb) from the directory alone."""
    try:
        archive = open_zip(path, max_members=MAX_ZIP_IMAGES)
    except CorruptFile as exc:
        raise UnreadableVideo(exc.message) from None
    members = sorted((m for m in archive.infolist()
                      if not m.is_dir() and Path(m.filename).suffix.lower() in IMAGE_SUFFIXES),
                     key=lambda m: _natural_key(m.filename))
    try:
        if not members:
            raise EmptyInput("the zip holds no images (png, jpg, bmp, tif)")
        check_members(members, max_total_bytes=MAX_ZIP_IMAGES * MAX_IMAGE_BYTES, max_members=MAX_ZIP_IMAGES)
    except InvalidInput:
        archive.close()
        raise
    return archive, members


def check_video(path: Path) -> None:
    """What may be checked of a video before its job is queued, reading its headers or a
    zip's directory and first image only: TooLarge for frames beyond MAX_FRAME_PIXELS (or
    a zip that is too big or a bomb), UnreadableVideo or EmptyInput for a zip without
    images."""
    size = declared_frame_size(path)
    if size is not None:
        check_frame_size(*size)
        return
    with open(path, "rb") as file:
        is_zip = file.read(4) == b"PK\x03\x04"
    if is_zip:
        archive, members = open_image_archive(path)
        with archive, archive.open(members[0]) as first:
            size = image_size(first.read(IMAGE_HEAD_BYTES))
        if size is not None:
            check_frame_size(*size, name=Path(members[0].filename).name)
