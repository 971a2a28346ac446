"""Errors of the device layer (cameras and pulse sensors), each with a stable code
(``vitalq.errors``).

A device that cannot be opened, is in use or drops out mid-capture is a *transient*
fault (``DeviceError``): the job layer retries it with backoff. A request the device
cannot honour (a control it lacks, a value out of range) is bad input.
"""

from __future__ import annotations

from vitalq.errors import InvalidInput, TransientError


class DeviceError(TransientError):
    """A fault of the device itself, which may pass: retry later."""

    code = "DEVICE_UNAVAILABLE"
    plain = "The device could not be reached (unplugged or switched off?), even after several tries."


class DeviceUnavailableError(DeviceError):
    """The device cannot be opened, or stopped delivering frames (unplugged, stream down)."""

    code = "DEVICE_UNAVAILABLE"


class DeviceBusyError(DeviceError):
    """Another process holds the device."""

    code = "DEVICE_BUSY"
    plain = "The device was in use by another program, and still was after several tries."


class ControlUnsupported(InvalidInput):
    """The device has no such control, or refused the value."""

    code = "CONTROL_UNSUPPORTED"
    plain = "The camera has no such control, or refused the value."


class CalibrationError(InvalidInput):
    """The calibration cannot proceed with what the camera sees (no target in view)."""

    code = "CALIBRATION_FAILED"
    plain = "The calibration could not see its checkerboard target."
    deterministic = False  # what the camera sees can change: run it again once the target is in view
