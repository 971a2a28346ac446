"""The lock a simulated device takes as it opens, so that a second opener of the same
device is refused as busy, as a V4L2 camera or a serial port held exclusively is."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .errors import DeviceBusyError


class DeviceLock:
    """``<lock_dir>/<serial>.lock``, held with ``flock`` from ``take`` to ``release``
    (and by nobody once the process that took it is gone)."""

    def __init__(self, lock_dir: str | Path, serial: str, what: str):
        self.path, self.serial, self.what = Path(lock_dir) / f"{serial}.lock", serial, what
        self._fd: int | None = None

    def take(self) -> None:
        """Raises DeviceBusyError if another opener holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DeviceBusyError(f"{self.what} {self.serial} is in use", serial=self.serial) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None
