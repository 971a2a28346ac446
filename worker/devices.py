"""The device registry and each device's camera profiles, kept in the database.

A device is registered with its driver and connection settings; it is served by its
own queue ``hw.<id>``, and a hardware pool (``vitalq serve worker-hw``) runs a worker
of concurrency 1 for each device, so that a device runs one job at a time.

Every calibration leaves a new profile version; it becomes the device's current
profile only when its verdict passes. Old versions are kept.
"""

from __future__ import annotations

import socket
from datetime import datetime
from typing import Any

from jsonschema import Draft202012Validator
from sqlalchemy import func, or_, select, update

from vitalq.errors import AlreadyExists, InvalidInput, NotFound

from hardware.drivers import device_type

from .db import session_scope
from .models import CameraProfile, Device, utcnow
from .schedules import parse_schedule
from .schemas import field_errors

DEVICE_ID_PATTERN = "^[a-z0-9][a-z0-9_-]{0,62}$"

_PLAN_SETTINGS = {
    "board_cols": {"type": "integer", "minimum": 3, "maximum": 40,
                   "description": "Inner corners across the checkerboard."},
    "board_rows": {"type": "integer", "minimum": 3, "maximum": 40,
                   "description": "Inner corners down the checkerboard."},
    "square_m": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "description": "Square size, in metres."},
    "views": {"type": "integer", "minimum": 3, "maximum": 100, "description": "Board views to collect."},
    "min_views": {"type": "integer", "minimum": 3, "maximum": 100, "description": "Views needed to pass."},
    "max_view_frames": {"type": "integer", "minimum": 10, "maximum": 100000,
                        "description": "Frames to look through for views before giving up."},
    "frames_per_setting": {"type": "integer", "minimum": 1, "maximum": 30,
                           "description": "Frames measured per exposure, gain or focus setting."},
    "settle_frames": {"type": "integer", "minimum": 0, "maximum": 30,
                      "description": "Frames dropped after each change of setting while the device applies it."},
    "exposure_steps": {"type": "integer", "minimum": 3, "maximum": 64, "description": "Settings in the exposure sweep."},
    "focus_coarse_points": {"type": "integer", "minimum": 3, "maximum": 64,
                            "description": "Settings in the coarse focus sweep."},
    "max_reprojection_px": {"type": "number", "exclusiveMinimum": 0, "maximum": 10,
                            "description": "Largest RMS reprojection error that passes, in pixels."},
    "min_coverage": {"type": "number", "minimum": 0, "maximum": 1,
                     "description": "Share of the frame the corners must have covered to pass."},
}

#: The calibration settings a device or a single job may set (``hardware.calibration.CalibrationPlan``).
PLAN_SCHEMA = {"type": "object", "additionalProperties": False, "properties": _PLAN_SETTINGS}

_CONTROL = {
    "type": "object", "additionalProperties": False, "required": ["minimum", "maximum", "step", "default"],
    "properties": {"minimum": {"type": "number"}, "maximum": {"type": "number"},
                   "step": {"type": "number", "exclusiveMinimum": 0}, "default": {"type": "number"},
                   "scale": {"type": "number", "exclusiveMinimum": 0,
                             "description": "Device units per vitalq unit (V4L2 exposure: 10 per ms)."}},
}
_SIZE = {"type": "integer", "minimum": 16, "maximum": 16384}
_SENSOR_FS = {"type": "number", "minimum": 25, "maximum": 10000, "description": "The sensor's sample rate, Hz."}

