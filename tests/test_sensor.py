"""A pulse sensor beside the camera: the serial-line driver read through a real
pseudo-terminal pair with the simulator playing a finger on the other end, and
``sensor.record`` as users run it: a device registered over HTTP, recorded by the
hardware pool (a real Celery worker for the device), its beats found by the CPU pool,
and celery beat recording on a schedule."""

from __future__ import annotations

import csv
import io
import os
import pty
import sys
import threading
import time

import numpy as np
import pytest
from support import Subprocess, wait_for_device_worker, wait_until

from hardware.errors import DeviceBusyError, DeviceUnavailableError
from hardware.pulse_serial import SerialPulseSensor, play
from hardware.sensor import SimulatedPulseSensor
from ml.rppg.simulate import ContactPPGStream
from ml.signals.beats import detect_beats


class FakeFinger:
    """The far end of a pseudo-terminal pair, where ``play`` writes a simulated finger's
    samples in real time as a sensor's firmware would; ``port`` is the near end's path."""

    def __init__(self):
        self.far_end, self.near_end = pty.openpty()
        self.port = os.ttyname(self.near_end)
        self.truth_s: np.ndarray | None = None
        self._thread: threading.Thread | None = None

    def write(self, data: bytes) -> None:
        """Send ``data`` from a thread of its own: a terminal holds a few KiB until its reader reads."""
        def send():
            view = memoryview(data)
            while view:
                view = view[os.write(self.far_end, view):]

        threading.Thread(target=send, daemon=True).start()

    def play(self, seconds: float, **options) -> None:
        def run():
            self.truth_s = play(self.far_end, seconds, **options)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def join(self) -> None:
        self._thread.join(timeout=120)

    def close(self) -> None:
        for fd in (self.far_end, self.near_end):
            os.close(fd)


@pytest.fixture
def finger():
    finger = FakeFinger()
    yield finger
    finger.close()


def rate_of(samples: np.ndarray, fs: float) -> float:
    peaks, _ = detect_beats(samples, fs, "ppg")
    return 60.0 / float(np.median(np.diff(peaks / fs)))


def test_the_stream_continues_across_reads_and_its_beats_are_the_truth():
    stream = ContactPPGStream(hr_bpm=84.0, rng=np.random.default_rng(5))
    sizes = (1, 99, 37, 263) * 150  # 10 minutes in uneven blocks
    x = np.concatenate([stream.read(n) for n in sizes])
    truth = np.asarray(stream.peaks_s)
    assert truth.size == pytest.approx(84 * 10, rel=0.03)
    peaks, _ = detect_beats(x, 100.0, "ppg")
    nearest = np.abs(peaks[:, None] / 100.0 - truth[None, :]).min(axis=1)
    assert np.mean(nearest < 0.15) > 0.99 and peaks.size == pytest.approx(truth.size, abs=3)
    # Block joins leave no step: a join's change is one of the wave's own ordinary ones.
    steps = np.abs(np.diff(x))
    assert steps[np.cumsum(sizes)[:-1] - 1].max() <= np.percentile(steps, 99.9)


def test_the_serial_driver_reads_a_finger_played_on_a_pseudo_terminal(finger):
    finger.write(b"half a line from before the recording")  # the port is opened mid-line
    finger.play(14, hr_bpm=96, seed=2)
    time.sleep(0.5)  # the sensor already streaming when the port is opened, as a real one is
    with SerialPulseSensor(port=finger.port, fs=100) as sensor:
        with pytest.raises(DeviceBusyError):  # a second opener, as another program would be
            SerialPulseSensor(port=finger.port, fs=100).open()
        started = time.monotonic()
        x = np.concatenate([sensor.read(100) for _ in range(12)])
        elapsed = time.monotonic() - started
    finger.join()
    assert x.shape == (1200,) and 0 <= x.min() and x.max() <= 1023 and np.all(x == np.round(x))  # 10-bit counts
    assert elapsed > 10  # delivered at the device's pace, not read from a backlog
    assert rate_of(x, 100.0) == pytest.approx(96, abs=2)


def test_the_serial_driver_skips_what_is_not_a_sample_and_bounds_a_line(finger):
    # PulseSensor Playground's output: S<signal>, B<bpm>, Q<interval> lines; noise; one
    # endless line without a newline.
    lines = [b"B72\n", b"Q830\n", b"hello\n", b"S512\n", b"Snan\n", b"x" * 100_000 + b"\n", b"S1e3\n", b"S-3,7\n"]
    sensor = SerialPulseSensor(port=finger.port, fs=100, prefix="S", timeout_s=1.0)
    with sensor:
        finger.write(b"".join(lines))
        assert sensor.read(3).tolist() == [512.0, 1000.0, -3.0]
    column = SerialPulseSensor(port=finger.port, fs=100, column=1, timeout_s=1.0)
    with column:
        finger.write(b"0.01, 517\n0.02;518\n")
        assert column.read(2).tolist() == [517.0, 518.0]


