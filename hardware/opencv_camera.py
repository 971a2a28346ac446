"""A real camera through OpenCV's ``VideoCapture``: USB/UVC and MIPI cameras on V4L2
(an NIR global-shutter OV9281 among them), network streams, or a video file standing in.

OpenCV cannot ask a V4L2 device for its control ranges, so the device's registration
declares the controls it has, each with its range in vitalq's units and the factor to
the device's own units (V4L2 ``exposure_absolute`` counts 100 µs: ``scale`` 10 for ms)::

    {"source": "/dev/video2", "width": 1280, "height": 800, "fps": 30,
     "controls": {"exposure": {"minimum": 0.1, "maximum": 30, "step": 0.1, "default": 8, "scale": 10}}}

A declared control the device refuses is left out of its capabilities.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from .camera import Camera, Capabilities, ControlRange
from .errors import DeviceBusyError, DeviceUnavailableError

_PROPERTIES = {"exposure": cv2.CAP_PROP_EXPOSURE, "gain": cv2.CAP_PROP_GAIN, "focus": cv2.CAP_PROP_FOCUS}
_BACKENDS = {"any": cv2.CAP_ANY, "v4l2": cv2.CAP_V4L2, "ffmpeg": cv2.CAP_FFMPEG, "gstreamer": cv2.CAP_GSTREAMER}


class OpenCVCamera(Camera):
    """``source``: a V4L2 index (0), a device path (/dev/video2), a stream URL, or a video
    file; ``loop``: start a file again at its end instead of reporting the device gone."""

    def __init__(self, source: int | str, width: int | None = None, height: int | None = None,
                 fps: float | None = None, backend: str = "any", loop: bool = False,
                 controls: dict[str, dict[str, float]] | None = None, read_timeout_ms: int = 5000):
        if backend not in _BACKENDS:
            raise ValueError(f"unknown OpenCV backend {backend!r}; one of {sorted(_BACKENDS)}")
        unknown = set(controls or {}) - set(_PROPERTIES)
        if unknown:
            raise ValueError(f"unknown controls {sorted(unknown)}; known: {sorted(_PROPERTIES)}")
        self.source = source
        self.requested = (width, height, fps)
        self.backend = backend
        self.loop = loop
        self.declared = {name: dict(spec) for name, spec in (controls or {}).items()}
        self.read_timeout_ms = read_timeout_ms
        self._capture: cv2.VideoCapture | None = None
        self._capabilities: Capabilities | None = None
        self._values: dict[str, float] = {}

    def open(self) -> None:
        if self._capture is not None:
            return
        is_path = isinstance(self.source, str) and "://" not in self.source
        if is_path and not os.path.exists(self.source):
            raise DeviceUnavailableError(f"{self.source} does not exist (unplugged?)", source=self.source)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, self.read_timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                  self.read_timeout_ms]
        capture = cv2.VideoCapture(self.source, _BACKENDS[self.backend], params)
        if not capture.isOpened():
            capture.release()
            # An existing device node that will not open is held by another process
            # (V4L2 answers EBUSY); anything else is simply not there.
            error = DeviceBusyError if is_path and self.source.startswith("/dev/") else DeviceUnavailableError
            raise error(f"cannot open camera {self.source!r}", source=self.source)
        width, height, fps = self.requested
        if width and height:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if fps:
            capture.set(cv2.CAP_PROP_FPS, fps)
        self._capture = capture
        first = self.read()  # the size the device really delivers
        controls = {}
        for name, spec in self.declared.items():
            control = ControlRange(spec["minimum"], spec["maximum"], spec["step"], spec["default"])
            if name == "focus":
                capture.set(cv2.CAP_PROP_AUTOFOCUS, 0)
            if name == "exposure":
                capture.set(cv2.CAP_PROP_AUTO_EXPOSURE, 1)  # V4L2 "manual mode"
            if capture.set(_PROPERTIES[name], control.default * spec.get("scale", 1.0)):
                controls[name] = control
                self._values[name] = control.default
        self._capabilities = Capabilities(width=first.shape[1], height=first.shape[0],
                                          fps=float(capture.get(cv2.CAP_PROP_FPS) or 0.0),
                                          channels=1 if first.ndim == 2 else first.shape[2], controls=controls)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def read(self) -> np.ndarray:
        capture = self._require_open()
        ok, frame = capture.read()
        if not ok and self.loop:
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = capture.read()
        if not ok or frame is None:
            raise DeviceUnavailableError(f"camera {self.source!r} stopped delivering frames", source=self.source)
        return frame

    def capabilities(self) -> Capabilities:
        self._require_open()
        return self._capabilities

    def _set(self, name: str, value: float) -> None:
        self._require_open().set(_PROPERTIES[name], value * self.declared[name].get("scale", 1.0))
        self._values[name] = value

    def _get(self, name: str) -> float:
        reported = self._require_open().get(_PROPERTIES[name])
        scale = self.declared[name].get("scale", 1.0)
        # Some backends answer -1 or 0 for a property they only accept; keep what was set.
        return reported / scale if reported > 0 else self._values[name]

    def _require_open(self) -> cv2.VideoCapture:
        if self._capture is None:
            raise DeviceUnavailableError(f"camera {self.source!r} is not open", source=self.source)
        return self._capture