#: Connection settings of each driver (``hardware.opencv_camera``, ``hardware.simulated``,
#: ``hardware.pulse_serial``, ``hardware.sensor``).
CONNECTION_SCHEMAS = {
    "opencv": {
        "type": "object", "additionalProperties": False, "required": ["source"],
        "properties": {
            "source": {"type": ["integer", "string"], "minimum": 0, "minLength": 1, "maxLength": 1024,
                       "description": "V4L2 index, device path, stream URL or video file."},
            "width": _SIZE, "height": _SIZE, "fps": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000},
            "backend": {"enum": ["any", "v4l2", "ffmpeg", "gstreamer"]}, "loop": {"type": "boolean"},
            "read_timeout_ms": {"type": "integer", "minimum": 100, "maximum": 600000},
            "controls": {"type": "object", "additionalProperties": False,
                         "properties": {"exposure": _CONTROL, "gain": _CONTROL, "focus": _CONTROL}},
        },
    },
    "simulated": {
        "type": "object", "additionalProperties": False,
        "properties": {
            "width": _SIZE, "height": _SIZE, "fps": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000},
            "serial": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"},
            "fx": {"type": "number", "minimum": 10, "maximum": 100000},
            "fy": {"type": "number", "minimum": 10, "maximum": 100000},
            "cx": {"type": "number", "minimum": 0, "maximum": 16384},
            "cy": {"type": "number", "minimum": 0, "maximum": 16384},
            "dist": {"type": "array", "minItems": 5, "maxItems": 5, "items": {"type": "number", "minimum": -1, "maximum": 1}},
            "vignetting": {"type": "number", "minimum": 0, "maximum": 0.9},
            "best_focus": {"type": "number", "minimum": 0, "maximum": 255},
            "blur_px_per_step": {"type": "number", "minimum": 0, "maximum": 1},
            "base_blur_px": {"type": "number", "minimum": 0, "maximum": 10},
            "electrons_per_ms": {"type": "number", "exclusiveMinimum": 0, "maximum": 1e6},
            "full_well_e": {"type": "number", "minimum": 100, "maximum": 1e7},
            "read_noise_e": {"type": "number", "minimum": 0, "maximum": 1000},
            "adc_noise_dn": {"type": "number", "minimum": 0, "maximum": 50},
            "cols": {"type": "integer", "minimum": 3, "maximum": 40}, "rows": {"type": "integer", "minimum": 3, "maximum": 40},
            "square_m": {"type": "number", "minimum": 0.001, "maximum": 1},
            "poses": {"type": "integer", "minimum": 1, "maximum": 1000},
            "frames_per_pose": {"type": "integer", "minimum": 1, "maximum": 1000},
            "seed": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
            "unplugged": {"type": "boolean"},
            "disconnect_after": {"type": ["integer", "null"], "minimum": 0},
        },
    },
    "pulse-serial": {
        "type": "object", "additionalProperties": False, "required": ["port", "fs"],
        "properties": {
            "port": {"type": "string", "minLength": 1, "maxLength": 1024,
                     "description": "Device path (/dev/ttyACM0) or pyserial URL (socket://host:port)."},
            "fs": _SENSOR_FS,
            "baudrate": {"type": "integer", "minimum": 50, "maximum": 4_000_000, "default": 115200},
            "column": {"type": "integer", "minimum": 0, "maximum": 63, "default": 0,
                       "description": "0-based field of a line that holds the sample."},
            "prefix": {"type": "string", "maxLength": 8, "default": "",
                       "description": "Tag that starts a sample's line (S for PulseSensor Playground); empty: every line."},
            "timeout_s": {"type": "number", "minimum": 0.1, "maximum": 60, "default": 2.0,
                          "description": "Longest wait for a sample, in seconds."},
        },
    },
    "pulse-simulated": {
        "type": "object", "additionalProperties": False,
        "properties": {
            "fs": _SENSOR_FS,
            "hr_bpm": {"type": "number", "minimum": 30, "maximum": 220, "description": "The simulated heart rate."},
            "amplitude": {"type": "number", "minimum": 0, "maximum": 10,
                          "description": "The pulse's size; 0: the sensor on no finger."},
            "noise": {"type": "number", "minimum": 0, "maximum": 10},
            "wander": {"type": "number", "minimum": 0, "maximum": 10},
            "hrv": {"type": "number", "minimum": 0, "maximum": 0.3},
            "seed": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
            "serial": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"},
            "realtime": {"type": "boolean", "description": "Deliver samples at the device's pace (default) or at once."},
            "unplugged": {"type": "boolean"},
            "disconnect_after": {"type": ["integer", "null"], "minimum": 0, "description": "Samples, then it drops out."},
        },
    },
}

