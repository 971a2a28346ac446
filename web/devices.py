"""``/api/v1/devices``: register cameras, calibrate them, and read their profiles."""

from __future__ import annotations

from flask import Blueprint, jsonify, url_for

from worker import devices, dispatch
from vitalq.errors import NotFound

from .auth import current_user, require_admin
from .errors import created, json_body

bp = Blueprint("devices", __name__, url_prefix="/api/v1/devices")


def _shown(device) -> dict:
    """A device as the current user may see it: its connection (URLs with passwords) for
    admins only."""
    return device.to_dict(redact_connection=not current_user().is_admin)


@bp.get("")
def list_devices():
    return jsonify({"devices": [_shown(device) for device in devices.all_devices()]})


@bp.post("")
def register_device():
    require_admin()
    device = devices.register(json_body())
    return created(device.to_dict(), url_for("devices.get_device", device_id=device.id))


@bp.get("/<device_id>")
def get_device(device_id: str):
    return jsonify(_shown(devices.get(device_id)))


@bp.patch("/<device_id>")
def change_device(device_id: str):
    """Change name, connection, calibration settings, schedule or host; beat follows a
    new schedule within ``VITALQ_REGISTRY_REFRESH_S`` seconds."""
    require_admin()
    return jsonify(devices.change(device_id, json_body()).to_dict())


@bp.delete("/<device_id>")
def remove_device(device_id: str):
    require_admin()
    devices.remove(device_id)
    return "", 204


@bp.post("/<device_id>/calibrate")
def calibrate_device(device_id: str):
    """Queue a calibration now: ``{"priority", "plan"}``, both optional. 201 with the job.
    Admins only: the camera's worker opens whatever its connection names."""
    require_admin()
    devices.get(device_id)  # 404 for an unknown device
    body = json_body(optional=True)
    params = {"device": device_id, **({"plan": body["plan"]} if "plan" in body else {})}
    job = dispatch.submit("camera.calibrate", params, body.get("priority"), owner_id=current_user().id, admin=True)
    return created(job.to_dict(), url_for("api.get_job", job_id=job.id))


@bp.get("/<device_id>/profiles")
def list_profiles(device_id: str):
    found, current = devices.profiles(device_id)
    return jsonify({"profiles": [p.to_dict(current=p.version == current) for p in found],
                    "current_version": current})


@bp.get("/<device_id>/profiles/current")
def current_profile(device_id: str):
    current = devices.get(device_id).current_profile_version
    if current is None:
        raise NotFound(f"device {device_id!r} has no passing profile yet")
    found, _ = devices.profile(device_id, current)
    return jsonify(found.to_dict(current=True))


@bp.get("/<device_id>/profiles/<int(max=2147483647):version>")
def get_profile(device_id: str, version: int):
    found, current = devices.profile(device_id, version)
    return jsonify(found.to_dict(current=current))