def test_a_silent_or_garbled_sensor_is_unavailable_within_its_timeout(finger):
    with SerialPulseSensor(port=finger.port, fs=100, timeout_s=0.5) as sensor:
        started = time.monotonic()
        with pytest.raises(DeviceUnavailableError, match="sent nothing"):
            sensor.read(10)
        assert time.monotonic() - started < 2
        stop = threading.Event()

        def chatter():  # lines keep coming, none of them a sample
            while not stop.is_set():
                finger.write(b"ready?\n")
                time.sleep(0.05)

        talker = threading.Thread(target=chatter, daemon=True)
        talker.start()
        try:
            with pytest.raises(DeviceUnavailableError, match="no sample"):
                sensor.read(10)
        finally:
            stop.set()
            talker.join()
    with pytest.raises(DeviceUnavailableError):
        SerialPulseSensor(port="/dev/no-such-tty", fs=100).open()


def test_the_simulated_sensor_keeps_its_pace_and_its_lock(tmp_path):
    sensor = SimulatedPulseSensor(fs=100, hr_bpm=60, serial="ppg-pace", lock_dir=tmp_path)
    with sensor:
        with pytest.raises(DeviceBusyError):
            SimulatedPulseSensor(serial="ppg-pace", lock_dir=tmp_path).open()
        started = time.monotonic()
        sensor.read(150)
        assert time.monotonic() - started >= 1.45
    with pytest.raises(DeviceUnavailableError):
        SimulatedPulseSensor(unplugged=True).open()


# --- sensor.record through the platform -------------------------------------------------


