"""The HTTP API's answers to good and bad submissions, without a worker.

Nothing here needs a job to run: what is checked is what the API stores and queues.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from worker import store
from worker.broker import get_redis
from worker.celery_app import queue_depths


def nothing_queued(settings) -> bool:
    return store.find()[1] == 0 and sum(queue_depths(("cpu",)).values()) == 0


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert error["request_id"] == response.headers["X-Request-ID"]
    return error


def test_kinds_publish_schema_queue_limits_and_uploads(client):
    kinds = {kind["name"]: kind for kind in client.get("/api/v1/kinds").get_json()["kinds"]}
    selftest = kinds["diagnostics.selftest"]
    assert selftest["queue"] == "cpu"
    assert selftest["params_schema"]["properties"]["duration_s"]["maximum"] == 600
    assert selftest["time_limits"]["soft_s"] < selftest["time_limits"]["hard_s"]
    assert selftest["upload"] == {"required": False, "formats": [], "max_bytes": None, "by_content": False}
    assert kinds["signal.filter"]["upload"]["by_content"] and kinds["video.rppg"]["time_limits"]["seconds_per_upload_mb"] > 0
    assert client.get("/api/v1/kinds/diagnostics.selftest").get_json() == selftest
    assert_error(client.get("/api/v1/kinds/nope"), 404, "NOT_FOUND")


def test_kind_schemas_offer_exactly_what_the_computation_implements():
    """The schemas spell their choices out (the web process imports no computation to
    publish them): each must be what ml/ accepts, no more and no less."""
    from ml.rppg import METHOD_NAMES
    from ml.risk import MODEL_TYPES
    from ml.signals import BAND_TYPES, FAMILIES, FORMATS, NAN_POLICIES, RAW_DTYPES
    from worker.kinds import get_kind

    def choices(kind: str, param: str) -> set:
        return set(get_kind(kind).params_schema["properties"][param]["enum"])

    assert choices("signal.filter", "family") == {*FAMILIES, "none"}
    assert choices("signal.filter", "btype") == set(BAND_TYPES)
    assert choices("signal.filter", "format") == {*FORMATS, "auto"}
    # Raw samples: the reader's named types, and byte orders spelled out (any numpy integer or float reads).
    assert set(RAW_DTYPES) <= choices("signal.filter", "dtype")
    assert all(np.dtype(name).kind in "iuf" for name in choices("signal.filter", "dtype"))
    assert choices("signal.filter", "nan_policy") == set(NAN_POLICIES)
    assert choices("video.rppg", "method") == choices("video.analyze", "method") == set(METHOD_NAMES)
    assert choices("risk.train", "model_type") == set(MODEL_TYPES)


def test_submit_records_and_queues_a_job_with_defaults(client, settings):
    response = client.post("/api/v1/jobs", json={"kind": "diagnostics.selftest", "params": {"steps": 2},
                                                 "priority": 8})
    assert response.status_code == 201
    job = response.get_json()
    assert response.headers["Location"].endswith(f"/api/v1/jobs/{job['id']}")
    assert job["status"] == "queued" and job["priority"] == 8 and job["queue"] == "cpu"
    assert job["params"] == {"steps": 2, "duration_s": 0.2, "blocking_s": 0, "transient_failures": 0,
                             "ignore_soft_limit": False, "allocate_bytes": 0, "write_bytes": 0}
    assert job["time_limits"] == {"soft_s": 60, "hard_s": 90}
    # Enqueued: no worker takes cpu jobs in this module, so its message waits, on the list
    # of its priority (Redis serves 0 first; the API's 8 is Celery's 1).
    assert queue_depths(("cpu",))["cpu"] == 1 and get_redis().llen("cpu:1") == 1
    assert client.get(f"/api/v1/jobs/{job['id']}").get_json()["status"] == "queued"


def test_a_selftest_longer_than_a_minute_gets_a_limit_that_fits_it(client):
    job = client.post("/api/v1/jobs", json={"kind": "diagnostics.selftest", "params": {"duration_s": 75}}).get_json()
    assert job["time_limits"] == {"soft_s": 105, "hard_s": 135}
    asked = client.post("/api/v1/jobs", json={"kind": "diagnostics.selftest",
                                              "params": {"duration_s": 75, "soft_time_limit_s": 5}}).get_json()
    assert asked["time_limits"] == {"soft_s": 5, "hard_s": 35}  # a limit asked for is kept


def test_a_job_whose_work_grows_with_its_upload_gets_limits_that_grow_with_it(client):
    kind = client.get("/api/v1/kinds/signal.filter").get_json()["time_limits"]
    rows = b"t,ppg\n" + b"".join(b"%d,%d\n" % (i, i % 97) for i in range(400_000))
    job = client.post("/api/v1/jobs", data={"kind": "signal.filter", "params": json.dumps({"fs": 100}),
                                            "file": (io.BytesIO(rows), "big.csv")}).get_json()
    extra = len(rows) / 1e6 * kind["seconds_per_upload_mb"]
    assert job["time_limits"] == pytest.approx({"soft_s": kind["soft_s"] + extra, "hard_s": kind["hard_s"] + 1.5 * extra})


@pytest.mark.parametrize("body, field", [
    ({"kind": "no.such.kind"}, "kind"),
    ({}, "kind"),
    ({"kind": "diagnostics.selftest", "params": {"duration_s": "long"}}, "duration_s"),
    ({"kind": "diagnostics.selftest", "params": {"duration_s": 601}}, "duration_s"),
    ({"kind": "diagnostics.selftest", "params": {"steps": 0}}, "steps"),
    ({"kind": "diagnostics.selftest", "params": {"colour": "red"}}, "colour"),
    ({"kind": "diagnostics.selftest", "params": [1, 2]}, "params"),
    ({"kind": "diagnostics.selftest", "priority": 10}, "priority"),
    ({"kind": "diagnostics.selftest", "priority": "high"}, "priority"),
    ({"kind": "diagnostics.selftest", "priority": True}, "priority"),
    ({"kind": "diagnostics.selftest", "params": {"soft_time_limit_s": 5, "hard_time_limit_s": 4}},
     "hard_time_limit_s"),
])
def test_invalid_submission_is_refused_and_nothing_queued(client, settings, body, field):
    error = assert_error(client.post("/api/v1/jobs", json=body), 400, "INVALID_INPUT")
    assert field in error["details"]["fields"]
    assert nothing_queued(settings)


@pytest.mark.parametrize("data", [b"{not json", b"[1, 2]", b"", b"null"])
def test_malformed_json_is_refused(client, settings, data):
    assert_error(client.post("/api/v1/jobs", data=data, content_type="application/json"), 400, "INVALID_INPUT")
    assert nothing_queued(settings)


def test_multipart_upload_is_stored_under_its_sha256(client, settings):
    content = b"pulse,1\n" * 50_000
    response = client.post("/api/v1/jobs", data={
        "kind": "diagnostics.selftest", "params": json.dumps({"steps": 1}), "priority": "3",
        "file": (io.BytesIO(content), "../../etc/recording.csv"),
    })
    assert response.status_code == 201, response.get_data(as_text=True)
    job = response.get_json()
    digest = hashlib.sha256(content).hexdigest()
    assert job["input"] == {"sha256": digest, "size": len(content), "filename": "recording.csv"}
    assert job["priority"] == 3
    stored = settings.uploads_dir / f"{digest}.csv"
    assert stored.read_bytes() == content
    assert [p.name for p in settings.uploads_dir.iterdir() if p.name.startswith(".incoming")] == []


def test_upload_over_the_limit_is_refused_and_not_kept(app, client, settings):
    before = set(settings.uploads_dir.glob("*")) if settings.uploads_dir.exists() else set()
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024  # this test's own app
    response = client.post("/api/v1/jobs", data={
        "kind": "diagnostics.selftest", "file": (io.BytesIO(b"x" * 200_000), "big.bin")})
    assert_error(response, 413, "TOO_LARGE")
    assert nothing_queued(settings)
    assert set(settings.uploads_dir.glob("*")) == before


def test_refused_multipart_submission_keeps_no_upload(client, settings):
    before = set(settings.uploads_dir.glob("*")) if settings.uploads_dir.exists() else set()
    response = client.post("/api/v1/jobs", data={
        "kind": "diagnostics.selftest", "params": "{broken", "file": (io.BytesIO(b"abc"), "a.txt")})
    assert_error(response, 400, "INVALID_INPUT")
    response = client.post("/api/v1/jobs", data={
        "kind": "diagnostics.selftest", "file": (io.BytesIO(b""), "empty.csv")})
    assert_error(response, 400, "EMPTY_INPUT")
    assert set(settings.uploads_dir.glob("*")) == before
    assert nothing_queued(settings)


def test_unknown_job_and_artifact_are_not_found(client):
    assert_error(client.get("/api/v1/jobs/0123456789abcdef"), 404, "NOT_FOUND")
    assert_error(client.delete("/api/v1/jobs/0123456789abcdef"), 404, "NOT_FOUND")
    assert_error(client.get("/api/v1/jobs/0123456789abcdef/artifacts/x.json"), 404, "NOT_FOUND")
    assert_error(client.get("/api/v1/nothing-here"), 404, "NOT_FOUND")
    assert_error(client.put("/api/v1/jobs"), 405, "METHOD_NOT_ALLOWED")


def test_request_id_is_echoed(client):
    response = client.get("/api/v1/jobs/missing", headers={"X-Request-ID": "trace-123"})
    assert response.headers["X-Request-ID"] == "trace-123"
    assert response.get_json()["error"]["request_id"] == "trace-123"


def test_list_filters_and_paginates(client):
    ids = [client.post("/api/v1/jobs", json={"kind": "diagnostics.selftest", "priority": p}).get_json()["id"]
           for p in range(5)]
    store.request_cancel(ids[0])
    page = client.get("/api/v1/jobs?limit=2").get_json()
    assert page["total"] == 5 and [j["id"] for j in page["jobs"]] == ids[::-1][:2]
    second = client.get(page["next"]).get_json()
    assert [j["id"] for j in second["jobs"]] == ids[::-1][2:4]
    assert client.get(second["next"]).get_json()["next"] is None
    cancelled = client.get("/api/v1/jobs?status=cancelled").get_json()
    assert [j["id"] for j in cancelled["jobs"]] == [ids[0]]
    assert client.get("/api/v1/jobs?kind=diagnostics.selftest&status=queued").get_json()["total"] == 4
    assert client.get("/api/v1/jobs?kind=other").get_json()["total"] == 0
    assert_error(client.get("/api/v1/jobs?status=lost"), 400, "INVALID_INPUT")
    assert_error(client.get("/api/v1/jobs?limit=0"), 400, "INVALID_INPUT")
    assert_error(client.get("/api/v1/jobs?offset=-1"), 400, "INVALID_INPUT")


def test_cancel_of_a_queued_job_is_final_and_a_second_cancel_conflicts(client):
    job = client.post("/api/v1/jobs", json={"kind": "diagnostics.selftest"}).get_json()
    response = client.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 200
    assert response.get_json()["status"] == "cancelled"
    assert response.get_json()["error"]["code"] == "CANCELLED"
    assert_error(client.post(f"/api/v1/jobs/{job['id']}/cancel"), 409, "JOB_FINISHED")
    assert client.get(f"/api/v1/jobs/{job['id']}").status_code == 200  # a cancel never deletes


def test_delete_cancels_a_live_job_and_deletes_a_finished_one(client):
    job = client.post("/api/v1/jobs", json={"kind": "diagnostics.selftest"}).get_json()
    cancelled = client.delete(f"/api/v1/jobs/{job['id']}")
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    deleted = client.delete(f"/api/v1/jobs/{job['id']}")
    assert deleted.status_code == 204 and deleted.data == b""
    assert_error(client.get(f"/api/v1/jobs/{job['id']}"), 404, "NOT_FOUND")
    assert_error(client.delete(f"/api/v1/jobs/{job['id']}"), 404, "NOT_FOUND")


def _age(path: Path, days: float) -> None:
    then = time.time() - days * 86400
    os.utime(path, (then, then))


def test_beat_sweeps_what_no_job_refers_to_even_without_retention(client, settings, configure):
    """Without VITALQ_RETENTION_DAYS nothing was removed: a dropped upload's partial file
    and a deleted job's upload stayed for good."""
    from worker import beat

    configure(retention_days=0.0)
    partial = settings.uploads_dir / ".incoming-dropped"
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(b"half an upload")
    _age(partial, 2)
    interval, run = beat._in_process_runs()[beat.RETENTION_ENTRY]
    assert interval == settings.retention_interval_s
    run()
    assert not partial.exists()


