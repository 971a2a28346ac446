"""Errors of the camera layer, each with a stable code (``vitalq.errors``).

A device that cannot be opened, is in use or drops out mid-capture is a *transient*
fault (``DeviceError``): the job layer retries it with backoff. A request the device
cannot honour (a control it lacks, a value out of range) is bad input.
"""

from __future__ import annotations

from vitalq.errors import InvalidInput, TransientError


class DeviceError(TransientError):
    """A fault of the device itself, which may pass: retry later."""

    code = "DEVICE_UNAVAILABLE"


class DeviceUnavailableError(DeviceError):
    """The device cannot be opened, or stopped delivering frames (unplugged, stream down)."""

    code = "DEVICE_UNAVAILABLE"


class DeviceBusyError(DeviceError):
    """Another process holds the device."""

    code = "DEVICE_BUSY"


class ControlUnsupported(InvalidInput):
    """The device has no such control, or refused the value."""

    code = "CONTROL_UNSUPPORTED"


class CalibrationError(InvalidInput):
    """The calibration cannot proceed with what the camera sees (no target in view)."""

    code = "CALIBRATION_FAILED"
