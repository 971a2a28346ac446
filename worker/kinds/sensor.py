"""``sensor.record``: a pulse sensor's recording, then its heartbeats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import JobKind, register

#: The longest recording one job takes, seconds: a spot measurement holds its device
#: (one job at a time) for at most this long. Day-long recordings come as files, to
#: ``signal.beats``.
MAX_RECORDING_S = 600
#: Time beside the recording itself for opening the device and writing (seconds).
_SLACK_S = 60


def _check_recording(params: dict[str, Any], _upload: Path | None) -> None:
    from .. import devices

    devices.require(params["device"], "pulse_sensor")


def _recording_schema() -> dict[str, Any]:
    from ..devices import DEVICE_ID_PATTERN

    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["device"],
        "properties": {
            "device": {"type": "string", "pattern": DEVICE_ID_PATTERN, "description": "The pulse sensor to record.",
                       "x-device-type": "pulse_sensor"},
            "seconds": {"type": "integer", "minimum": 30, "maximum": MAX_RECORDING_S, "default": 60,
                        "description": "How long to record, in seconds: a heart rate needs 30 s of clean "
                                       "signal, HRV 60 (signal.beats)."},
            "trigger": {"enum": ["manual", "schedule"], "default": "manual",
                        "description": "What asked for the recording."},
        },
    }


def _recording_limits(params: dict[str, Any], _upload_bytes: int | None) -> tuple[float, float]:
    """Each stage's limits: the recording's length and some slack (the beats of ten
    minutes at 100 Hz take a second or two)."""
    return params["seconds"] + _SLACK_S, params["seconds"] + 2 * _SLACK_S


SENSOR_RECORD = register(
    JobKind(
        name="sensor.record",
        title="Record from a pulse sensor",
        description=("Records the PPG of a registered pulse sensor for the seconds asked, on the device's own queue "
                     "(one recording at a time), then finds its heartbeats on the CPU pool as signal.beats does: "
                     "heart rate with its confidence, quality, HRV. The recording is kept as recording.csv."),
        params_schema=_recording_schema(),
        soft_time_limit_s=60 + _SLACK_S,
        time_limit_s=60 + 2 * _SLACK_S,
        time_limits=_recording_limits,
        queue=lambda params: f"hw.{params['device']}",
        stages=("sensor.record.capture", "sensor.record.beats"),
        later_stages_queue="cpu",
        check=_check_recording,
        main_params=("device", "seconds"),
    )
)