def test_retention_deletes_old_finished_jobs_and_sweeps_what_no_job_refers_to(client, settings):
    from sqlalchemy import update

    from worker import retention
    from worker.db import session_scope
    from worker.models import Job

    for folder in (settings.uploads_dir, settings.jobs_dir):  # what earlier tests left, their jobs gone
        shutil.rmtree(folder, ignore_errors=True)

    def cancelled_job(content: bytes) -> str:
        job = client.post("/api/v1/jobs", data={"kind": "diagnostics.selftest",
                                                "file": (io.BytesIO(content), "trace.bin")}).get_json()
        assert client.post(f"/api/v1/jobs/{job['id']}/cancel").status_code == 200
        return job["id"]

    old, recent, sharing = cancelled_job(b"old"), cancelled_job(b"recent"), cancelled_job(b"shared")
    old_sharing = cancelled_job(b"shared")
    queued = client.post("/api/v1/jobs", json={"kind": "diagnostics.selftest"}).get_json()["id"]
    with session_scope() as session:  # finished 40 days ago; the queued one was created then
        session.execute(update(Job).where(Job.id.in_([old, old_sharing])).values(
            finished_at=datetime.now(timezone.utc) - timedelta(days=40)))
        session.execute(update(Job).where(Job.id == queued).values(
            created_at=datetime.now(timezone.utc) - timedelta(days=40)))
    uploads = {path.read_bytes(): path for path in settings.uploads_dir.glob("*.bin")}
    for path in uploads.values():
        _age(path, 40)
    (settings.jobs_dir / old).mkdir(parents=True, exist_ok=True)
    (settings.jobs_dir / old / "result.json").write_text("{}")
    orphan_folder, fresh_orphan = settings.jobs_dir / "no-such-job", settings.jobs_dir / "being-written"
    orphan_upload = settings.uploads_dir / ("0" * 64 + ".bin")
    for folder in (orphan_folder, fresh_orphan):
        folder.mkdir(parents=True)
    orphan_upload.write_bytes(b"left by a deletion that was cut short")
    for path in (orphan_folder, orphan_upload):
        _age(path, 2)

    assert retention.purge(30) == {"jobs": 2, "uploads": 1, "job_folders": 1, "unfinished_uploads": 0}
    for gone in (old, old_sharing):
        assert_error(client.get(f"/api/v1/jobs/{gone}"), 404, "NOT_FOUND")
    for kept in (recent, sharing, queued):  # finished lately, or not finished at all
        assert client.get(f"/api/v1/jobs/{kept}").status_code == 200
    assert not uploads[b"old"].exists() and not (settings.jobs_dir / old).exists()
    assert uploads[b"recent"].exists() and uploads[b"shared"].exists()  # still the input of a job
    assert not orphan_folder.exists() and not orphan_upload.exists()
    assert fresh_orphan.exists()  # its job may be on its way to being recorded
    assert retention.purge(30) == {"jobs": 0, "uploads": 0, "job_folders": 0, "unfinished_uploads": 0}


