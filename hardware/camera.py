"""The camera interface every driver implements, and how a driver is chosen.

A camera is opened, read frame by frame, and controlled through three settings the
calibration routine tunes: ``exposure`` (milliseconds), ``gain`` (linear, 1 = no
gain) and ``focus`` (the lens motor's position, device units). ``capabilities()``
reports which of them the device has, with their range and step.

Drivers raise ``DeviceUnavailableError`` or ``DeviceBusyError`` (transient: the job
retries) and ``ControlUnsupported`` (bad input: it does not).
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .drivers import CAMERA_DRIVERS as DRIVERS
from .errors import ControlUnsupported

__all__ = ["DRIVERS", "Camera", "Capabilities", "ControlRange", "open_camera"]

#: The controls the calibration routine knows, with their units.
CONTROL_UNITS = {"exposure": "ms", "gain": "x", "focus": "steps"}


@dataclass(frozen=True)
class ControlRange:
    """One control of a device: the values it accepts, ``minimum`` to ``maximum`` by ``step``."""

    minimum: float
    maximum: float
    step: float
    default: float

    def clamp(self, value: float) -> float:
        """``value`` moved into the range and onto the step grid."""
        value = min(max(float(value), self.minimum), self.maximum)
        return self.minimum + round((value - self.minimum) / self.step) * self.step

    def values(self, step: float | None = None) -> np.ndarray:
        """Every setting from minimum to maximum, ``step`` apart (default: the device's step)."""
        step = step or self.step
        return np.arange(self.minimum, self.maximum + step / 2, step)


@dataclass(frozen=True)
class Capabilities:
    width: int
    height: int
    #: Frames per second the device delivers (0 when it does not say).
    fps: float
    channels: int
    #: The controls the device has: a subset of exposure, gain, focus.
    controls: dict[str, ControlRange] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["controls"] = {name: {**asdict(rng), "unit": CONTROL_UNITS[name]} for name, rng in self.controls.items()}
        return out


class Camera(abc.ABC):
    """A camera, used as a context manager: ``with open_camera(...) as camera: camera.read()``."""

    @abc.abstractmethod
    def open(self) -> None:
        """Take the device; raises DeviceUnavailableError or DeviceBusyError."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the device (safe to call twice)."""

    @abc.abstractmethod
    def read(self) -> np.ndarray:
        """The next frame, uint8, ``(height, width)`` or ``(height, width, 3)`` BGR;
        raises DeviceUnavailableError when the device stops delivering."""

    @abc.abstractmethod
    def capabilities(self) -> Capabilities:
        """What the open device reports."""

    @abc.abstractmethod
    def _set(self, name: str, value: float) -> None:
        ...

    @abc.abstractmethod
    def _get(self, name: str) -> float:
        ...

    def set_control(self, name: str, value: float) -> float:
        """Set ``exposure``, ``gain`` or ``focus``; returns the value applied (clamped to
        the control's range and step). Raises ControlUnsupported."""
        control = self._control(name)
        applied = control.clamp(value)
        self._set(name, applied)
        return applied

    def settings(self) -> dict[str, float]:
        """The current value of every control the device has."""
        return {name: self._get(name) for name in self.capabilities().controls}

    def apply(self, settings: dict[str, float]) -> dict[str, float]:
        """Set several controls (those the device lacks are skipped); returns what was applied."""
        controls = self.capabilities().controls
        return {name: self.set_control(name, value) for name, value in settings.items() if name in controls}

    def _control(self, name: str) -> ControlRange:
        controls = self.capabilities().controls
        if name not in controls:
            raise ControlUnsupported(f"the camera has no {name} control", control=name,
                                     available=sorted(controls))
        return controls[name]

    def __enter__(self) -> "Camera":
        self.open()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()




def open_camera(driver: str, connection: dict[str, Any], lock_dir=None) -> Camera:
    """An (unopened) camera for a registered device: ``driver`` is ``opencv`` or
    ``simulated``, ``connection`` the driver's settings (see each driver)."""
    if driver == "opencv":
        from .opencv_camera import OpenCVCamera

        return OpenCVCamera(**connection)
    if driver == "simulated":
        from .simulated import SimulatedCamera

        return SimulatedCamera(**connection, lock_dir=lock_dir)
    raise ValueError(f"unknown camera driver {driver!r}")