DEVICE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "driver"],
    "properties": {
        "id": {"type": "string", "pattern": DEVICE_ID_PATTERN,
               "description": "Lower-case letters, digits, - and _; names the device's queue hw.<id>."},
        "name": {"type": "string", "maxLength": 128},
        "driver": {"enum": list(CONNECTION_SCHEMAS),
                   "description": "Cameras: opencv, simulated. Pulse sensors: pulse-serial, pulse-simulated."},
        "connection": {"type": "object", "description": "The driver's settings (see CONNECTION_SCHEMAS)."},
        "calibration": PLAN_SCHEMA,
        "schedule": {"type": ["string", "null"], "maxLength": 128,
                     "description": ("When to calibrate a camera, or record from a pulse sensor: a crontab line (UTC), "
                                    "@hourly/@daily/@weekly/@monthly, '@every 6h', or null.")},
        "host": {"type": ["string", "null"], "maxLength": 255,
                 "description": "The machine whose hardware pool serves the device (null: any)."},
    },
}
# Each driver's connection settings, checked with the driver named.
DEVICE_SCHEMA["allOf"] = [
    {"if": {"required": ["driver"], "properties": {"driver": {"const": driver}}},
     "then": {"properties": {"connection": schema}}}
    for driver, schema in CONNECTION_SCHEMAS.items()
]
DEVICE_SCHEMA["allOf"].extend(
    {"if": {"required": ["driver"], "properties": {"driver": {"const": driver}}}, "then": {"required": ["connection"]}}
    for driver in ("opencv", "pulse-serial"))
_UPDATABLE = {"name", "connection", "calibration", "schedule", "host"}
_validator = Draft202012Validator(DEVICE_SCHEMA)


def _check(fields: dict[str, Any], partial: bool) -> dict[str, Any]:
    if not isinstance(fields, dict):
        raise InvalidInput("the body must be a JSON object", {"fields": {"body": "must be an object"}})
    schema_errors = field_errors(_validator, fields, frozenset({"required"}) if partial else frozenset())
    if schema_errors:
        summary = "; ".join(f"{k}: {v}" for k, v in schema_errors.items())
        raise InvalidInput(f"invalid device: {summary}", {"fields": schema_errors})
    if fields.get("schedule"):
        parse_schedule(fields["schedule"])
    return fields


def open_device(driver: str, connection: dict[str, Any], lock_dir=None):
    """An (unopened) camera or pulse sensor of a registered device."""
    from hardware import open_camera, open_sensor

    opener = open_sensor if device_type(driver) == "pulse_sensor" else open_camera
    return opener(driver, connection, lock_dir=lock_dir)


def _check_connection(driver: str, connection: dict[str, Any]) -> None:
    """The driver accepts these settings (without opening the device)."""
    try:
        open_device(driver, connection)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"invalid connection for the {driver} driver: {exc}",
                           {"fields": {"connection": str(exc)}}) from None


def register(fields: dict[str, Any]) -> Device:
    """Add a device; raises InvalidInput, or AlreadyExists for a taken id."""
    fields = _check(fields, partial=False)
    _check_connection(fields["driver"], fields.get("connection") or {})
    with session_scope() as session:
        if session.get(Device, fields["id"]) is not None:
            raise AlreadyExists(f"a device {fields['id']!r} is already registered",
                                {"fields": {"id": "already registered"}})
        device = Device(id=fields["id"], name=fields.get("name") or fields["id"], driver=fields["driver"],
                        connection=fields.get("connection") or {}, calibration=fields.get("calibration") or {},
                        schedule=fields.get("schedule") or None, host=fields.get("host") or None)
        session.add(device)
        session.flush()
        return device