def test_retry_runs_a_finished_job_again_and_refuses_a_malformed_body(client):
    original = client.post("/api/v1/jobs", json={"kind": "diagnostics.selftest", "params": {"steps": 3},
                                                 "priority": 2}).get_json()
    live = assert_error(client.post(f"/api/v1/jobs/{original['id']}/retry"), 400, "INVALID_INPUT")
    assert live["details"]["fields"] == {"job": "still queued"}
    client.delete(f"/api/v1/jobs/{original['id']}")

    again = client.post(f"/api/v1/jobs/{original['id']}/retry")  # no body: the original's priority
    assert again.status_code == 201
    assert again.get_json()["priority"] == 2 and again.get_json()["params"] == original["params"]
    raised = client.post(f"/api/v1/jobs/{original['id']}/retry", json={"priority": 9}).get_json()
    assert raised["priority"] == 9 and raised["id"] not in {original["id"], again.get_json()["id"]}
    for body in ("{not json", "[1, 2]"):
        error = assert_error(client.post(f"/api/v1/jobs/{original['id']}/retry", data=body,
                                         content_type="application/json"), 400, "INVALID_INPUT")
        assert error["details"]["fields"] == {"body": "malformed JSON"}
    assert store.find(kind="diagnostics.selftest")[1] == 3  # the refused ones made no job


