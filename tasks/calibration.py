"""``camera.calibrate``: calibrate a registered camera on its own hardware queue."""

from __future__ import annotations

import json

from celery import shared_task

from hardware import CalibrationPlan, calibrate, open_camera
from hardware.errors import DeviceError
from worker import devices
from worker.jobtask import JobContext, JobTask
from worker.settings import get_settings


@shared_task(base=JobTask, name="camera.calibrate")
def calibrate_camera(job: JobContext) -> dict:
    device = devices.get(job.params["device"])
    plan = CalibrationPlan.from_params({**device.calibration, **job.params.get("plan", {})})
    camera = open_camera(device.driver, device.connection, lock_dir=get_settings().data_dir / "devices")
    job.progress(0.0, f"opening {device.name} ({device.driver})", stage="open")
    try:
        with camera:
            capabilities = camera.capabilities()
            devices.record_capabilities(device.id, capabilities.to_dict())
            result = calibrate(camera, plan, progress=job.progress)
            if result.passed:
                camera.apply(result.settings)
    except DeviceError as exc:  # the driver knows its serial or source; the user knows the device id
        raise type(exc)(f"device {device.id}: {exc.message}", **{**exc.details, "device": device.id}) from exc
    outcome = result.to_dict()
    profile = devices.add_profile(device.id, job.id, outcome)
    job.artifact("profile.json").write_text(json.dumps(profile.to_dict(current=profile.passed), indent=2))
    return {"device": device.id, "profile_version": profile.version, "current": profile.passed,
            "image_size": [capabilities.width, capabilities.height], **outcome}