def change(device_id: str, fields: dict[str, Any]) -> Device:
    """Update the fields given (name, connection, calibration, schedule, host)."""
    if isinstance(fields, dict) and set(fields) - _UPDATABLE & {"id", "driver"}:
        raise InvalidInput("id and driver cannot change; register a new device",
                           {"fields": {name: "cannot change" for name in set(fields) & {"id", "driver"}}})
    with session_scope() as session:
        device = _get(session, device_id)
        _check({**fields, "id": device.id, "driver": device.driver} if isinstance(fields, dict) else fields,
               partial=True)
        if "connection" in fields:
            _check_connection(device.driver, fields["connection"])
        for name, value in fields.items():
            setattr(device, name, value if value != "" else None)
        device.updated_at = utcnow()
        session.flush()
        return device


def remove(device_id: str) -> None:
    with session_scope() as session:
        session.delete(_get(session, device_id))


def get(device_id: str) -> Device:
    with session_scope() as session:
        return _get(session, device_id)


def require(device_id: str, wanted_type: str) -> Device:
    """The device a job names, which must be a ``wanted_type`` (``camera`` or
    ``pulse_sensor``); raises InvalidInput naming the field ``device``."""
    try:
        device = get(device_id)
    except NotFound:
        raise InvalidInput(f"no device {device_id!r} is registered", {"fields": {"device": "no such device"}}) from None
    if device_type(device.driver) != wanted_type:
        kind = wanted_type.replace("_", " ")
        raise InvalidInput(f"device {device_id!r} is not a {kind} (its driver is {device.driver})",
                           {"fields": {"device": f"not a {kind}"}})
    return device


def _get(session, device_id: str) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise NotFound(f"no device {device_id!r}")
    return device


def all_devices(host: str | None = None) -> list[Device]:
    """Every device, or those a machine called ``host`` serves (its own and the unbound)."""
    query = select(Device).order_by(Device.id)
    if host is not None:
        query = query.where(or_(Device.host.is_(None), Device.host == host))
    with session_scope() as session:
        return list(session.scalars(query))


def this_host() -> str:
    return socket.gethostname()


def queues() -> tuple[str, ...]:
    """Every queue vitalq serves: ``cpu`` and one per registered device."""
    return ("cpu",) + tuple(device.queue for device in all_devices())


def record_capabilities(device_id: str, capabilities: dict[str, Any]) -> None:
    with session_scope() as session:
        session.execute(update(Device).where(Device.id == device_id).values(capabilities=capabilities))


def mark_scheduled(device_id: str, when: datetime) -> None:
    with session_scope() as session:
        session.execute(update(Device).where(Device.id == device_id).values(last_scheduled_at=when))


# --- profiles --------------------------------------------------------------------------


def add_profile(device_id: str, job_id: str | None, result: dict[str, Any]) -> CameraProfile:
    """Store a calibration's outcome as the device's next profile version; it becomes
    the current profile when it passed."""
    with session_scope() as session:
        device = session.get(Device, device_id, with_for_update=True)
        if device is None:
            raise NotFound(f"no device {device_id!r}")
        latest = session.scalar(select(func.max(CameraProfile.version)).where(CameraProfile.device_id == device_id))
        profile = CameraProfile(device_id=device_id, version=(latest or 0) + 1, job_id=job_id,
                                passed=bool(result["passed"]), reasons=result["reasons"], checks=result["checks"],
                                settings=result["settings"], intrinsics=result["intrinsics"], sweeps=result["sweeps"])
        session.add(profile)
        device.last_calibrated_at = utcnow()
        if profile.passed:
            device.current_profile_version = profile.version
        session.flush()
        return profile


def profiles(device_id: str) -> tuple[list[CameraProfile], int | None]:
    """The device's profiles, oldest first, and its current version."""
    with session_scope() as session:
        device = _get(session, device_id)
        found = session.scalars(select(CameraProfile).where(CameraProfile.device_id == device_id)
                                .order_by(CameraProfile.version))
        return list(found), device.current_profile_version


def profile(device_id: str, version: int) -> tuple[CameraProfile, bool]:
    """One profile version, and whether it is the current one."""
    with session_scope() as session:
        device = _get(session, device_id)
        found = session.scalar(select(CameraProfile).where(CameraProfile.device_id == device_id,
                                                           CameraProfile.version == version))
        if found is None:
            raise NotFound(f"device {device_id!r} has no profile version {version}")
        return found, device.current_profile_version == version
