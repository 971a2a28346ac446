"""Camera calibration as users run it: devices registered over HTTP, served by the
hardware pool (``vitalq serve worker-hw``: a real Celery worker per device), jobs
streamed on the websocket, profiles kept and versioned, and celery beat following
schedules changed while it runs."""

from __future__ import annotations

import sys
from datetime import datetime

import numpy as np
import pytest
from support import Subprocess, device_worker_answers, shot, wait_for_device_worker, wait_until

from hardware.simulated import SimulatedCamera

SIMULATED = {"width": 640, "height": 400}
QUICK_PLAN = {"views": 10, "min_views": 6}


def register(http, device_id: str, **fields) -> dict:
    body = {"id": device_id, "driver": "simulated", "connection": {**SIMULATED, "serial": device_id},
            "calibration": QUICK_PLAN, **fields}
    response = http.post("/api/v1/devices", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def calibrate(http, device_id: str, **body) -> dict:
    response = http.post(f"/api/v1/devices/{device_id}/calibrate", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_calibration_over_http_streams_progress_to_a_passing_profile(http, jobs, hardware_pool, page):
    register(http, "bench-cam", name="Bench camera")
    wait_for_device_worker("bench-cam", hardware_pool)
    job = calibrate(http, "bench-cam")
    assert job["queue"] == "hw.bench-cam" and job["params"]["trigger"] == "manual"

    events = jobs.events(job["id"], after=0, timeout_s=120)
    stages = [event.get("stage") for event in events if event["type"] == "progress"]
    for stage in ("exposure", "gain", "focus", "views", "intrinsics", "verdict"):
        assert stage in stages, stages
    fractions = [event["fraction"] for event in events if event["type"] == "progress"]
    assert fractions == sorted(fractions)
    assert events[-1]["type"] == "final" and events[-1]["job"]["status"] == "succeeded"

    done = jobs.get(job["id"])
    result = done["result"]
    assert result["passed"] and result["profile_version"] == 1 and result["current"]
    truth = np.array(SimulatedCamera(**SIMULATED).truth()["camera_matrix"])
    found = np.array(result["intrinsics"]["camera_matrix"])
    assert np.allclose(found[[0, 1, 0, 1], [0, 1, 2, 2]], truth[[0, 1, 0, 1], [0, 1, 2, 2]], rtol=0.005)
    assert result["intrinsics"]["reprojection_error_px"] < 0.3
    assert {artifact["name"] for artifact in done["artifacts"]} == {"profile.json"}

    device = http.get("/api/v1/devices/bench-cam").json()
    assert device["current_profile_version"] == 1 and device["last_calibrated_at"]
    assert device["capabilities"]["controls"]["focus"]["unit"] == "steps"
    current = http.get("/api/v1/devices/bench-cam/profiles/current").json()
    assert current["settings"] == result["settings"] and current["job_id"] == job["id"]

    # Its page draws the sweeps and lists the intrinsics.
    page.goto(f"/jobs/{job['id']}")
    page.wait_for_selector("#job[data-rendered=true]")
    assert page.locator(".chart canvas").count() == 2  # exposure and focus sweeps
    assert page.locator("th:has-text('Reprojection error') + td").inner_text().endswith("px")
    assert page.locator("th:has-text('Verdict') + td").inner_text().startswith("✓ passed")
    shot(page, "calibration-results")

    # A run whose verdict fails is kept as a new version but does not replace the current one.
    strict = calibrate(http, "bench-cam", plan={"max_reprojection_px": 0.001})
    failed_verdict = jobs.wait_finished(strict["id"], timeout_s=120)
    assert failed_verdict["status"] == "succeeded" and not failed_verdict["result"]["passed"]
    assert any("reprojection error" in reason for reason in failed_verdict["result"]["reasons"])
    listing = http.get("/api/v1/devices/bench-cam/profiles").json()
    assert [(p["version"], p["passed"], p["current"]) for p in listing["profiles"]] == [(1, True, True), (2, False, False)]
    assert http.get("/api/v1/devices/bench-cam").json()["current_profile_version"] == 1


def test_two_jobs_on_one_device_never_run_at_once(http, jobs, hardware_pool):
    register(http, "shared-cam")
    wait_for_device_worker("shared-cam", hardware_pool)
    first, second = calibrate(http, "shared-cam"), calibrate(http, "shared-cam")
    jobs.wait_running(first["id"])
    assert jobs.get(second["id"])["status"] == "queued"  # waits its turn on the device's queue
    first, second = jobs.wait_finished(first["id"], 120), jobs.wait_finished(second["id"], 120)
    assert first["status"] == second["status"] == "succeeded"
    assert datetime.fromisoformat(second["started_at"]) >= datetime.fromisoformat(first["finished_at"])


def test_a_device_that_fails_to_open_is_retried_then_fails_with_its_code(http, jobs, hardware_pool, settings):
    register(http, "unplugged-cam", connection={**SIMULATED, "unplugged": True})
    register(http, "taken-cam")
    wait_for_device_worker("unplugged-cam", hardware_pool)
    wait_for_device_worker("taken-cam", hardware_pool)
    # Another program holds the camera for the whole test.
    with SimulatedCamera(**SIMULATED, serial="taken-cam", lock_dir=settings.data_dir / "devices"):
        unplugged, taken = calibrate(http, "unplugged-cam"), calibrate(http, "taken-cam")
        unplugged, taken = jobs.wait_finished(unplugged["id"], 60), jobs.wait_finished(taken["id"], 60)
    for job, code, device_id in ((unplugged, "DEVICE_UNAVAILABLE", "unplugged-cam"),
                                 (taken, "DEVICE_BUSY", "taken-cam")):
        assert job["status"] == "failed" and job["error"]["code"] == code, job["error"]
        assert job["error"]["message"].startswith(f"device {device_id}: ")  # named as the user registered it
        assert job["error"]["details"]["device"] == device_id
        assert job["attempts"] == settings.max_retries + 1
        assert job["error"]["details"]["retries"] == settings.max_retries
    assert http.get("/api/v1/devices/unplugged-cam/profiles").json()["profiles"] == []


def test_a_removed_devices_worker_is_stopped(http, hardware_pool):
    register(http, "short-lived-cam")
    wait_for_device_worker("short-lived-cam", hardware_pool)
    assert http.delete("/api/v1/devices/short-lived-cam").status_code == 204
    wait_until(lambda: not device_worker_answers("short-lived-cam"), 60, "the removed device's worker stops",
               interval_s=0)


def test_beat_follows_a_schedule_changed_while_it_runs(http, jobs, hardware_pool):
    # Served elsewhere: this machine's pool runs no worker for it, so its job is seen waiting.
    register(http, "remote-cam", host="another-machine")
    register(http, "local-cam")
    wait_for_device_worker("local-cam", hardware_pool)  # the pool has read the registry, remote-cam included
    assert not device_worker_answers("remote-cam")
    beat = Subprocess("beat", [sys.executable, "-m", "celery", "-A", "worker.celery_app", "beat", "--loglevel", "INFO"])

    def scheduled(device_id: str = "remote-cam") -> list[dict]:
        found = http.get("/api/v1/jobs", params={"kind": "camera.calibrate"}).json()["jobs"]
        return [job for job in found if job["params"]["device"] == device_id]

    def logged(text: str):
        return lambda: text in beat.log_path.read_text(errors="replace")

    try:
        assert http.patch("/api/v1/devices/remote-cam", json={"schedule": "@every 1s"}).status_code == 200
        [job] = wait_until(scheduled, 60, lambda: f"a scheduled job: {beat.log_path.read_text()[-3000:]}")
        assert job["params"] == {"device": "remote-cam", "trigger": "schedule"}
        assert job["queue"] == "hw.remote-cam" and job["status"] == "queued"
        # Due again a second later, but its calibration still waits for the device: not queued twice.
        wait_until(logged(f"device remote-cam: a camera.calibrate (job {job['id']}) is still waiting"), 60,
                   "beat passing over the waiting job")
        assert [j["id"] for j in scheduled()] == [job["id"]]

        assert http.patch("/api/v1/devices/remote-cam", json={"schedule": None}).status_code == 200
        wait_until(logged("device remote-cam: schedule cleared"), 60, "beat reading the cleared schedule")
        http.delete(f"/api/v1/jobs/{job['id']}")
        # Nothing waits for remote-cam now; beat goes on scheduling another device, yet not it.
        register(http, "other-remote-cam", host="another-machine", schedule="@every 1s")
        wait_until(lambda: scheduled("other-remote-cam"), 60, "the other device's scheduled job")
        assert [j["status"] for j in scheduled()] == ["cancelled"]
    finally:
        beat.stop()


@pytest.mark.parametrize("body, field", [
    ({"id": "Bad Id", "driver": "simulated"}, "id"),
    ({"id": "cam", "driver": "gopro"}, "driver"),
    ({"id": "cam", "driver": "simulated", "schedule": "every monday"}, "schedule"),
    ({"id": "cam", "driver": "simulated", "connection": {"lens": "fisheye"}}, "connection"),
    ({"id": "cam", "driver": "opencv", "connection": {"source": 0, "backend": "directshow"}}, "connection.backend"),
    ({"id": "cam", "driver": "opencv"}, "connection"),
    ({"id": "cam", "driver": "simulated", "connection": {"width": 0}}, "connection.width"),
    ({"id": "cam", "driver": "simulated", "calibration": {"views": 1}}, "calibration.views"),
])
def test_bad_registrations_are_refused_naming_the_field(client, body, field):
    response = client.post("/api/v1/devices", json=body)
    assert response.status_code == 400, response.json
    assert response.json["error"]["code"] == "INVALID_INPUT"
    assert field in response.json["error"]["details"]["fields"]
    assert client.get("/api/v1/devices").json["devices"] == []


def test_device_registry_over_http(client):
    assert client.post("/api/v1/devices", json={"id": "cam", "driver": "simulated"}).status_code == 201
    duplicate = client.post("/api/v1/devices", json={"id": "cam", "driver": "simulated"})
    assert duplicate.status_code == 409 and duplicate.json["error"]["code"] == "ALREADY_EXISTS"
    assert client.patch("/api/v1/devices/cam", json={"driver": "opencv"}).status_code == 400
    changed = client.patch("/api/v1/devices/cam", json={"schedule": "0 3 * * *", "name": "Lab camera"}).json
    assert (changed["schedule"], changed["name"], changed["queue"]) == ("0 3 * * *", "Lab camera", "hw.cam")
    assert client.get("/api/v1/devices/cam/profiles/current").status_code == 404
    assert client.post("/api/v1/devices/nope/calibrate", json={}).status_code == 404
    job = client.post("/api/v1/jobs", json={"kind": "camera.calibrate", "params": {"device": "nope"}})
    assert job.status_code == 400 and job.json["error"]["details"]["fields"] == {"device": "no such device"}
    assert client.delete("/api/v1/devices/cam").status_code == 204
    assert client.get("/api/v1/devices/cam").status_code == 404