def test_liveness_and_pages_served_without_outside_resources(client):
    assert client.get("/health/live").get_json() == {"status": "ok"}
    for path in ("/", "/jobs", "/devices"):
        page = client.get(path)
        assert page.status_code == 200 and "<main" in page.get_data(as_text=True)
        # Offline: every script and stylesheet comes from vitalq itself.
        assets = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', page.get_data(as_text=True))
        assert assets and all(asset.startswith("/static/") or asset.startswith("data:") for asset in assets)
    assert client.get("/jobs/nonexistent").status_code == 404
    assert client.get("/static/vendor/uplot/uPlot.iife.min.js").status_code == 200


def test_time_limits_stay_under_the_visibility_timeout(settings):
    from worker.dispatch import capped_time_limits

    ceiling = settings.visibility_timeout_s - 60
    assert capped_time_limits(1, 3) == (1, 3)
    assert capped_time_limits(120, 240) == (120, 240)
    assert capped_time_limits(10 * ceiling, 20 * ceiling) == (ceiling - 30, ceiling)


def test_a_batch_is_queued_whole_or_not_at_all(client):
    batch = [{"kind": "diagnostics.selftest", "params": {"steps": i + 1}, "priority": i % 10} for i in range(30)]
    answer = client.post("/api/v1/batches", json={"jobs": batch})
    assert answer.status_code == 201, answer.get_json()
    jobs = answer.get_json()["jobs"]
    assert [job["params"]["steps"] for job in jobs] == list(range(1, 31))  # in the order given
    assert [job["priority"] for job in jobs] == [i % 10 for i in range(30)]
    assert queue_depths(("cpu",))["cpu"] == 30 and store.find()[1] == 30

    bad = batch[:5] + [{"kind": "diagnostics.selftest", "params": {"steps": 0}}] + batch[5:]
    error = assert_error(client.post("/api/v1/batches", json={"jobs": bad}), 400, "INVALID_INPUT")
    assert error["details"]["index"] == 5 and "steps" in error["details"]["fields"]
    needs_file = assert_error(client.post("/api/v1/batches", json={"jobs": [{"kind": "signal.filter"}]}),
                              400, "INVALID_INPUT")
    assert needs_file["details"] == {"fields": {"file": "required"}, "index": 0}
    for body in ({"jobs": []}, {"jobs": batch * 4}, {"jobs": "all"}, {"jobs": batch, "extra": 1}):
        assert_error(client.post("/api/v1/batches", json=body), 400, "INVALID_INPUT")
    assert store.find()[1] == 30 and queue_depths(("cpu",))["cpu"] == 30  # the refused ones left nothing


