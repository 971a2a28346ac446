"""``sensor.record``: a pulse sensor's recording, then its heartbeats."""

from __future__ import annotations

from typing import Any

from .base import JobKind, device_bound, register

#: The longest recording one job takes, seconds: a spot measurement holds its device
#: (one job at a time) for at most this long. Day-long recordings come as files, to
#: ``signal.beats``.
MAX_RECORDING_S = 600
#: Time beside the recording itself for opening the device and writing (seconds).
_SLACK_S = 60


_PARAMS, _CHECK = device_bound(
    "pulse_sensor", "The pulse sensor to record.",
    seconds={"type": "integer", "minimum": 30, "maximum": MAX_RECORDING_S, "default": 60,
             "description": "How long to record, in seconds: a heart rate needs 30 s of clean signal, HRV 60 "
                            "(signal.beats)."})


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
        params_schema=_PARAMS,
        soft_time_limit_s=60 + _SLACK_S,
        time_limit_s=60 + 2 * _SLACK_S,
        time_limits=_recording_limits,
        queue=lambda params: f"hw.{params['device']}",
        stages=("sensor.record.capture", "sensor.record.beats"),
        later_stages_queue="cpu",
        check=_CHECK,
        main_params=("device", "seconds"),
    )
)
