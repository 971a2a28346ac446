"""Jobs run end to end: HTTP in, a real Celery worker process, the database, the websocket."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import websocket
from support import wait_until

from web.ws import RECHECK_S
from worker import progress
from worker.celery_app import app as celery_app
from worker.settings import get_settings

pytestmark = pytest.mark.usefixtures("worker")


def worker_pid(job: dict) -> int:
    return int(job["worker"].rsplit("/", 1)[1])


def test_job_streams_progress_in_order_to_its_result(jobs, http):
    job = jobs.submit({"duration_s": 0.5, "steps": 5})
    messages = jobs.events(job["id"], after=0)  # every event, even those before the socket opened

    assert messages[0]["type"] == "snapshot" and messages[0]["job"]["id"] == job["id"]
    assert messages[-1]["type"] == "final" and messages[-1]["job"]["status"] == "succeeded"
    events = messages[1:-1]
    seqs = [event["seq"] for event in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    fractions = [event["fraction"] for event in events if event["type"] == "progress"]
    assert fractions == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert [e["status"] for e in events if e["type"] == "status"] == ["running", "succeeded"]

    final = messages[-1]["job"]
    assert final["result"]["peak_hz"] == final["result"]["expected_peak_hz"] == 7.0
    assert final["result"]["compute_threads"] == 1  # VITALQ_COMPUTE_THREADS, as the suite sets it
    # The job ran below its worker's main process (started with this process's priority).
    assert final["result"]["nice"] == min(19, os.getpriority(os.PRIO_PROCESS, 0) + get_settings().pool_nice) > 0
    assert final["attempts"] == 1 and final["progress"]["fraction"] == 1.0
    assert final["progress"]["message"] == "step 5 of 5"
    [artifact] = final["artifacts"]
    download = http.get(f"/api/v1/jobs/{job['id']}/artifacts/{artifact['name']}")
    assert download.status_code == 200
    assert json.loads(download.content) == final["result"]
    assert len(download.content) == artifact["size"]


def test_a_noop_job_is_recorded_and_announced_like_any_other(jobs, http):
    refused = http.post("/api/v1/jobs", json={"kind": "diagnostics.noop", "params": {"steps": 1}})
    assert refused.status_code == 400 and refused.json()["error"]["details"]["fields"] == {
        "steps": "is not a parameter of this job kind"}

    job = jobs.submit(kind="diagnostics.noop")
    messages = jobs.events(job["id"], after=0)
    assert [m["type"] for m in messages] == ["snapshot", "status", "status", "final"]
    assert [m["status"] for m in messages[1:3]] == ["running", "succeeded"]
    final = messages[-1]["job"]
    assert (final["status"], final["result"], final["artifacts"], final["attempts"]) == ("succeeded", {}, [], 1)
    assert final["progress"]["fraction"] == 1.0 and final["run_seconds"] >= 0


def test_a_socket_opened_between_a_jobs_end_and_its_event_still_gets_the_event(jobs, monkeypatch):
    """A job's row is written before its last status event is published: a client that
    connects between the two gets the event, not a final message without it."""
    import threading

    from worker import store
    from worker.models import JobStatus

    job = store.create(kind="diagnostics.noop", params={}, priority=5, queue="nowhere", soft_time_limit_s=10,
                       time_limit_s=20, input_record=None)  # recorded, never queued: no worker takes it
    announce = store._announce

    def announce_later(row, message=None):  # the worker slow between its two writes
        threading.Timer(0.3, announce, (row, message)).start()

    monkeypatch.setattr(store, "_announce", announce_later)
    store.finish(job.id, JobStatus.SUCCEEDED, result={})
    messages = jobs.events(job.id, after=0)
    assert [(m["type"], m.get("status")) for m in messages[:2]] == [("snapshot", None), ("status", "succeeded")]
    assert messages[-1]["type"] == "final" and len(messages) == 3


def test_late_client_gets_snapshot_and_final_and_a_reconnect_resumes(jobs):
    job = jobs.submit({"duration_s": 0.2, "steps": 4})
    jobs.wait_finished(job["id"])
    messages = jobs.events(job["id"])
    assert [m["type"] for m in messages] == ["snapshot", "final"]
    assert messages[0]["job"]["status"] == "succeeded"

    resumed = jobs.events(job["id"], after=2)
    assert [m["seq"] for m in resumed[1:-1]] == [3, 4, 5, 6]  # what came after seq 2
    assert resumed[-1]["type"] == "final"
    # A client that saw the last event and lost the socket before the final message
    # gets it on reconnecting, not after a wait for events that will not come.
    started = time.monotonic()
    assert [m["type"] for m in jobs.events(job["id"], after=6)] == ["snapshot", "final"]
    assert time.monotonic() - started < RECHECK_S / 2


def gauge(http, name: str) -> float:
    """A gauge's value on /metrics."""
    [line] = [line for line in http.get("/metrics").text.splitlines() if line.startswith(f"{name} ")]
    return float(line.split()[1])


