"""Cameras and their calibration: drivers behind one interface (``camera.Camera``), a
physically modelled simulated camera, and the calibration routine. No Celery, no Flask."""

from .calibration import CalibrationPlan, CalibrationResult, calibrate
from .camera import DRIVERS, Camera, Capabilities, ControlRange, open_camera
from .errors import CalibrationError, ControlUnsupported, DeviceBusyError, DeviceError, DeviceUnavailableError

__all__ = ["CalibrationPlan", "CalibrationResult", "calibrate", "DRIVERS", "Camera", "Capabilities", "ControlRange",
           "open_camera", "CalibrationError", "ControlUnsupported", "DeviceBusyError", "DeviceError",
           "DeviceUnavailableError"]
