"""``sensor.record``: record a pulse sensor on its hardware queue, then find the beats of
the recording on the CPU pool."""

from __future__ import annotations

import time

from celery import shared_task

from hardware.errors import DeviceError
from tasks.beats import run_beats
from worker import devices
from worker.jobtask import JobContext, JobTask
from worker.settings import get_settings

RECORDING = "recording.csv"
#: The recording's one channel, as ``recording.csv`` names it.
CHANNEL = "ppg"


@shared_task(base=JobTask, name="sensor.record.capture", final_stage=False, progress_span=(0.0, 0.9))
def capture(job: JobContext) -> dict:
    device = devices.require(job.params["device"], "pulse_sensor")
    seconds = job.params["seconds"]
    sensor = devices.open_device(device.driver, device.connection, lock_dir=get_settings().data_dir / "devices")
    job.progress(0.0, f"opening {device.name} ({device.driver})", stage="record")
    try:
        with sensor, open(job.artifact(RECORDING), "w") as out:
            devices.record_capabilities(device.id, sensor.describe())
            fs = sensor.fs
            block, total = max(1, round(fs)), round(seconds * fs)  # a second at a time
            out.write(f"time_s,{CHANNEL}\n")
            started, written = time.monotonic(), 0
            while written < total:
                samples = sensor.read(min(block, total - written))
                out.writelines(f"{(written + k) / fs:.4f},{value:.6g}\n" for k, value in enumerate(samples))
                written += samples.size
                job.progress(written / total, f"{written / fs:.0f} of {seconds} s recorded")
            elapsed = time.monotonic() - started
    except DeviceError as exc:  # the driver knows its port or serial; the user knows the device id
        raise type(exc)(f"device {device.id}: {exc.message}", **{**exc.details, "device": device.id}) from exc
    return {"recording": {"device": device.id, "driver": device.driver, "fs": fs, "seconds": seconds,
                          "samples": written,
                          # Text lines carry no clock: the rate seen says whether fs was set right.
                          "measured_rate_hz": round(written / elapsed, 2) if elapsed > 0 else None}}


@shared_task(base=JobTask, name="sensor.record.beats", progress_span=(0.9, 1.0))
def recording_beats(job: JobContext) -> dict:
    recording = job.previous_result["recording"]
    params = {"signal_type": "ppg", "channel": CHANNEL, "format": "csv", "fs": recording["fs"]}
    return {"recording": recording, "beats": run_beats(job, job.earlier_artifact(RECORDING), params)}
