"""Video frames, one at a time, with their real timestamps: containers OpenCV decodes
(mp4, avi, mov, mkv) and image sequences in a zip."""

from __future__ import annotations

import queue
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ..errors import EmptyInput, InvalidInput, TooLarge
from .containers import MAX_IMAGE_BYTES, UnreadableVideo, check_frame_size, image_size, open_image_archive

#: Frames decoded ahead of the analysis: enough to smooth out uneven decoding times, few
#: enough that memory holds a handful of frames, never the video.
READ_AHEAD = 8
_END = object()

@dataclass(frozen=True)
class VideoInfo:
    fps: float  # nominal frame rate, Hz
    frames: int  # as the container declares it (0 when unknown)
    width: int
    height: int


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
        try:
            check_frame_size(info.width, info.height)
        except TooLarge:
            self._capture.release()
            raise
        return info

    def _open_zip(self, fps: float | None) -> VideoInfo:
        self._archive, self._members = open_image_archive(self.path)
        if fps is None:
            raise InvalidInput("give the frame rate fps of an image sequence", field="fps")
        first = self._decode(self._members[0])
        return VideoInfo(float(fps), len(self._members), first.shape[1], first.shape[0])

    def _decode(self, member: zipfile.ZipInfo) -> np.ndarray:
        if member.file_size > MAX_IMAGE_BYTES:
            raise TooLarge(f"image {Path(member.filename).name} is larger than {MAX_IMAGE_BYTES} bytes")
        data = self._archive.read(member)
        size = image_size(data)
        if size is not None:  # refused before decoding: a small PNG can declare 16384 x 16384
            check_frame_size(*size, name=Path(member.filename).name)
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
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