def register(http, device_id: str, driver: str = "pulse-simulated", **fields) -> dict:
    body = {"id": device_id, "driver": driver, **fields}
    if driver == "pulse-simulated":
        body["connection"] = {"serial": device_id, "realtime": False, **body.get("connection", {})}
    response = http.post("/api/v1/devices", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def record(http, device_id: str, seconds: int) -> dict:
    response = http.post("/api/v1/jobs", json={"kind": "sensor.record",
                                               "params": {"device": device_id, "seconds": seconds}})
    assert response.status_code == 201, response.text
    return response.json()


def test_a_serial_sensor_is_recorded_on_its_queue_and_its_beats_found_on_the_cpu_pool(http, jobs, hardware_pool,
                                                                                      worker, finger):
    device = register(http, "finger-clip", driver="pulse-serial", connection={"port": finger.port, "fs": 100})
    assert device["type"] == "pulse_sensor" and device["queue"] == "hw.finger-clip"
    wait_for_device_worker("finger-clip", hardware_pool)
    finger.play(45, hr_bpm=66, seed=4)
    job = record(http, "finger-clip", 35)
    assert job["queue"] == "hw.finger-clip"
    done = jobs.wait_finished(job["id"], timeout_s=90)
    finger.join()
    assert done["status"] == "succeeded", done["error"]
    recording, beats = done["result"]["recording"], done["result"]["beats"]
    assert recording["samples"] == 3500 and recording["fs"] == 100
    assert recording["measured_rate_hz"] == pytest.approx(100, rel=0.05)  # the firmware's pace, as seen
    assert beats["heart_rate_bpm"] == pytest.approx(66, abs=2) and beats["channel"] == "ppg"
    # The analysis ran on the CPU pool: the device was free again for the next recording.
    assert done["worker"].startswith(f"{worker.hostname}/"), done["worker"]
    assert {a["name"] for a in done["artifacts"]} == {"recording.csv", "beats.csv", "heart_rate.csv", "cleaned.f32"}
    assert http.get("/api/v1/devices/finger-clip").json()["capabilities"] == {"fs": 100.0, "port": finger.port,
                                                                              "baudrate": 115200}
    rows = list(csv.DictReader(io.StringIO(http.get(f"/api/v1/jobs/{job['id']}/artifacts/recording.csv").text)))
    assert len(rows) == 3500 and rows[1]["time_s"] == "0.0100"


@pytest.mark.usefixtures("worker")
def test_a_finger_and_its_pulse_free_twin(http, jobs, hardware_pool):
    register(http, "sim-finger", connection={"hr_bpm": 150, "seed": 9})
    register(http, "sim-no-finger", connection={"hr_bpm": 150, "seed": 9, "amplitude": 0})
    for device_id in ("sim-finger", "sim-no-finger"):
        wait_for_device_worker(device_id, hardware_pool)
    pulsed, twin = record(http, "sim-finger", 90), record(http, "sim-no-finger", 90)
    pulsed, twin = jobs.wait_finished(pulsed["id"], 90), jobs.wait_finished(twin["id"], 90)
    assert pulsed["status"] == "succeeded", pulsed["error"]
    assert pulsed["result"]["beats"]["heart_rate_bpm"] == pytest.approx(150, abs=2)
    assert pulsed["result"]["beats"]["hrv"]["rmssd_ms"] > 0
    # No finger, no heart rate: either no beats at all, or none clean enough to count.
    if twin["status"] == "failed":
        assert twin["error"]["code"] == "NO_BEATS" and twin["error"]["details"]["finished_parts"] == ["recording"]
        assert {a["name"] for a in twin["artifacts"]} == {"recording.csv"}  # the recording is kept
    else:
        assert twin["result"]["beats"]["heart_rate_bpm"] is None, twin["result"]["beats"]


@pytest.mark.usefixtures("worker")
def test_a_sensor_that_fails_is_retried_then_fails_with_its_code(http, jobs, hardware_pool, settings):
    register(http, "unplugged-finger", connection={"unplugged": True})
    register(http, "flaky-finger", connection={"disconnect_after": 500})
    for device_id in ("unplugged-finger", "flaky-finger"):
        wait_for_device_worker(device_id, hardware_pool)
    for device_id in ("unplugged-finger", "flaky-finger"):
        job = jobs.wait_finished(record(http, device_id, 30)["id"], 60)
        assert job["status"] == "failed" and job["error"]["code"] == "DEVICE_UNAVAILABLE", job["error"]
        assert job["error"]["message"].startswith(f"device {device_id}: ")
        assert job["attempts"] == settings.max_retries + 1
        assert job["artifacts"] == []  # a half recording is not left behind


def test_each_kind_runs_only_on_its_type_of_device(client):
    assert client.post("/api/v1/devices", json={"id": "cam", "driver": "simulated"}).status_code == 201
    assert client.post("/api/v1/devices", json={"id": "ppg", "driver": "pulse-simulated"}).status_code == 201
    on_camera = client.post("/api/v1/jobs", json={"kind": "sensor.record", "params": {"device": "cam"}})
    assert on_camera.status_code == 400 and on_camera.json["error"]["details"]["fields"] == {"device": "not a pulse sensor"}
    on_sensor = client.post("/api/v1/jobs", json={"kind": "camera.calibrate", "params": {"device": "ppg"}})
    assert on_sensor.status_code == 400 and on_sensor.json["error"]["details"]["fields"] == {"device": "not a camera"}
    too_long = client.post("/api/v1/jobs", json={"kind": "sensor.record", "params": {"device": "ppg", "seconds": 86400}})
    assert too_long.status_code == 400 and "seconds" in too_long.json["error"]["details"]["fields"]
    # A serial sensor needs its port and its rate.
    no_port = client.post("/api/v1/devices", json={"id": "clip", "driver": "pulse-serial", "connection": {"fs": 100}})
    assert no_port.status_code == 400
    assert no_port.json["error"]["details"]["fields"] == {"connection": "'port' is a required property"}


def test_beat_records_a_sensor_on_its_schedule(http, jobs):
    # Served by another machine: nothing here records it, so its job is seen waiting.
    register(http, "remote-finger", host="another-machine", schedule="@every 1s")
    beat = Subprocess("beat", [sys.executable, "-m", "celery", "-A", "worker.celery_app", "beat", "--loglevel", "INFO"])

    def scheduled() -> list[dict]:
        return http.get("/api/v1/jobs", params={"kind": "sensor.record"}).json()["jobs"]

    try:
        [job] = wait_until(scheduled, 60, lambda: f"a scheduled recording: {beat.log_path.read_text()[-3000:]}")
        assert job["params"] == {"device": "remote-finger", "seconds": 60, "trigger": "schedule"}
        assert job["queue"] == "hw.remote-finger" and job["status"] == "queued"
        wait_until(lambda: f"a sensor.record (job {job['id']}) is still waiting" in beat.log_path.read_text(), 60,
                   "beat passing over the waiting recording")
        assert len(scheduled()) == 1
    finally:
        beat.stop()