def test_sockets_on_one_job_share_one_reader_and_each_gets_every_event(jobs, http):
    wait_until(lambda: gauge(http, "vitalq_websocket_feeds") == 0, 10, "earlier tests' feeds end")
    job = jobs.submit({"duration_s": 4, "steps": 40})
    with ThreadPoolExecutor(4) as pool:
        watching = [pool.submit(jobs.events, job["id"]) for _ in range(4)]
        wait_until(lambda: gauge(http, "vitalq_websockets") == 4, 30, "four sockets open")
        assert gauge(http, "vitalq_websocket_feeds") == 1  # one Redis reader for the four
        streams = [future.result() for future in watching]
    for messages in streams:
        assert messages[-1]["type"] == "final" and messages[-1]["job"]["status"] == "succeeded"
        seqs = [event["seq"] for event in messages[1:-1]]
        first = messages[0]["job"]["progress"]["seq"] + 1  # what the snapshot had not seen
        assert seqs == list(range(first, seqs[-1] + 1))  # every event after it, once, in order
    assert len({messages[-2]["seq"] for messages in streams}) == 1  # all saw the same last event
    # The reader ends with its last socket.
    wait_until(lambda: gauge(http, "vitalq_websocket_feeds") == 0, 30, "the job's feed ends")
    assert gauge(http, "vitalq_websockets") == 0


def test_a_socket_closed_while_its_job_waits_is_let_go(jobs, http, live_server):
    from web.ws import RECHECK_S

    blocker = jobs.submit({"duration_s": 40, "steps": 40})  # the worker runs one job at a time
    jobs.wait_running(blocker["id"])
    waiting = jobs.submit({"duration_s": 0})
    ws = websocket.create_connection(live_server.replace("http", "ws", 1) + f"/ws/jobs/{waiting['id']}",
                                     header={"Authorization": http.headers["Authorization"]}, timeout=10)
    assert json.loads(ws.recv())["job"]["status"] == "queued"
    wait_until(lambda: gauge(http, "vitalq_websockets") == 1, 30, "the socket is watched")
    ws.close()  # long before the job will run: the server notices at its next quiet check
    # Let go at the server's next quiet check, while the job still waits (without that
    # check it would be held until the 40 s blocker and then this job had run).
    wait_until(lambda: gauge(http, "vitalq_websockets") == 0, RECHECK_S + 10, "the socket is let go")
    assert jobs.get(waiting["id"])["status"] == "queued"
    wait_until(lambda: gauge(http, "vitalq_websocket_feeds") == 0, 30, "the job's feed ends")
    for job in (waiting, blocker):
        http.delete(f"/api/v1/jobs/{job['id']}")
    jobs.wait_finished(blocker["id"])


def test_uploaded_file_reaches_the_job_intact(jobs, http):
    content = os.urandom(3 * 1024 * 1024 + 17)
    response = http.post("/api/v1/jobs", data={"kind": "diagnostics.selftest"},
                         files={"file": ("trace.bin", content)})
    assert response.status_code == 201
    job = jobs.wait_finished(response.json()["id"])
    assert job["status"] == "succeeded"
    assert job["result"]["input_sha256_matches"] is True


