"""Uploads, artifacts and risk models in an S3 object store (moto's real server), with a
web process and a worker process that share no folder: two machines in one."""

from __future__ import annotations

import hashlib
import io
import json
import uuid

import httpx
import numpy as np
import pytest
from scipy import signal
from support import Jobs, WorkerProcess, bearer, gunicorn
from test_beats import wfdb_zip
from test_risk import write_csv

from ml.risk import NAMES, demo_dataset
from ml.rppg.simulate import write_face_video
from ml.signals import FilterSpec, design_sos


def bucket_keys(s3, prefix: str) -> set[str]:
    pages = s3.client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=prefix)
    return {item["Key"][len(prefix):] for page in pages for item in page.get("Contents", [])}


def files_under(folder) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


@pytest.fixture
def two_machines(s3_server, clean, tokens, tmp_path):
    """A web process (gunicorn) and a worker, each with a data folder of its own, on the
    suite's database and Redis and one prefix of the S3 bucket: the web's HTTP client,
    both folders, and the prefix."""
    prefix = f"two-machines-{uuid.uuid4().hex[:8]}/"
    env = {**s3_server.env, "VITALQ_STORAGE_URL": f"s3://{s3_server.bucket}/{prefix}"}
    web_dir, worker_dir = tmp_path / "web", tmp_path / "worker"
    worker = WorkerProcess(extra_env={**env, "VITALQ_DATA_DIR": str(worker_dir)})
    try:
        with gunicorn(tmp_path / "web.log", **env, VITALQ_DATA_DIR=str(web_dir)) as base, \
                httpx.Client(base_url=base, timeout=60, headers=bearer(tokens["admin"])) as http:
            yield http, web_dir, worker_dir, prefix
    finally:
        worker.stop()


def test_web_and_worker_share_nothing_but_the_store_the_database_and_redis(two_machines, s3_server, tmp_path):
    http, web_dir, worker_dir, prefix = two_machines
    jobs = Jobs(http)

    def run(kind: str, params: dict | None = None, file: tuple[str, bytes] | None = None, timeout_s=120) -> dict:
        if file is None:
            response = http.post("/api/v1/jobs", json={"kind": kind, "params": params or {}})
        else:
            response = http.post("/api/v1/jobs", data={"kind": kind, "params": json.dumps(params or {})},
                                 files={"file": file})
        assert response.status_code == 201, response.text
        job = jobs.wait_finished(response.json()["id"], timeout_s=timeout_s)
        assert job["status"] == "succeeded", job["error"]
        return job

    # The worker reads the upload from the store: the same bytes.
    content = np.random.default_rng(3).bytes(3 * 1024 * 1024)
    selftest = run("diagnostics.selftest", {"steps": 1}, ("trace.bin", content))
    assert selftest["result"]["input_sha256_matches"]
    assert f"uploads/{hashlib.sha256(content).hexdigest()}.bin" in bucket_keys(s3_server, prefix)

    # A signal filtered on the worker, its output downloaded through the web.
    x = np.sin(np.linspace(0, 400, 20_000)) + np.random.default_rng(4).normal(0, 0.3, 20_000)
    params = {"fs": 100.0, "cutoff_hz": [0.7, 3.5], "order": 3, "output_dtype": "float64"}
    filtered = run("signal.filter", params, ("ppg.csv", "\n".join(f"{v:.17g}" for v in x).encode()))
    download = http.get(f"/api/v1/jobs/{filtered['id']}/artifacts/filtered.npy")
    assert download.status_code == 200 and int(download.headers["Content-Length"]) == len(download.content)
    sos = design_sos(FilterSpec("butter", "bandpass", (0.7, 3.5), 3), 100.0)
    np.testing.assert_allclose(np.load(io.BytesIO(download.content)), signal.sosfiltfilt(sos, x), atol=1e-12)

    # A zip (a WFDB record) and a video: read from a scratch copy on the worker.
    beats = run("signal.beats", {"channel": "MLII"}, ("100.zip", wfdb_zip()))
    assert 70 <= beats["result"]["heart_rate_bpm"] <= 80
    assert http.get(f"/api/v1/jobs/{beats['id']}/artifacts/beats.csv").text.count("\n") > 2000
    video = tmp_path / "face.avi"
    truth = write_face_video(video, hr_bpm=84.0, seconds=16.0, size=(320, 240), seed=7)
    rppg = run("video.rppg", {"method": "POS"}, ("face.avi", video.read_bytes()))
    assert rppg["result"]["heart_rate_bpm"] == pytest.approx(truth.mean_hr_bpm, abs=2.0)
    assert {artifact["name"] for artifact in rppg["artifacts"]} == {"plot.png", "pulse.csv", "heart_rate.csv"}

    # A model trained on the worker is listed by the web, activated there, and used by the worker.
    features, labels = demo_dataset(rows=300, seed=1)
    trained = run("risk.train", {"name": "shared", "activate": False},
                  ("train.csv", write_csv(tmp_path / "train.csv", features, labels).read_bytes()))
    version = trained["result"]["model"]["version"]
    assert version in [model["version"] for model in http.get("/api/v1/models").json()["models"]]
    assert http.post(f"/api/v1/models/{version}/activate").json()["active"]
    rows = [dict(zip(NAMES, (None if np.isnan(v) else float(v) for v in row))) for row in features[:2]]
    predicted = run("risk.predict", {"rows": rows})
    assert predicted["result"]["model"]["version"] == version

    # Everything lives in the bucket; neither machine's folder keeps a job's files.
    for job in (selftest, filtered, beats, rppg):
        assert {f"jobs/{job['id']}/{artifact['name']}" for artifact in job["artifacts"]} <= bucket_keys(s3_server,
                                                                                                        prefix)
    assert [name for name in files_under(web_dir) if name.startswith(("uploads/", "jobs/"))] == []
    assert [name for name in files_under(worker_dir) if name.startswith(("uploads/", "jobs/", "tmp/"))] == []

    # Deleting a job deletes its artifacts from the store.
    assert http.delete(f"/api/v1/jobs/{filtered['id']}").status_code == 204
    assert not any(key.startswith(f"jobs/{filtered['id']}/") for key in bucket_keys(s3_server, prefix))
    assert http.get(f"/api/v1/jobs/{filtered['id']}/artifacts/filtered.npy").status_code == 404
