"""A pulse sensor on a serial line, and a simulator that plays one.

Hobby and research pulse sensors (an Arduino with a PulseSensor or a MAX30102, a
microcontroller's UART, a USB CDC device) stream their samples as text, one line a
sample: ``512``, ``1234,512`` (fields split by commas, semicolons, tabs or spaces) or
with a tag, as the PulseSensor Playground's serial output does (``S512``, beside ``B72``
and ``Q830`` lines). ``SerialPulseSensor`` reads such lines with pyserial: the sample is
field ``column`` of each line starting with ``prefix``; other lines are skipped. The
device's own rate, ``fs``, is a connection setting (the sketch's sampling interval):
text lines carry no clock of their own, and the record measures the rate it saw.

Bounds: a line is at most ``MAX_LINE_BYTES`` (a longer one is dropped whole, so that a
device sending no newlines costs no memory); a device that sends no sample for
``timeout_s`` seconds, or only lines that hold none for as long, is unavailable.

``python -m hardware.pulse_serial`` opens a pseudo-terminal pair and plays a simulated
finger on it, printing the port to register (``"driver": "pulse-serial"``).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import time
from typing import Any, BinaryIO

import numpy as np

from .errors import DeviceBusyError, DeviceUnavailableError
from .sensor import PulseSensor

MAX_LINE_BYTES = 256
_FIELD_SEPARATORS = re.compile(rb"[,;\t ]+")


class SerialPulseSensor(PulseSensor):
    """``port``: a device path (``/dev/ttyACM0``) or a pyserial URL (``socket://host:port``,
    ``rfc2217://...``); ``baudrate``; ``fs`` the sensor's sample rate (Hz); ``column`` the
    0-based field of the sample; ``prefix`` the tag that starts a sample's line (empty:
    every line); ``timeout_s`` the longest wait for a sample."""

    def __init__(self, port: str, fs: float, baudrate: int = 115200, column: int = 0, prefix: str = "",
                 timeout_s: float = 2.0):
        if not port:
            raise ValueError("port is required")
        if not 0 < float(fs) <= 10_000:
            raise ValueError("fs must be above 0 and at most 10000 Hz")
        self.port, self.fs, self.baudrate = str(port), float(fs), int(baudrate)
        self.column, self.prefix, self.timeout_s = int(column), prefix.encode(), float(timeout_s)
        self._serial = None

    def open(self) -> None:
        import serial

        if self._serial is not None:
            return
        try:
            # exclusive: a second opener is refused (a flock on POSIX), as a camera's is.
            self._serial = serial.serial_for_url(self.port, baudrate=self.baudrate, timeout=self.timeout_s,
                                                 exclusive=True)
        except serial.SerialException as exc:
            text = str(exc)
            if "lock" in text.lower() or "busy" in text.lower():
                raise DeviceBusyError(f"serial port {self.port} is in use", port=self.port) from None
            raise DeviceUnavailableError(f"serial port {self.port} cannot be opened: {text}", port=self.port) from None
        except ValueError as exc:  # a malformed URL or setting
            raise DeviceUnavailableError(f"serial port {self.port} cannot be opened: {exc}", port=self.port) from None
        # What waited in the buffer was measured before this recording asked for it.
        self._serial.reset_input_buffer()
        self._skip_partial_line()

    def close(self) -> None:
        if self._serial is not None:
            self._serial.close()
            self._serial = None

    def read(self, n: int) -> np.ndarray:
        import serial

        if self._serial is None:
            raise DeviceUnavailableError(f"serial port {self.port} is not open", port=self.port)
        out = np.empty(n)
        filled, since_sample = 0, time.monotonic()
        try:
            while filled < n:
                line = self._serial.read_until(b"\n", MAX_LINE_BYTES)
                if not line.endswith(b"\n"):
                    if not line:
                        raise DeviceUnavailableError(f"the sensor on {self.port} sent nothing for {self.timeout_s:g} s",
                                                     port=self.port)
                    # Too long for a sample, or cut by the timeout: its rest is no sample either.
                    self._skip_partial_line()
                else:
                    value = self._sample(line)
                    if value is not None:
                        out[filled], filled, since_sample = value, filled + 1, time.monotonic()
                        continue
                if time.monotonic() - since_sample > self.timeout_s:
                    raise DeviceUnavailableError(
                        f"the sensor on {self.port} sent no sample for {self.timeout_s:g} s (lines without a "
                        f"number in field {self.column}{f' after {self.prefix.decode()!r}' if self.prefix else ''})",
                        port=self.port)
        except serial.SerialException as exc:
            raise DeviceUnavailableError(f"the sensor on {self.port} dropped out: {exc}", port=self.port) from None
        return out

    def _sample(self, line: bytes) -> float | None:
        """The sample a line holds, or None for a line of another kind or a broken one."""
        line = line.strip()
        if not line.startswith(self.prefix):
            return None
        fields = _FIELD_SEPARATORS.split(line[len(self.prefix):])
        try:
            value = float(fields[self.column])
        except (IndexError, ValueError):
            return None
        return value if math.isfinite(value) else None

    def _skip_partial_line(self) -> None:
        """Read up to the next newline (within the timeout), so that reading starts on a whole line."""
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            chunk = self._serial.read_until(b"\n", MAX_LINE_BYTES)
            if not chunk or chunk.endswith(b"\n"):
                return

    def describe(self) -> dict[str, Any]:
        return {"fs": self.fs, "port": self.port, "baudrate": self.baudrate}


def play(out: BinaryIO | int, seconds: float, *, fs: float = 100.0, hr_bpm: float = 72.0, amplitude: float = 1.0,
         seed: int = 0, realtime: bool = True, block_s: float = 0.1, line: str = "{value:.0f}\n",
         scale: float = 200.0, offset: float = 512.0) -> np.ndarray:
    """Play a simulated finger on ``out`` (a file or a file descriptor: the far end of a
    serial line), as a 10-bit sensor would: ``seconds`` of ``ContactPPGStream`` at ``fs``
    Hz, each sample ``offset + scale * x`` formatted by ``line`` (its fields ``value``
    and ``index``), written a block at a time at the device's pace (``realtime``).
    Returns the systolic peaks' times (s) of what was played: the truth."""
    from ml.rppg.simulate import ContactPPGStream

    stream = ContactPPGStream(hr_bpm=hr_bpm, fs=fs, amplitude=amplitude, rng=np.random.default_rng(seed))
    block, total, started = max(1, int(round(block_s * fs))), int(round(seconds * fs)), time.monotonic()
    written = 0
    while written < total:
        values = offset + scale * stream.read(min(block, total - written))
        text = "".join(line.format(value=value, index=written + k) for k, value in enumerate(values)).encode()
        if isinstance(out, int):
            view = memoryview(text)
            while view:
                view = view[os.write(out, view):]
        else:
            out.write(text)
            out.flush()
        written += values.size
        if realtime:
            time.sleep(max(0.0, started + written / fs - time.monotonic()))
    return np.asarray(stream.peaks_s)


def main(argv: list[str] | None = None) -> None:
    """Open a pseudo-terminal pair and play a simulated finger on it until stopped."""
    import pty
    import tty

    parser = argparse.ArgumentParser(prog="python -m hardware.pulse_serial", description=main.__doc__)
    parser.add_argument("--hr", type=float, default=72.0, help="heart rate, beats per minute")
    parser.add_argument("--fs", type=float, default=100.0, help="sample rate, Hz")
    parser.add_argument("--seconds", type=float, default=24 * 3600.0, help="how long to play")
    parser.add_argument("--no-pulse", action="store_true", help="the sensor on no finger")
    args = parser.parse_args(argv)
    far_end, near_end = pty.openpty()
    tty.setraw(near_end)  # bytes as they are: no echo, no newline translation
    print(f"playing {args.hr:g} bpm at {args.fs:g} Hz on {os.ttyname(near_end)}; register it with "
          f'{{"driver": "pulse-serial", "connection": {{"port": "{os.ttyname(near_end)}", "fs": {args.fs:g}}}}}',
          flush=True)
    try:
        play(far_end, args.seconds, fs=args.fs, hr_bpm=args.hr, amplitude=0.0 if args.no_pulse else 1.0)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