def test_high_priority_jobs_run_before_low_ones_on_a_busy_worker(jobs):
    blocker = jobs.submit({"duration_s": 1.5, "steps": 3})
    jobs.wait_running(blocker["id"])
    low = [jobs.submit({"duration_s": 0}, priority=1)["id"] for _ in range(3)]
    high = [jobs.submit({"duration_s": 0}, priority=8)["id"] for _ in range(3)]
    finished = [jobs.wait_finished(job_id) for job_id in low + high]
    order = [job["id"] for job in sorted(finished, key=lambda job: job["started_at"])]
    assert set(order[:3]) == set(high), "every high-priority job starts before any low one"
    assert set(order[3:]) == set(low)


def test_cancelled_queued_job_never_starts(jobs, http):
    blocker = jobs.submit({"duration_s": 1.0, "steps": 2})
    jobs.wait_running(blocker["id"])
    queued = jobs.submit({"duration_s": 0})
    response = http.delete(f"/api/v1/jobs/{queued['id']}")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    after = jobs.submit({"duration_s": 0})
    jobs.wait_finished(after["id"])  # the worker has gone past the cancelled job's message
    job = jobs.get(queued["id"])
    assert job["status"] == "cancelled" and job["attempts"] == 0 and job["started_at"] is None


def test_running_job_stops_at_its_next_progress_point(jobs, http):
    job = jobs.submit({"duration_s": 30, "steps": 300})
    jobs.wait_for(job["id"], lambda j: j["progress"]["fraction"] > 0, what="some progress")
    response = http.delete(f"/api/v1/jobs/{job['id']}")
    assert response.status_code == 202 and response.json()["cancel_requested"] is True
    job = jobs.wait_finished(job["id"])
    assert job["status"] == "cancelled" and job["error"]["code"] == "CANCELLED"
    # Stopped by the job itself at a progress point, not killed after the grace period.
    assert "force" not in job["error"]["message"] and job["progress"]["fraction"] < 1
    assert job["artifacts"] == []


def test_job_that_ignores_cancel_is_killed_after_the_grace_period(jobs, http, settings):
    job = jobs.submit({"blocking_s": 60})
    jobs.wait_running(job["id"])  # blocking from its start: no progress point will see the cancel
    assert http.delete(f"/api/v1/jobs/{job['id']}").status_code == 202
    job = jobs.wait_finished(job["id"], timeout_s=settings.cancel_grace_s + 30)  # long before its 60 s
    assert job["status"] == "cancelled" and "force" in job["error"]["message"]
    after = jobs.submit({"duration_s": 0})  # the worker serves on
    assert jobs.wait_finished(after["id"], timeout_s=30)["status"] == "succeeded"


def test_soft_time_limit_fails_with_timeout_and_keeps_progress(jobs):
    job = jobs.submit({"duration_s": 10, "steps": 20, "soft_time_limit_s": 1.5})
    job = jobs.wait_finished(job["id"])
    assert job["status"] == "failed" and job["error"]["code"] == "TIMEOUT"
    assert 0.05 <= job["progress"]["fraction"] < 0.5
    assert job["artifacts"] == []


def test_hard_time_limit_stops_a_job_that_ignores_the_soft_one(jobs):
    job = jobs.submit({"blocking_s": 60, "soft_time_limit_s": 1, "hard_time_limit_s": 3, "ignore_soft_limit": True})
    job = jobs.wait_finished(job["id"], timeout_s=50)
    assert job["status"] == "failed" and job["error"]["code"] == "TIMEOUT"
    assert "hard time limit" in job["error"]["message"]
    assert 2.5 < job["run_seconds"] < 50  # stopped at its hard limit, long before its 60 s of work
    after = jobs.submit({"duration_s": 0})  # a new pool process took over
    assert jobs.wait_finished(after["id"])["status"] == "succeeded"


def test_a_job_beyond_the_memory_ceiling_fails_and_its_process_serves_on(jobs, settings):
    """A job's memory has a ceiling (``VITALQ_MAX_JOB_MEMORY_BYTES``): past it the job ends
    MEMORY_LIMIT, never retried, and the same pool process runs the next job."""
    over = jobs.wait_finished(jobs.submit({"allocate_bytes": settings.max_job_memory_bytes + 512 * 1024**2})["id"])
    assert over["status"] == "failed" and over["error"]["code"] == "MEMORY_LIMIT", over["error"]
    assert over["error"]["details"] == {"limit_bytes": settings.max_job_memory_bytes} and over["attempts"] == 1
    under = jobs.wait_finished(jobs.submit({"allocate_bytes": 256 * 1024**2})["id"])
    assert under["status"] == "succeeded" and under["worker"] == over["worker"]  # the same host and process


