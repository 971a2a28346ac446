"""``camera.calibrate``: a camera's exposure, gain, focus and intrinsics, on its own queue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import JobKind, register


def _check_calibration(params: dict[str, Any], _upload: Path | None) -> None:
    from .. import devices

    devices.require(params["device"], "camera")


def _calibration_schema() -> dict[str, Any]:
    from ..devices import DEVICE_ID_PATTERN, PLAN_SCHEMA

    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["device"],
        "properties": {
            "device": {"type": "string", "pattern": DEVICE_ID_PATTERN, "description": "The camera to calibrate.",
                       "x-device-type": "camera"},
            "plan": {**PLAN_SCHEMA, "description": "Settings for this run, over the device's own calibration settings."},
            "trigger": {"enum": ["manual", "schedule"], "default": "manual",
                        "description": "What asked for the calibration."},
        },
    }


CAMERA_CALIBRATE = register(
    JobKind(
        name="camera.calibrate",
        title="Calibrate a camera",
        description=("On the device's own queue, one job at a time: an exposure sweep, the gain with the least noise, "
                     "a coarse-to-fine focus sweep, then intrinsics and distortion from checkerboard views, with a "
                     "verdict. The result is stored as a new profile version, made current and applied when it passes."),
        params_schema=_calibration_schema(),
        soft_time_limit_s=300,
        time_limit_s=420,
        queue=lambda params: f"hw.{params['device']}",
        admin_only=True,
        check=_check_calibration,
    )
)