def test_a_batch_goes_to_the_broker_in_one_round_trip(client, monkeypatch):
    from redis.connection import AbstractConnection

    sent = []
    send = AbstractConnection.send_packed_command
    monkeypatch.setattr(AbstractConnection, "send_packed_command",
                        lambda self, command, *args, **kwargs: (sent.append(command), send(self, command, *args, **kwargs)))
    batch = [{"kind": "diagnostics.selftest", "params": {"steps": 1}}] * 30
    assert client.post("/api/v1/batches", json={"jobs": batch}).status_code == 201
    pushes = [command for command in sent if b"LPUSH" in b"".join(command if isinstance(command, list) else [command])]
    assert len(pushes) == 1  # one pipeline holds the 30 messages
    assert queue_depths(("cpu",))["cpu"] == 30


def test_a_batch_the_broker_refuses_leaves_every_job_failed_and_none_queued(client):
    batch = [{"kind": "diagnostics.selftest", "params": {"steps": 1}}] * 5
    first = client.post("/api/v1/batches", json={"jobs": batch})
    assert first.status_code == 201
    redis_server = get_redis()
    redis_server.config_set("maxmemory", 1)  # Redis full: it refuses every write (OOM)
    try:
        refused = assert_error(client.post("/api/v1/batches", json={"jobs": batch}), 503, "UNAVAILABLE")
    finally:
        redis_server.config_set("maxmemory", 0)
    assert "not queued" in refused["message"]
    jobs, total = store.find(limit=20)
    assert total == 10
    kept = {job.id for job in jobs if job.status == "queued"}
    assert kept == {job["id"] for job in first.get_json()["jobs"]}  # what was queued before stays queued
    failed = [job for job in jobs if job.id not in kept]
    assert [(job.status, job.error_code) for job in failed] == [("failed", "UNAVAILABLE")] * 5
    assert queue_depths(("cpu",))["cpu"] == 5  # and no message of the refused batch