def test_transient_faults_are_retried_with_backoff(jobs):
    job = jobs.submit({"duration_s": 0, "transient_failures": 2})
    seen = jobs.events(job["id"], after=0)
    statuses = [m["status"] for m in seen[1:-1] if m["type"] == "status"]
    assert statuses == ["running", "retrying", "running", "retrying", "running", "succeeded"]
    job = seen[-1]["job"]
    assert job["status"] == "succeeded" and job["attempts"] == 3 and job["error"] is None


def test_transient_faults_fail_the_job_once_retries_are_spent(jobs, settings):
    job = jobs.submit({"duration_s": 0, "transient_failures": settings.max_retries + 2})
    job = jobs.wait_finished(job["id"])
    assert job["status"] == "failed" and job["error"]["code"] == "TRANSIENT"
    assert job["attempts"] == settings.max_retries + 1
    assert job["error"]["details"]["retries"] == settings.max_retries


def test_failed_and_cancelled_jobs_are_failed_tasks_in_celerys_events(jobs, http):
    """What Flower counts: a job that failed or was cancelled is a failed task, and one
    that succeeded a succeeded task; each job still finishes once."""
    events: queue.Queue = queue.Queue()
    with celery_app.connection_for_read() as connection:
        receiver = celery_app.events.Receiver(connection, handlers={"*": events.put})
        listener = threading.Thread(target=receiver.capture, kwargs={"limit": None, "timeout": None, "wakeup": False},
                                    daemon=True)
        listener.start()
        try:
            events.get(timeout=10)  # a worker heartbeat: the listener hears what is sent from now on
            failed = jobs.submit({"duration_s": 0, "transient_failures": 10})
            cancelled = jobs.submit({"duration_s": 30, "steps": 300})
            jobs.wait_for(cancelled["id"], lambda j: j["progress"]["fraction"] > 0, what="some progress")
            assert http.delete(f"/api/v1/jobs/{cancelled['id']}").status_code == 202
            succeeded = jobs.submit({"duration_s": 0})
            ends = {job["id"]: jobs.wait_finished(job["id"], timeout_s=60)["status"]
                    for job in (failed, cancelled, succeeded)}
            assert ends == {failed["id"]: "failed", cancelled["id"]: "cancelled", succeeded["id"]: "succeeded"}
            seen: dict[str, list[dict]] = {}

            def task_ends_seen() -> bool:
                while not events.empty():
                    event = events.get()
                    if event["type"] in ("task-succeeded", "task-failed"):
                        seen.setdefault(event["uuid"], []).append(event)
                return all(job_id in seen for job_id in ends)

            wait_until(task_ends_seen, 15, "the three jobs' task events")
        finally:
            receiver.should_stop = True
    assert [event["type"] for event in seen[succeeded["id"]]] == ["task-succeeded"]
    for job_id, code in ((failed["id"], "TRANSIENT"), (cancelled["id"], "CANCELLED")):
        assert [event["type"] for event in seen[job_id]] == ["task-failed"], seen[job_id]
        assert code in seen[job_id][0]["exception"]
    statuses = [event["status"] for _, event in progress.read(failed["id"]) if event["type"] == "status"]
    assert statuses.count("failed") == 1, statuses


