"""Cameras and their calibration: drivers behind one interface (``camera.Camera``), a
physically modelled simulated camera, and the calibration routine; pulse sensors behind
theirs (``sensor.PulseSensor``): a simulated finger and a serial-line driver. No Celery,
no Flask.
Each name is imported from its module on first use (``lazy_loader``): OpenCV loads with
the first camera, not with the package."""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "calibration": ["CalibrationPlan", "CalibrationResult", "calibrate"],
    "camera": ["DRIVERS", "Camera", "Capabilities", "ControlRange", "open_camera"],
    "sensor": ["PulseSensor", "open_sensor"],
    "errors": ["CalibrationError", "ControlUnsupported", "DeviceBusyError", "DeviceError", "DeviceUnavailableError"],
})
