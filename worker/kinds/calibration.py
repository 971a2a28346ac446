"""``camera.calibrate``: a camera's exposure, gain, focus and intrinsics, on its own queue."""

from __future__ import annotations

from ..devices import PLAN_SCHEMA
from .base import JobKind, device_bound, register


_PARAMS, _CHECK = device_bound("camera", "The camera to calibrate.", plan={
    **PLAN_SCHEMA, "description": "Settings for this run, over the device's own calibration settings."})


CAMERA_CALIBRATE = register(
    JobKind(
        name="camera.calibrate",
        title="Calibrate a camera",
        description=("On the device's own queue, one job at a time: an exposure sweep, the gain with the least noise, "
                     "a coarse-to-fine focus sweep, then intrinsics and distortion from checkerboard views, with a "
                     "verdict. The result is stored as a new profile version, made current and applied when it passes."),
        params_schema=_PARAMS,
        soft_time_limit_s=300,
        time_limit_s=420,
        queue=lambda params: f"hw.{params['device']}",
        admin_only=True,
        check=_CHECK,
    )
)