def test_a_deleted_job_leaves_nothing_and_its_upload_goes_with_the_last_job_using_it(jobs, http, settings):
    from pathlib import Path

    from worker.broker import get_redis

    content = os.urandom(64 * 1024)
    ids = [http.post("/api/v1/jobs", data={"kind": "diagnostics.selftest"},
                     files={"file": ("trace.bin", content)}).json()["id"] for _ in range(2)]
    assert [jobs.wait_finished(job_id)["status"] for job_id in ids] == ["succeeded", "succeeded"]
    [upload] = Path(settings.uploads_dir).glob(jobs.get(ids[0])["input"]["sha256"] + "*")
    old = time.time() - 2 * 86400  # past the grace kept for uploads a submission may be reusing
    os.utime(upload, (old, old))

    def left_behind(job_id: str) -> dict:
        return {"artifacts": (settings.jobs_dir / job_id).exists(),
                "redis keys": get_redis().exists(*progress.keys(job_id))}

    assert left_behind(ids[0]) == {"artifacts": True, "redis keys": 2}  # events and their sequence
    assert http.delete(f"/api/v1/jobs/{ids[0]}").status_code == 204
    assert http.get(f"/api/v1/jobs/{ids[0]}").status_code == 404
    assert http.get(f"/api/v1/jobs/{ids[0]}/artifacts/selftest.json").status_code == 404
    assert left_behind(ids[0]) == {"artifacts": False, "redis keys": 0}
    assert upload.exists()  # the other job's input still
    assert http.post(f"/api/v1/jobs/{ids[1]}/retry").status_code == 201  # and it can run again
    assert http.delete(f"/api/v1/jobs/{ids[1]}").status_code == 204
    assert upload.exists()  # the retry refers to it now
    retried = http.get("/api/v1/jobs").json()["jobs"][0]
    jobs.wait_finished(retried["id"])
    assert http.delete(f"/api/v1/jobs/{retried['id']}").status_code == 204
    assert not upload.exists()


def test_beat_deletes_jobs_past_their_retention(jobs, settings):
    import sys

    from sqlalchemy import update
    from test_calibration_job import Subprocess

    from worker.db import session_scope
    from worker.models import Job

    old, recent = (jobs.submit({"duration_s": 0})["id"] for _ in range(2))
    for job_id in (old, recent):
        jobs.wait_finished(job_id)
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == old).values(finished_at=Job.finished_at - timedelta(days=3)))
    beat = Subprocess("beat", [sys.executable, "-m", "celery", "-A", "worker.celery_app", "beat"],
                      env={"VITALQ_RETENTION_DAYS": "2", "VITALQ_RETENTION_INTERVAL_S": "1"})
    try:
        wait_until(lambda: jobs.http.get(f"/api/v1/jobs/{old}").status_code == 404, 60,
                   lambda: f"the old job deleted: {beat.log_path.read_text()[-3000:]}")
    finally:
        beat.stop()
    assert jobs.get(recent)["status"] == "succeeded"
    assert not (settings.jobs_dir / old).exists() and (settings.jobs_dir / recent).exists()


def test_job_whose_worker_process_is_killed_is_redelivered_and_finishes_once(jobs):
    job = jobs.submit({"duration_s": 2, "steps": 20})
    job = jobs.wait_for(job["id"], lambda j: j["progress"]["fraction"] >= 0.1, what="progress")
    os.kill(worker_pid(job), signal.SIGKILL)
    messages = jobs.events(job["id"], after=0)
    job = messages[-1]["job"]
    assert job["status"] == "succeeded"
    assert job["attempts"] == 2 and job["redeliveries"] == 1
    assert [m["status"] for m in messages if m["type"] == "status"].count("succeeded") == 1


def test_job_whose_worker_keeps_dying_fails_with_worker_lost(jobs, settings):
    job = jobs.submit({"duration_s": 20, "steps": 20})
    for attempt in range(1, settings.max_redeliveries + 2):
        job = jobs.wait_for(job["id"], lambda j, a=attempt: j["status"] == "running" and j["attempts"] == a,
                            what=f"attempt {attempt}")
        os.kill(worker_pid(job), signal.SIGKILL)
    job = jobs.wait_finished(job["id"])
    assert job["status"] == "failed" and job["error"]["code"] == "WORKER_LOST"
    assert job["attempts"] == settings.max_redeliveries + 1
    assert job["redeliveries"] == settings.max_redeliveries


def test_redelivered_message_of_a_finished_job_does_nothing(jobs):
    job = jobs.wait_finished(jobs.submit({"duration_s": 0})["id"])
    seq_before = max(m.get("seq", 0) for m in jobs.events(job["id"], after=0))
    celery_app.send_task("diagnostics.selftest", args=[job["id"]], task_id=job["id"], queue="cpu")
    jobs.wait_finished(jobs.submit({"duration_s": 0})["id"])  # the worker has taken the duplicate
    again = jobs.get(job["id"])
    assert again["attempts"] == 1 and again["finished_at"] == job["finished_at"]
    assert max(event["seq"] for _, event in progress.read(job["id"])) == seq_before


