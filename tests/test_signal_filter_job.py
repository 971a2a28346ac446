"""``signal.filter`` through the whole platform: HTTP upload, a real worker, artifacts."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import heartpy
import numpy as np
import pytest
from scipy import signal

from ml.signals import FilterSpec, design_sos

pytestmark = pytest.mark.usefixtures("worker")

HEARTPY_DATA = Path(heartpy.__file__).parent / "data"


def submit_file(http, content: bytes, filename: str, params: dict) -> dict:
    response = http.post("/api/v1/jobs", data={"kind": "signal.filter", "params": json.dumps(params)},
                         files={"file": (filename, content)})
    return response


def download_npy(http, job: dict, name: str = "filtered.npy") -> np.ndarray:
    response = http.get(f"/api/v1/jobs/{job['id']}/artifacts/{name}")
    assert response.status_code == 200
    return np.load(io.BytesIO(response.content))


def test_real_ppg_recording_filtered_over_http_equals_sosfiltfilt(jobs, http):
    """heartpy's data.csv: a finger PPG recorded at 100 Hz."""
    content = (HEARTPY_DATA / "data.csv").read_bytes()
    params = {"fs": 100.0, "cutoff_hz": [0.7, 3.5], "order": 3, "output_dtype": "float64", "chunk_size": 500}
    response = submit_file(http, content, "data.csv", params)
    assert response.status_code == 201, response.text
    messages = jobs.events(response.json()["id"], after=0, timeout_s=60)  # every event, however fast the job
    job = messages[-1]["job"]
    assert job["status"] == "succeeded", job["error"]

    x = np.loadtxt(HEARTPY_DATA / "data.csv")
    sos = design_sos(FilterSpec("butter", "bandpass", (0.7, 3.5), 3), 100.0)
    np.testing.assert_array_equal(download_npy(http, job), signal.sosfiltfilt(sos, x))

    [channel] = job["result"]["channels"]
    assert channel["before"]["samples"] == x.size and channel["before"]["mean"] == pytest.approx(x.mean())
    assert abs(channel["after"]["mean"]) < 1.0  # the band-pass removed the offset
    preview = json.loads(http.get(f"/api/v1/jobs/{job['id']}/artifacts/preview.json").content)
    assert preview["bins"] <= 2000 and max(preview["channels"][0]["before"]["max"]) == x.max()
    progress = [m for m in messages if m["type"] == "progress" and m.get("stage") == "filter"]
    assert len(progress) >= 2 * (x.size // 500) and progress[-1]["fraction"] == 1.0


def test_sample_rate_taken_from_a_time_column(jobs, http):
    """heartpy's data2.csv: a 'timer' column in milliseconds beside the PPG."""
    content = (HEARTPY_DATA / "data2.csv").read_bytes()
    response = submit_file(http, content, "data2.csv", {"time_column": "timer", "time_unit": "ms",
                                                        "channels": ["hr"], "cutoff_hz": [0.7, 3.5]})
    assert response.status_code == 201, response.text
    job = jobs.wait_finished(response.json()["id"], timeout_s=60)
    assert job["status"] == "succeeded", job["error"]
    timer = np.loadtxt(HEARTPY_DATA / "data2.csv", delimiter=",", skiprows=1, usecols=0)
    assert job["result"]["fs_hz"] == pytest.approx(1000.0 / np.median(np.diff(timer)))
    assert download_npy(http, job).shape == (timer.size,)


def test_one_cutoff_may_be_a_plain_number_as_in_scipy(jobs, http):
    """``{"btype": "lowpass", "cutoff_hz": 10}`` was refused ("10 is not of type 'array'")."""
    content = (HEARTPY_DATA / "data.csv").read_bytes()
    response = submit_file(http, content, "data.csv", {"fs": 100.0, "btype": "lowpass", "cutoff_hz": 10,
                                                       "output_dtype": "float64"})
    assert response.status_code == 201, response.text
    job = jobs.wait_finished(response.json()["id"], timeout_s=60)
    assert job["status"] == "succeeded", job["error"]
    x = np.loadtxt(HEARTPY_DATA / "data.csv")
    np.testing.assert_array_equal(download_npy(http, job),
                                  signal.sosfiltfilt(signal.butter(4, 10, "lowpass", fs=100.0, output="sos"), x))
    for refused in (0, -3, [10, 20, 30], "10"):
        answer = submit_file(http, content, "data.csv", {"fs": 100.0, "btype": "lowpass", "cutoff_hz": refused})
        assert answer.status_code == 400 and "cutoff_hz" in answer.text, (refused, answer.text)


@pytest.mark.parametrize("content, filename, params, status, code", [
    (b"", "empty.csv", {"fs": 100}, 400, "EMPTY_INPUT"),
    (bytes(range(256)) * 16, "mystery.bin", {"fs": 100}, 415, "UNSUPPORTED_FORMAT"),
    (b"\x00" * 1001, "odd.bin", {"format": "raw", "dtype": "int16", "n_channels": 2, "fs": 100}, 400, "CORRUPT_FILE"),
    (b"1\n2\n3\nnot-a-number\n", "bad.csv", {"fs": 100}, 400, "PARSE_ERROR"),
    (b"1\n2\n3\n", "short.csv", {"fs": 100}, 400, "INVALID_INPUT"),
    (b"1\n2\n3\n" * 100, "x.csv", {"fs": 100, "cutoff_hz": [0.5, 60]}, 400, "INVALID_INPUT"),
    (b"1\n2\n3\n" * 100, "x.csv", {}, 400, "INVALID_INPUT"),
    (b"0       " + b"7" * 400, "broken.edf", {}, 400, "CORRUPT_FILE"),
])
def test_bad_input_is_refused_at_submission_and_nothing_queued(http, settings, content, filename, params, status,
                                                               code):
    response = submit_file(http, content, filename, params)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert str(settings.data_dir) not in response.text and "/uploads/" not in error["message"]  # no server path
    assert http.get("/api/v1/jobs").json()["total"] == 0


def test_non_finite_sample_fails_the_job_naming_it_and_the_upload_is_untouched(jobs, http, settings):
    x = np.sin(np.arange(50_000) / 30.0).astype(np.float32)
    x[31_337] = np.nan
    buffer = io.BytesIO()
    np.save(buffer, x)
    content = buffer.getvalue()
    response = submit_file(http, content, "nan.npy", {"fs": 250, "chunk_size": 4096})
    job = jobs.wait_finished(response.json()["id"])
    assert job["status"] == "failed" and job["error"]["code"] == "NON_FINITE"
    assert job["attempts"] == 1  # bad input is never retried
    assert job["error"]["details"]["index"] == 31_337
    assert job["artifacts"] == []
    digest = hashlib.sha256(content).hexdigest()
    assert hashlib.sha256((settings.uploads_dir / f"{digest}.npy").read_bytes()).hexdigest() == digest

    response = submit_file(http, content, "nan.npy", {"fs": 250, "chunk_size": 4096, "nan_policy": "interpolate"})
    job = jobs.wait_finished(response.json()["id"])
    assert job["status"] == "succeeded"
    assert job["result"]["channels"][0]["before"]["non_finite"] == 1
    assert np.isfinite(download_npy(http, job)).all()


def test_cancelled_filter_job_stops_and_leaves_no_output(jobs, http, settings):
    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(1).standard_normal(6_000_000).astype(np.float32))
    response = submit_file(http, buffer.getvalue(), "long.npy", {"fs": 1000, "chunk_size": 20_000})
    job_id = response.json()["id"]
    jobs.wait_for(job_id, lambda j: j["progress"]["fraction"] > 0.05, what="progress")
    assert http.delete(f"/api/v1/jobs/{job_id}").status_code == 202
    job = jobs.wait_finished(job_id, timeout_s=10)
    assert job["status"] == "cancelled" and job["artifacts"] == []
    assert not (settings.jobs_dir / job_id).exists()
    leftovers = list((settings.data_dir / "tmp").glob(f"{job_id}-*"))
    assert leftovers == []
