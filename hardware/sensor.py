"""The pulse-sensor interface every driver implements, and how a driver is chosen.

A pulse sensor (a finger or ear clip, a wrist PPG) delivers one channel at a fixed
sample rate ``fs`` (Hz), as a camera delivers frames: it is opened, read block by block
(``read(n)``: the next ``n`` samples, float64, in the sensor's own units) and closed.
The drivers:

- ``pulse-simulated`` (``SimulatedPulseSensor``): a finger PPG from the simulated faces'
  heart (``ml.rppg.simulate.ContactPPGStream``), delivered at the pace a device would;
- ``pulse-serial`` (``hardware.pulse_serial.SerialPulseSensor``): a sensor that streams
  samples as text lines over a serial line (USB CDC, an Arduino, a UART), read with
  pyserial.

Drivers raise ``DeviceUnavailableError`` or ``DeviceBusyError`` (transient: the job
retries), as cameras do.
"""

from __future__ import annotations

import abc
import time
from pathlib import Path
from typing import Any

import numpy as np

from .drivers import SENSOR_DRIVERS as DRIVERS
from .errors import DeviceUnavailableError
from .lock import DeviceLock

__all__ = ["DRIVERS", "PulseSensor", "SimulatedPulseSensor", "open_sensor"]


class PulseSensor(abc.ABC):
    """A pulse sensor, used as a context manager: ``with open_sensor(...) as sensor: sensor.read(100)``."""

    #: Samples per second the sensor delivers (Hz).
    fs: float

    @abc.abstractmethod
    def open(self) -> None:
        """Take the device; raises DeviceUnavailableError or DeviceBusyError."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the device (safe to call twice)."""

    @abc.abstractmethod
    def read(self, n: int) -> np.ndarray:
        """The next ``n`` samples, float64; waits for them as the device delivers them.
        Raises DeviceUnavailableError when the device stops delivering."""

    def describe(self) -> dict[str, Any]:
        """What the open device reports: its sample rate, and what the driver knows."""
        return {"fs": self.fs}

    def __enter__(self) -> "PulseSensor":
        self.open()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class SimulatedPulseSensor(PulseSensor):
    """A finger PPG with a known heart rate, delivered in real time (``realtime``) or as
    fast as it is read. ``amplitude`` 0 is the sensor on no finger: the pulse-free twin.
    Faults, as the simulated camera has: ``unplugged`` (opening fails),
    ``disconnect_after`` (the device drops out after that many samples), and a lock, so
    that a second opener of the same ``serial`` is refused as busy."""

    def __init__(self, fs: float = 100.0, hr_bpm: float = 72.0, amplitude: float = 1.0, noise: float = 0.03,
                 wander: float = 0.4, hrv: float = 0.04, seed: int = 0, serial: str = "ppg0", realtime: bool = True,
                 unplugged: bool = False, disconnect_after: int | None = None, lock_dir: str | Path | None = None):
        self.fs, self.hr_bpm, self.serial = float(fs), float(hr_bpm), str(serial)
        self._model = dict(hr_bpm=self.hr_bpm, fs=self.fs, amplitude=amplitude, noise=noise, wander=wander, hrv=hrv)
        self.seed, self.realtime = int(seed), bool(realtime)
        self.unplugged, self.disconnect_after = unplugged, disconnect_after
        self._lock = DeviceLock(lock_dir, self.serial, "simulated pulse sensor") if lock_dir else None
        self._stream = None
        self._delivered = 0
        self._started = 0.0

    def open(self) -> None:
        from ml.rppg.simulate import ContactPPGStream

        if self._stream is not None:
            return
        if self.unplugged:
            raise DeviceUnavailableError(f"simulated pulse sensor {self.serial} is unplugged", serial=self.serial)
        if self._lock is not None:
            self._lock.take()
        self._stream = ContactPPGStream(**self._model, rng=np.random.default_rng(self.seed))
        self._delivered, self._started = 0, time.monotonic()

    def close(self) -> None:
        self._stream = None
        if self._lock is not None:
            self._lock.release()

    def read(self, n: int) -> np.ndarray:
        if self._stream is None:
            raise DeviceUnavailableError(f"simulated pulse sensor {self.serial} is not open", serial=self.serial)
        if self.disconnect_after is not None and self._delivered + n > self.disconnect_after:
            raise DeviceUnavailableError(f"simulated pulse sensor {self.serial} disconnected", serial=self.serial)
        self._delivered += n
        if self.realtime:  # the last of these samples is measured only then
            time.sleep(max(0.0, self._started + self._delivered / self.fs - time.monotonic()))
        return self._stream.read(n)

    def describe(self) -> dict[str, Any]:
        return {"fs": self.fs, "serial": self.serial, "simulated_hr_bpm": self.hr_bpm}


def open_sensor(driver: str, connection: dict[str, Any], lock_dir=None) -> PulseSensor:
    """An (unopened) pulse sensor for a registered device: ``driver`` is ``pulse-serial``
    or ``pulse-simulated``, ``connection`` the driver's settings (see each driver)."""
    if driver == "pulse-simulated":
        return SimulatedPulseSensor(**connection, lock_dir=lock_dir)
    if driver == "pulse-serial":
        from .pulse_serial import SerialPulseSensor

        return SerialPulseSensor(**connection)
    raise ValueError(f"unknown pulse sensor driver {driver!r}")
