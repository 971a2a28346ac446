"""Nothing lost: the reconciler makes the broker agree with the job table, and a full
queue pushes back instead of piling up."""

from __future__ import annotations

import io
import os
import signal
import subprocess

from support import WorkerProcess, wait_until

from worker import progress


def queued_messages(queue: str) -> int:
    from worker.celery_app import queue_depths

    return queue_depths((queue,))[queue]


def test_a_queued_job_whose_message_was_lost_is_queued_again(http, jobs, settings):
    from worker.broker import get_redis
    from worker.reconcile import reconcile

    # A device nobody serves: its job waits in hw.ghost, where this test can see it.
    assert http.post("/api/v1/devices", json={"id": "ghost", "driver": "simulated"}).status_code == 201
    job = http.post("/api/v1/devices/ghost/calibrate", json={}).json()
    assert queued_messages("hw.ghost") == 1
    assert not any(reconcile(min_age_s=0).values())  # nothing to do
    assert queued_messages("hw.ghost") == 1

    # Redis restarted without persistence: the message is gone, the job row says queued.
    get_redis().delete("hw.ghost", *(f"hw.ghost:{step}" for step in range(1, 10)))
    assert queued_messages("hw.ghost") == 0
    assert reconcile(min_age_s=3600)["lost_message"] == []  # too young to judge
    assert reconcile(min_age_s=0)["lost_message"] == [job["id"]]
    assert queued_messages("hw.ghost") == 1
    assert reconcile(min_age_s=0)["lost_message"] == []  # and not twice
    assert jobs.get(job["id"])["status"] == "queued"


def test_a_job_whose_whole_worker_died_is_run_again_and_finishes_once(jobs):
    """A worker takes the job, then dies with its pool (SIGKILL); the reconciler hands the
    job to another worker at once instead of after the visibility timeout."""
    from worker.reconcile import active_tasks, reconcile

    doomed = WorkerProcess(concurrency=1)
    job = jobs.submit({"duration_s": 4, "steps": 40})
    running = jobs.wait_running(job["id"])
    assert running["worker"].startswith(doomed.hostname)
    subprocess.run(["pkill", "-KILL", "-P", str(doomed.process.pid)], check=False)
    os.kill(doomed.process.pid, signal.SIGKILL)
    doomed.process.wait()
    doomed.log.close()
    wait_until(lambda: doomed.hostname not in active_tasks(timeout_s=1.0)[0], 30,
               "the dead worker no longer answers", interval_s=0)
    assert jobs.get(job["id"])["status"] == "running"  # the record still says so

    rescuer = WorkerProcess(concurrency=1)
    try:
        assert reconcile(min_age_s=0)["dead_worker"] == [job["id"]]
        done = jobs.wait_finished(job["id"], timeout_s=60)
        assert done["status"] == "succeeded"
        assert done["redeliveries"] == 1 and done["attempts"] == 2
        assert done["worker"].startswith(rescuer.hostname)
        # Finished once: the job's stream holds one final status, and the row kept its first finish.
        statuses = [event["status"] for _, event in progress.read(job["id"]) if event["type"] == "status"]
        assert statuses.count("succeeded") == 1, statuses
        assert jobs.get(job["id"])["finished_at"] == done["finished_at"]
    finally:
        rescuer.stop()


def test_a_full_queue_answers_503_with_retry_after(http, configure):
    configure(max_queue_depth=2)
    assert http.post("/api/v1/devices", json={"id": "ghost", "driver": "simulated"}).status_code == 201
    for _ in range(2):
        assert http.post("/api/v1/devices/ghost/calibrate", json={}).status_code == 201
    refused = http.post("/api/v1/devices/ghost/calibrate", json={})
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "30"
    assert refused.json()["error"]["code"] == "QUEUE_FULL"
    assert refused.json()["error"]["details"] == {"queue": "hw.ghost", "depth": 2, "limit": 2}
    assert http.get("/api/v1/jobs", params={"kind": "camera.calibrate"}).json()["total"] == 2  # nothing recorded
    # Another queue is not held back by this one.
    assert http.post("/api/v1/jobs", json={"kind": "diagnostics.selftest"}).status_code == 201



def test_a_submission_while_the_broker_is_down_gets_503_and_leaves_nothing(client, settings, configure):
    configure(redis_url="redis://127.0.0.1:1/0")  # nothing listens there
    def stored_uploads() -> set:
        return set(settings.uploads_dir.glob("*")) if settings.uploads_dir.exists() else set()

    before = stored_uploads()
    response = client.post("/api/v1/jobs", data={"kind": "diagnostics.selftest", "params": "{}",
                                                 "file": (io.BytesIO(b"payload"), "input.bin")})
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert response.json["error"]["code"] == "UNAVAILABLE"
    from worker import store

    assert store.find()[1] == 0  # no job recorded without its message
    assert stored_uploads() == before  # nor its upload


def test_reads_go_on_while_the_broker_is_down_and_submissions_get_503(client, configure):
    job = client.post("/api/v1/jobs", json={"kind": "diagnostics.selftest"}).json
    configure(redis_url="redis://127.0.0.1:1/0")  # nothing listens there
    assert client.get(f"/api/v1/jobs/{job['id']}").status_code == 200  # the record is in the database
    assert client.get("/api/v1/jobs").json["total"] == 1
    refused = client.post("/api/v1/jobs", json={"kind": "diagnostics.selftest"})
    assert refused.status_code == 503 and refused.json["error"]["code"] == "UNAVAILABLE"
    assert client.get("/health/ready").status_code == 503 and client.get("/health/live").status_code == 200


def test_a_cancel_outlives_the_web_process_that_took_it(worker, jobs, configure):
    """The force-kill after a cancel's grace period was a timer in the web process: a
    restart forgot it, and a job that ignored its cancel ran on. The reconciler finds
    the request on the job's row and stops the job."""
    from worker import store
    from worker.reconcile import reconcile

    configure(cancel_grace_s=1.0)
    job = jobs.submit({"blocking_s": 60})  # no progress point: it cannot see a cancel
    jobs.wait_running(job["id"])
    store.request_cancel(job["id"])  # as the API does; the process that would have killed it is gone
    assert reconcile(min_age_s=3600)["cancel_forced"] == []  # within its grace period
    wait_until(lambda: reconcile(min_age_s=3600)["cancel_forced"] == [job["id"]], 10, "the cancel enforced")
    stopped = jobs.wait_finished(job["id"], timeout_s=30)
    assert stopped["status"] == "cancelled" and "by force" in stopped["error"]["message"]
    assert jobs.wait_finished(jobs.submit({"duration_s": 0})["id"])["status"] == "succeeded"  # the worker serves on
