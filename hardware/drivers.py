"""Which drivers there are, and what each drives. Nothing is imported here, so the web
tier can tell a camera from a pulse sensor without loading a driver."""

CAMERA_DRIVERS = ("opencv", "simulated")
SENSOR_DRIVERS = ("pulse-serial", "pulse-simulated")


def device_type(driver: str) -> str:
    """``camera`` or ``pulse_sensor``: what a device of this driver is, and so which kinds
    run on it (``camera.calibrate``, ``sensor.record``)."""
    if driver in SENSOR_DRIVERS:
        return "pulse_sensor"
    if driver in CAMERA_DRIVERS:
        return "camera"
    raise ValueError(f"unknown driver {driver!r}")