#: What the web process must never load: it streams uploads and checks bounded headers;
#: decoding, fitting, inference and the camera drivers run in the workers. (It reads the
#: camera layer's error classes, in ``hardware.errors``, for their sentences, and which
#: drivers drive cameras and which pulse sensors, in ``hardware.drivers``: LIGHT.)
WORKER_ONLY = ("openvino", "sklearn", "joblib", "cv2", "av", "matplotlib", "pyedflib", "wfdb", "neurokit2", "serial",
               "hardware")
LIGHT = ("hardware", "hardware.errors", "hardware.drivers")


def test_the_web_process_loads_no_decoder_model_or_driver(clean, tokens, tmp_path):
    """Every kind submitted (each upload's header checked), models listed, in a fresh web process."""
    script = tmp_path / "web_process.py"
    from ml.risk import NAMES, demo_dataset

    row = {name: None if value != value else float(value) for name, value in zip(NAMES, demo_dataset(rows=50)[0][0])}
    script.write_text(f"""
import io, json, sys
ROW = {row!r}
from web import create_app

client = create_app().test_client()
client.environ_base["HTTP_AUTHORIZATION"] = "Bearer {tokens['admin']}"
answers = {{
    "kinds": client.get("/api/v1/kinds").status_code,
    "models": client.get("/api/v1/models").status_code,
    "filter": client.post("/api/v1/jobs", data={{"kind": "signal.filter", "params": json.dumps({{"fs": 100}}),
                                                "file": (io.BytesIO(b"a,b\\n" + b"1,2\\n" * 500), "s.csv")}}).status_code,
    "video": client.post("/api/v1/jobs", data={{
        "kind": "video.rppg", "params": "{{}}",
        "file": (io.BytesIO(b"RIFF" + bytes(4) + b"AVI " + bytes(3000)), "v.avi")}}).status_code,
    "train": client.post("/api/v1/jobs", data={{"kind": "risk.train",
                                               "file": (io.BytesIO(b"mean_hr_bpm,label\\n70,1\\n"), "t.csv")}}).status_code,
    "predict": client.post("/api/v1/jobs", json={{"kind": "risk.predict", "params": {{"rows": [ROW]}}}}).status_code,
    "calibrate": client.post("/api/v1/jobs", json={{"kind": "camera.calibrate",
                                                    "params": {{"device": "none-here"}}}}).status_code,
    "beats": client.post("/api/v1/jobs", data={{"kind": "signal.beats", "params": json.dumps({{"fs": 100}}),
                                               "file": (io.BytesIO(b"0.5\\n" * 3000), "p.csv")}}).status_code,
    "record": client.post("/api/v1/jobs", json={{"kind": "sensor.record", "params": {{"device": "none-here"}}}}).status_code,
}}
loaded = {{m.split(".")[0] for m in sys.modules if m not in {LIGHT!r}}} & set({WORKER_ONLY!r})
print(json.dumps({{"answers": answers, "loaded": sorted(loaded)}}))
""")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["answers"]["kinds"] == report["answers"]["models"] == 200, report
    answers = report["answers"]
    assert answers["filter"] == answers["predict"] == answers["video"] == answers["beats"] == 201, answers
    assert answers["train"] == answers["calibrate"] == answers["record"] == 400  # a header, a device: refused
    assert report["loaded"] == []