def test_health_checks_and_metrics_see_the_worker_and_jobs(jobs, http, monkeypatch):
    monkeypatch.setattr("web.metrics.DISK_READING_S", 0)  # read now, not a reading of an earlier test's
    ready = http.get("/health/ready")
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert all(check["ok"] for check in checks.values())
    assert any(name.startswith("test-") for name in checks["workers"]["detail"]["cpu"])
    assert checks["disk"]["detail"]["free_bytes"] > 0
    # Once the workers are known, a check waits for their answers, not its 1 s broadcast timeout.
    started = time.perf_counter()
    assert http.get("/health/ready").status_code == 200
    assert time.perf_counter() - started < 0.9

    deep = http.get("/health/deep")
    assert deep.status_code == 200 and deep.json()["job_status"] == "succeeded"
    assert 0 < deep.json()["latency_s"] < 10

    metrics = http.get("/metrics").text
    assert 'vitalq_jobs{kind="diagnostics.selftest",status="succeeded"} 1.0' in metrics
    assert 'vitalq_queue_depth{queue="cpu"} 0.0' in metrics
    assert 'vitalq_job_run_seconds_count{kind="diagnostics.selftest"} 1.0' in metrics
    assert 'vitalq_http_request_seconds_count{endpoint="health.deep",method="GET",status="200"}' in metrics
    assert re.search(r'^vitalq_data_bytes\{area="jobs"\} [1-9]', metrics, re.M)  # the selftest's artifact
    assert re.search(r"^vitalq_data_disk_free_bytes [1-9]", metrics, re.M)


def test_not_ready_when_the_data_disk_is_nearly_full(http, configure):
    configure(min_free_disk_bytes=2**62)
    ready = http.get("/health/ready")
    assert ready.status_code == 503 and ready.json()["status"] == "not_ready"
    disk = ready.json()["checks"]["disk"]
    assert disk["ok"] is False and "VITALQ_MIN_FREE_DISK_BYTES" in disk["detail"]


def test_the_deep_health_check_runs_one_selftest_however_often_it_is_called(jobs, http):
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: http.get("/health/deep"), range(24)))
    assert {answer.status_code for answer in answers} == {200}
    assert len({answer.json()["job_id"] for answer in answers}) == 1  # one job served them all
    assert http.get("/api/v1/jobs", params={"kind": "diagnostics.selftest"}).json()["total"] == 1
    assert all(answer.json()["checked_s_ago"] >= 0 for answer in answers)


def test_a_job_streams_over_the_production_server(gunicorn_server, tokens, clean):
    """The same stream through gunicorn's gevent worker, as ``vitalq serve web`` runs it
    (one reader per job in a greenlet, psycopg2 made cooperative)."""
    import httpx

    from support import Jobs

    with httpx.Client(base_url=gunicorn_server, timeout=30, headers={"Authorization": f"Bearer {tokens['admin']}"}) \
            as http:
        on_gunicorn = Jobs(http)
        job = on_gunicorn.submit({"duration_s": 1, "steps": 10})
        with ThreadPoolExecutor(3) as pool:
            streams = list(pool.map(lambda _: on_gunicorn.events(job["id"], after=0), range(3)))
    for messages in streams:
        assert messages[-1]["type"] == "final" and messages[-1]["job"]["status"] == "succeeded"
        fractions = [m["fraction"] for m in messages if m["type"] == "progress"]
        assert fractions == [step / 10 for step in range(1, 11)]
        seqs = [m["seq"] for m in messages[1:-1]]
        assert seqs == sorted(set(seqs))  # each event once, in order


def test_a_pool_shares_the_cores_out_among_its_processes(configure):
    from worker.celery_app import compute_threads

    configure(compute_threads=0)  # the default: the machine's cores, shared out
    cores = os.cpu_count()
    assert compute_threads(1) == cores and compute_threads(cores) == 1 and compute_threads(4 * cores) == 1
    configure(compute_threads=3)
    assert compute_threads(1) == compute_threads(64) == 3
