"""Errors of the camera layer, each with a stable code.

A device that cannot be opened, is in use or drops out mid-capture is a *transient*
fault (``DeviceError``): the job layer retries it with backoff. A request the device
cannot honour (a control it lacks, a value out of range) is bad input (``InputError``).
"""

from __future__ import annotations

from ml.errors import InputError


class DeviceError(Exception):
    """A fault of the device itself, which may pass: retry later."""

    code = "DEVICE_UNAVAILABLE"

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.message = message
        self.details = details


class DeviceUnavailableError(DeviceError):
    """The device cannot be opened, or stopped delivering frames (unplugged, stream down)."""

    code = "DEVICE_UNAVAILABLE"


class DeviceBusyError(DeviceError):
    """Another process holds the device."""

    code = "DEVICE_BUSY"


class ControlUnsupported(InputError):
    """The device has no such control, or refused the value."""

    code = "CONTROL_UNSUPPORTED"


class CalibrationError(InputError):
    """The calibration cannot proceed with what the camera sees (no target in view)."""

    code = "CALIBRATION_FAILED"
