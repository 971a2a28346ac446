"""Video frames, one at a time, with their real timestamps: containers OpenCV decodes
(mp4, avi, mov, mkv) and image sequences in a zip."""

from __future__ import annotations

import queue
import re
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ..archives import check_members
from ..errors import EmptyInput, InputError, TooLarge

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: Refused before decoding: a frame larger than this many pixels, or a zip entry larger than this.
MAX_FRAME_PIXELS = 8192 * 8192
MAX_IMAGE_BYTES = 64 * 1024**2
#: Images in one zipped sequence (over an hour at 30 fps).
MAX_ZIP_IMAGES = 200_000
#: Frames decoded ahead of the analysis: enough to smooth out uneven decoding times, few
#: enough that memory holds a handful of frames, never the video.
READ_AHEAD = 8
_END = object()


class UnreadableVideo(InputError):
    code = "UNREADABLE_VIDEO"


@dataclass(frozen=True)
class VideoInfo:
    fps: float  # nominal frame rate, Hz
    frames: int  # as the container declares it (0 when unknown)
    width: int
    height: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps if self.fps > 0 else 0.0


class VideoFrames:
    """``for t_s, frame in VideoFrames(path): ...`` with ``frame`` BGR uint8."""

    def __init__(self, path: Path, fps: float | None = None):
        self.path = Path(path)
        with open(self.path, "rb") as file:
            head = file.read(4)
        if not head:
            raise EmptyInput("the video file is empty")
        self._zip = head == b"PK\x03\x04"
        self._decoder: threading.Thread | None = None
        self.info = self._open_zip(fps) if self._zip else self._open_container()

    def _open_container(self) -> VideoInfo:
        self._capture = cv2.VideoCapture(str(self.path))
        if not self._capture.isOpened():
            raise UnreadableVideo("the video cannot be decoded (mp4, avi, mov, mkv, or a zip of images)")
        info = VideoInfo(float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0),
                         max(int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0),
                         int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                         int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        if info.width * info.height > MAX_FRAME_PIXELS or info.width <= 0 or info.height <= 0:
            self._capture.release()
            raise TooLarge(f"frames of {info.width}x{info.height} pixels are not accepted",
                           width=info.width, height=info.height)
        return info

    def _open_zip(self, fps: float | None) -> VideoInfo:
        self._archive, self._members = open_image_archive(self.path)
        if fps is None:
            raise InputError("give the frame rate fps of an image sequence", field="fps")
        first = self._decode(self._members[0])
        return VideoInfo(float(fps), len(self._members), first.shape[1], first.shape[0])

    def _decode(self, member: zipfile.ZipInfo) -> np.ndarray:
        if member.file_size > MAX_IMAGE_BYTES:
            raise TooLarge(f"image {Path(member.filename).name} is larger than {MAX_IMAGE_BYTES} bytes")
        image = cv2.imdecode(np.frombuffer(self._archive.read(member), np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise UnreadableVideo(f"image {Path(member.filename).name} cannot be decoded")
        return image

    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]:
        """Frames decoded on a thread of their own, up to READ_AHEAD ahead of their use:
        OpenCV lets go of the GIL while it decodes, so decoding overlaps the analysis."""
        frames: queue.Queue = queue.Queue(maxsize=READ_AHEAD)
        self._stop = threading.Event()

        def put(item) -> bool:
            while not self._stop.is_set():
                try:
                    frames.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    pass
            return False

        def decode() -> None:
            try:
                for item in self._decoded():
                    if not put(item):
                        return
                put(_END)
            except BaseException as exc:  # raised again in the reading thread
                put(exc)

        self._decoder = threading.Thread(target=decode, name=f"decode {self.path.name}", daemon=True)
        self._decoder.start()
        try:
            while (item := frames.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self._stop_decoding()

    def _stop_decoding(self) -> None:
        if self._decoder is not None:
            self._stop.set()
            self._decoder.join()
            self._decoder = None

    def _decoded(self) -> Iterator[tuple[float, np.ndarray]]:
        if self._zip:
            for index, member in enumerate(self._members):
                yield index / self.info.fps, self._decode(member)
            return
        index = 0
        while True:
            ok, frame = self._capture.read()
            if not ok:
                break
            # The container's presentation time of this frame; phones record variable rates.
            stamp_ms = self._capture.get(cv2.CAP_PROP_POS_MSEC)
            yield (stamp_ms / 1000.0 if stamp_ms > 0 or index == 0 else index / max(self.info.fps, 1e-9)), frame
            index += 1

    def close(self) -> None:
        self._stop_decoding()  # before the decoder's source goes away under it
        if self._zip:
            self._archive.close()
        else:
            self._capture.release()

    def __enter__(self) -> "VideoFrames":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def open_image_archive(path: Path) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    """A zip of images, open, and its images in natural order; raises UnreadableVideo,
    EmptyInput or TooLarge (too many, too big, or a zip bomb) from the directory alone."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise UnreadableVideo(f"not a readable zip file: {exc}") from None
    members = sorted((m for m in archive.infolist()
                      if not m.is_dir() and Path(m.filename).suffix.lower() in IMAGE_SUFFIXES),
                     key=lambda m: _natural_key(m.filename))
    try:
        if not members:
            raise EmptyInput("the zip holds no images (png, jpg, bmp, tif)")
        check_members(members, max_total_bytes=MAX_ZIP_IMAGES * MAX_IMAGE_BYTES, max_members=MAX_ZIP_IMAGES)
    except InputError:
        archive.close()
        raise
    return archive, members
