"""Uploads, artifacts and risk models in an S3 object store (moto's real server), with a
web process and a worker process that share no folder: two machines in one."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import httpx
import numpy as np
import pytest
from scipy import signal as scipy_signal
from support import Jobs, WorkerProcess, bearer, gunicorn, wait_until
from test_beats import wfdb_zip
from test_calibration_job import Subprocess, calibrate, register, wait_for_device_worker
from test_risk import write_csv

from ml.risk import NAMES, demo_dataset
from ml.rppg.simulate import write_face_video
from ml.signals import FilterSpec, design_sos
from worker import progress


def bucket_keys(s3, prefix: str) -> set[str]:
    pages = s3.client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=prefix)
    return {item["Key"][len(prefix):] for page in pages for item in page.get("Contents", [])}


def files_under(folder) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


@pytest.fixture
def store_env(s3_server) -> dict[str, str]:
    """The environment of a process on a prefix of the S3 bucket of its own."""
    return {**s3_server.env, "VITALQ_STORAGE_URL": f"s3://{s3_server.bucket}/test-{uuid.uuid4().hex[:8]}/"}


@pytest.fixture
def store_web(store_env, clean, tokens, tmp_path):
    """A web process (gunicorn) with a data folder of its own, on the suite's database and
    Redis and the store: its HTTP client, signed in as the admin."""
    with gunicorn(tmp_path / "web.log", **store_env, VITALQ_DATA_DIR=str(tmp_path / "web")) as base, \
            httpx.Client(base_url=base, timeout=60, headers=bearer(tokens["admin"])) as http:
        yield http


@contextlib.contextmanager
def worker_on(folder, env: dict[str, str]):
    """A worker process with the data folder ``folder`` of its own."""
    worker = WorkerProcess(extra_env={**env, "VITALQ_DATA_DIR": str(folder)})
    try:
        yield worker
    finally:
        worker.stop()


@pytest.fixture
def store_worker(store_env, tmp_path):
    with worker_on(tmp_path / "worker", store_env) as worker:
        yield worker


def test_web_and_workers_share_nothing_but_the_store_the_database_and_redis(store_web, store_worker, store_env,
                                                                            s3_server, tmp_path):
    http, web_dir, worker_dir = store_web, tmp_path / "web", tmp_path / "worker"
    prefix = store_env["VITALQ_STORAGE_URL"].split("/", 3)[3]
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
    np.testing.assert_allclose(np.load(io.BytesIO(download.content)), scipy_signal.sosfiltfilt(sos, x), atol=1e-12)

    # A zip (a WFDB record) and a video: read from a scratch copy on the worker.
    beats = run("signal.beats", {"channel": "MLII"}, ("100.zip", wfdb_zip()))
    assert 70 <= beats["result"]["heart_rate_bpm"] <= 80
    assert http.get(f"/api/v1/jobs/{beats['id']}/artifacts/beats.csv").text.count("\n") > 2000
    # A stretch of its cleaned signal, by byte range, as the job page reads it.
    whole = http.get(f"/api/v1/jobs/{beats['id']}/artifacts/cleaned.f32").content
    stretch = http.get(f"/api/v1/jobs/{beats['id']}/artifacts/cleaned.f32", headers={"Range": "bytes=4000-7999"})
    assert stretch.status_code == 206 and stretch.content == whole[4000:8000]
    assert stretch.headers["Content-Range"] == f"bytes 4000-7999/{len(whole)}"
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

    # A job of two stages (beats, then risk from their HRV): the first stage's artifacts are
    # stored when it hands the job on, and the job keeps them.
    analyzed = run("signal.analyze", {"channel": 0}, ("100.zip", wfdb_zip()))
    assert analyzed["result"]["risk"]["model"]["version"] == version
    assert {artifact["name"] for artifact in analyzed["artifacts"]} == {"beats.csv", "heart_rate.csv", "cleaned.f32"}

    # A camera's calibration, on a hardware worker with a data folder of its own.
    pool = Subprocess("worker-hw", [sys.executable, "-m", "vitalq.cli", "serve", "worker-hw"],
                      env={**store_env, "VITALQ_DATA_DIR": str(tmp_path / "hardware")})
    try:
        register(http, "store-cam")
        wait_for_device_worker("store-cam", pool)
        calibration = Jobs(http).wait_finished(calibrate(http, "store-cam")["id"], timeout_s=120)
        # A pulse sensor's recording, made on the hardware machine, read back from the store
        # by the cpu worker for its beats.
        sensor = {"id": "store-ppg", "driver": "pulse-simulated", "connection": {"realtime": False, "hr_bpm": 80}}
        assert http.post("/api/v1/devices", json=sensor).status_code == 201
        wait_for_device_worker("store-ppg", pool)
        recorded = run("sensor.record", {"device": "store-ppg", "seconds": 60})
    finally:
        pool.stop()
    assert calibration["status"] == "succeeded" and calibration["result"]["passed"], calibration["error"]
    profile = json.loads(http.get(f"/api/v1/jobs/{calibration['id']}/artifacts/profile.json").content)
    assert profile["settings"] == calibration["result"]["settings"]
    assert recorded["result"]["beats"]["heart_rate_bpm"] == pytest.approx(80, abs=2)
    assert {a["name"] for a in recorded["artifacts"]} == {"recording.csv", "beats.csv", "heart_rate.csv", "cleaned.f32"}

    # Everything lives in the bucket; neither machine's folder keeps a job's files.
    for job in (selftest, filtered, beats, rppg, analyzed, calibration, recorded):
        assert {f"jobs/{job['id']}/{artifact['name']}" for artifact in job["artifacts"]} <= bucket_keys(s3_server,
                                                                                                        prefix)
    assert [name for name in files_under(web_dir) if name.startswith(("uploads/", "jobs/"))] == []
    for folder in (worker_dir, tmp_path / "hardware"):
        assert [name for name in files_under(folder) if name.startswith(("uploads/", "jobs/", "tmp/"))] == []

    # Deleting a job deletes its artifacts from the store.
    assert http.delete(f"/api/v1/jobs/{filtered['id']}").status_code == 204
    assert not any(key.startswith(f"jobs/{filtered['id']}/") for key in bucket_keys(s3_server, prefix))
    assert http.get(f"/api/v1/jobs/{filtered['id']}/artifacts/filtered.npy").status_code == 404


def test_a_store_that_is_down_refuses_a_submission_with_503_and_keeps_nothing(client, configure, settings,
                                                                               monkeypatch, s3_server):
    from worker.embedded_redis import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
        monkeypatch.setenv(name, s3_server.env[name])
    configure(storage_url=f"s3://{s3_server.bucket}/down-{uuid.uuid4().hex[:8]}")
    before = client.get("/api/v1/jobs").get_json()["total"]

    answer = client.post("/api/v1/jobs", data={"kind": "diagnostics.selftest", "file": (io.BytesIO(b"x" * 1000),
                                                                                        "trace.bin")})
    assert answer.status_code == 503 and answer.get_json()["error"]["code"] == "UNAVAILABLE"
    assert "object store" in answer.get_json()["error"]["message"] and answer.headers["Retry-After"]
    assert client.get("/api/v1/jobs").get_json()["total"] == before
    assert list(settings.uploads_dir.glob(".incoming-*")) == []
    ready = client.get("/health/ready").get_json()
    assert ready["checks"]["store"]["ok"] is False and "object store" in ready["checks"]["store"]["detail"]


def test_a_worker_that_cannot_reach_the_store_retries_then_fails_unavailable(store_web, store_env, tmp_path):
    from worker.embedded_redis import free_port

    # The worker's endpoint is a port nothing listens on; the web's is the store.
    with worker_on(tmp_path / "worker", {**store_env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}):
        answer = store_web.post("/api/v1/jobs", data={"kind": "diagnostics.selftest"},
                                files={"file": ("trace.bin", b"y" * 1000)})
        assert answer.status_code == 201, answer.text
        job = Jobs(store_web).wait_finished(answer.json()["id"], timeout_s=90)
    assert job["status"] == "failed" and job["error"]["code"] == "UNAVAILABLE", job["error"]
    assert job["attempts"] == 4 and job["error"]["details"]["retries"] == 3  # VITALQ_MAX_RETRIES in the tests


def test_a_worker_killed_while_it_copies_the_input_is_replaced_and_the_job_finishes_once(store_web, store_env,
                                                                                        tmp_path):
    from worker.reconcile import active_tasks, reconcile

    content = os.urandom(192 * 1024 * 1024)
    doomed_dir = tmp_path / "doomed"
    doomed = WorkerProcess(extra_env={**store_env, "VITALQ_DATA_DIR": str(doomed_dir)})
    answer = store_web.post("/api/v1/jobs", data={"kind": "diagnostics.selftest"},
                            files={"file": ("big.bin", content)})
    assert answer.status_code == 201, answer.text
    job_id = answer.json()["id"]

    def copy_begun() -> list:
        return [path for path in (doomed_dir / "tmp").glob(f"{job_id}-*/*") if path.stat().st_size > 0]

    wait_until(copy_begun, 60, "the worker begins copying the input", interval_s=0.005)
    subprocess.run(["pkill", "-KILL", "-P", str(doomed.process.pid)], check=False)
    os.kill(doomed.process.pid, signal.SIGKILL)
    doomed.process.wait()
    doomed.log.close()
    assert sum(path.stat().st_size for path in copy_begun()) < len(content)  # killed mid-copy
    wait_until(lambda: doomed.hostname not in active_tasks(timeout_s=1.0)[0], 30, "the dead worker is gone",
               interval_s=0)

    with worker_on(tmp_path / "rescuer", store_env) as rescuer:
        assert reconcile(min_age_s=0)["dead_worker"] == [job_id]
        done = Jobs(store_web).wait_finished(job_id, timeout_s=120)
    assert done["status"] == "succeeded" and done["result"]["input_sha256_matches"]
    assert done["redeliveries"] == 1 and done["worker"].startswith(rescuer.hostname)
    statuses = [event["status"] for _, event in progress.read(job_id) if event["type"] == "status"]
    assert statuses.count("succeeded") == 1, statuses
    assert not any((tmp_path / "rescuer" / "tmp").glob("*"))  # its scratch copy went with the job


def test_the_sweep_removes_from_the_store_what_no_job_refers_to_and_aborts_unfinished_uploads(
        client, configure, monkeypatch, s3_server):
    from worker import retention

    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    prefix = f"sweep-{uuid.uuid4().hex[:8]}/"
    configure(storage_url=f"s3://{s3_server.bucket}/{prefix}")
    kept = client.post("/api/v1/jobs", data={"kind": "diagnostics.selftest", "file": (io.BytesIO(b"kept"), "a.bin")})
    assert kept.status_code == 201, kept.get_json()
    kept = kept.get_json()
    s3 = s3_server.client
    for key in ("uploads/" + "0" * 64 + ".bin", "jobs/no-such-job/result.json", f"jobs/{kept['id']}/selftest.json"):
        s3.put_object(Bucket=s3_server.bucket, Key=prefix + key, Body=b"left behind")
    unfinished = s3.create_multipart_upload(Bucket=s3_server.bucket, Key=prefix + "uploads/partial.bin")["UploadId"]

    # All too recent. (moto dates every multipart upload 2010-11-10: that one is aborted now.)
    assert retention.sweep() == {"uploads": 0, "job_folders": 0, "unfinished_uploads": 1}
    assert bucket_keys(s3_server, prefix) == {f"uploads/{hashlib.sha256(b'kept').hexdigest()}.bin",
                                              f"jobs/{kept['id']}/selftest.json", "jobs/no-such-job/result.json",
                                              "uploads/" + "0" * 64 + ".bin"}
    monkeypatch.setattr(retention, "SWEEP_GRACE_S", -60)  # everything counts as old now
    assert retention.sweep() == {"uploads": 1, "job_folders": 1, "unfinished_uploads": 0}
    left = bucket_keys(s3_server, prefix)
    assert left == {f"uploads/{hashlib.sha256(b'kept').hexdigest()}.bin", f"jobs/{kept['id']}/selftest.json"}
    uploads = s3.list_multipart_uploads(Bucket=s3_server.bucket, Prefix=prefix).get("Uploads", [])
    assert unfinished not in [upload["UploadId"] for upload in uploads]


# --- direct uploads: large files put into the store by the client ---------------------------------


def test_a_large_file_goes_straight_into_the_store_and_its_job_runs(store_web, store_worker, store_env, s3_server,
                                                                   tokens, tmp_path):
    from vitalq.client import Client

    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(3 * 1024 * 1024))
    sent = []
    client = Client(str(store_web.base_url), tokens["alice"], direct_upload_bytes=1024 * 1024)
    job = client.submit("diagnostics.selftest", {"steps": 1}, file=path, on_upload=lambda done, total: sent.append(
        (done, total)))
    assert sent[-1] == (path.stat().st_size, path.stat().st_size)
    done = Jobs(store_web).wait_finished(job["id"])
    assert done["status"] == "succeeded" and done["result"]["input_sha256_matches"], done["error"]
    assert done["input"]["filename"] == "big.bin" and done["input"]["size"] == path.stat().st_size
    prefix = store_env["VITALQ_STORAGE_URL"].split("/", 3)[3]
    assert [key for key in bucket_keys(s3_server, prefix) if key.startswith("incoming/")] != []
    small = tmp_path / "small.bin"
    small.write_bytes(b"through the web tier")
    assert Jobs(store_web).wait_finished(client.submit("diagnostics.selftest", file=small)["id"])["status"] == \
        "succeeded"


def test_a_direct_upload_is_its_offerer_s_own_and_must_be_the_file_it_claimed(store_web, store_worker, tokens):
    alice = httpx.Client(base_url=store_web.base_url, timeout=30, headers=bearer(tokens["alice"]))
    bob = httpx.Client(base_url=store_web.base_url, timeout=30, headers=bearer(tokens["bob"]))
    content = b"what alice said she would send"
    offer = alice.post("/api/v1/uploads", json={"filename": "a.bin", "size": len(content),
                                                "sha256": hashlib.sha256(content).hexdigest()}).json()
    submit = {"kind": "diagnostics.selftest", "upload": offer["upload"]}
    early = alice.post("/api/v1/jobs", json=submit)
    assert early.status_code == 400 and early.json()["error"]["details"]["fields"] == {"upload": "not arrived"}
    lie = b"something else, the same length"[:len(content)]
    assert httpx.put(offer["url"], content=lie, headers=offer["headers"]).status_code == 200
    stolen = bob.post("/api/v1/jobs", json=submit)
    assert stolen.status_code == 400 and stolen.json()["error"]["details"]["fields"] == {"upload": "not a valid upload"}
    forged = alice.post("/api/v1/jobs", json={**submit, "upload": offer["upload"][:-2] + "xx"})
    assert forged.status_code == 400
    job = alice.post("/api/v1/jobs", json=submit)
    assert job.status_code == 201, job.text
    failed = Jobs(alice).wait_finished(job.json()["id"])
    assert failed["status"] == "failed" and failed["error"]["code"] == "INVALID_INPUT"
    assert failed["error"]["details"]["sha256"] == hashlib.sha256(lie).hexdigest() and failed["attempts"] == 1
    bad = alice.post("/api/v1/uploads", json={"filename": "", "size": 0, "sha256": "ABC", "path": "/etc"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "INVALID_INPUT"
    assert set(bad.json()["error"]["details"]["fields"]) == {"filename", "size", "sha256", "path"}
    too_big = alice.post("/api/v1/uploads", json={"filename": "a.bin", "size": 2**50, "sha256": "0" * 64})
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "TOO_LARGE"


def test_direct_uploads_need_an_object_store(client):
    answer = client.post("/api/v1/uploads", json={"filename": "a.bin", "size": 10, "sha256": "0" * 64})
    assert answer.status_code == 404 and "object store" in answer.get_json()["error"]["message"]


def test_a_submission_looks_at_the_ends_of_a_direct_upload_only(s3_server, tmp_path, monkeypatch):
    from worker.objects import S3Bucket

    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    content = os.urandom(1000)
    s3_server.client.put_object(Bucket=s3_server.bucket, Key="ends/x.bin", Body=content)
    store = S3Bucket(s3_server.bucket, "ends")
    store.fetch_ends(store.location("x.bin"), tmp_path / "look", 1000, 100)
    look = (tmp_path / "look").read_bytes()
    assert look[:100] == content[:100] and look[-100:] == content[-100:] and look[100:900] == bytes(800)
    store.fetch_ends(store.location("x.bin"), tmp_path / "whole", 1000, 600)
    assert (tmp_path / "whole").read_bytes() == content


def test_direct_upload_urls_name_the_endpoint_clients_use(client, configure, monkeypatch, s3_server):
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    public = s3_server.env["AWS_ENDPOINT_URL"].replace("127.0.0.1", "localhost")  # the address outside
    configure(storage_url=f"s3://{s3_server.bucket}/public-{uuid.uuid4().hex[:8]}", storage_public_endpoint=public)
    content = b"sent from outside"
    offer = client.post("/api/v1/uploads", json={"filename": "o.bin", "size": len(content),
                                                 "sha256": hashlib.sha256(content).hexdigest()}).get_json()
    assert offer["url"].startswith(public + "/")
    assert httpx.put(offer["url"], content=content, headers=offer["headers"]).status_code == 200
    job = client.post("/api/v1/jobs", json={"kind": "diagnostics.selftest", "upload": offer["upload"]})
    assert job.status_code == 201, job.get_json()


def test_a_worker_starting_removes_what_killed_jobs_left_on_its_machine(store_env, clean, tmp_path):
    folder = tmp_path / "worker"
    stale = [folder / "jobs" / ("a" * 32) / "pulse.csv", folder / "tmp" / f"{'b' * 32}-x1y2" / "face.mp4"]
    fresh = folder / "tmp" / f"{'c' * 32}-z3" / "face.mp4"
    for path in (*stale, fresh):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"left behind")
    two_hours_ago = time.time() - 7200
    for path in stale:
        os.utime(path.parent, (two_hours_ago, two_hours_ago))
    with worker_on(folder, store_env):
        assert not any(path.parent.exists() for path in stale)
        assert fresh.exists()  # too recent to judge


def test_one_user_s_offers_not_yet_submitted_are_bounded(client, configure, monkeypatch, s3_server):
    from worker import storage

    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    configure(storage_url=f"s3://{s3_server.bucket}/quota-{uuid.uuid4().hex[:8]}", max_pending_upload_bytes=100)

    def offer(content: bytes):
        return client.post("/api/v1/uploads", json={"filename": "q.bin", "size": len(content),
                                                   "sha256": hashlib.sha256(content).hexdigest()})

    first = offer(b"a" * 60)
    assert first.status_code == 201
    over = offer(b"b" * 60)  # 120 bytes offered at once: past the bound
    assert over.status_code == 429 and over.get_json()["error"]["code"] == "RATE_LIMITED"
    assert over.get_json()["error"]["details"]["held_bytes"] == 60
    assert 3500 <= int(over.headers["Retry-After"]) <= 3601  # when the first offer expires
    # Submitted, the first is an input like any other, and no longer held against its user.
    assert httpx.put(first.get_json()["url"], content=b"a" * 60, headers=first.get_json()["headers"]).status_code == 200
    job = client.post("/api/v1/jobs", json={"kind": "diagnostics.selftest", "upload": first.get_json()["upload"]})
    assert job.status_code == 201, job.get_json()
    assert offer(b"b" * 60).status_code == 201
    # However small, no more than MAX_PENDING_OFFERS at once.
    configure(max_pending_upload_bytes=10_000)
    answers = [offer(b"c").status_code for _ in range(storage.MAX_PENDING_OFFERS)]
    assert answers.count(201) == storage.MAX_PENDING_OFFERS - 1 and answers[-1] == 429
