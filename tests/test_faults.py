"""Faults of the services around vitalq: Redis restarted mid-run (with persistence on)
under a real web server and worker of its own; no queued job is lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest
from conftest import bearer, stop_process

from vitalq import processes
from worker.embedded_redis import EmbeddedRedis, free_port


def wait_until(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"never: {what}")


@pytest.fixture
def own_stack(database, settings, tmp_path, clean):
    """A Redis with an append-only file, and a web server and a worker on it."""
    server = EmbeddedRedis(tmp_path / "redis", persist=True)
    server.start()
    env = {**os.environ, "REDIS_URL": server.url, "VITALQ_LOG_FORMAT": "text"}
    port = free_port()
    log = open(tmp_path / "stack.log", "wb")
    web = subprocess.Popen(processes.web("127.0.0.1", port, threads=16).argv, env=env, stdout=log,
                           stderr=subprocess.STDOUT)
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "--queues", "cpu",
                               "--concurrency", "1", "--hostname", f"faults-{port}@localhost", "--loglevel", "INFO",
                               "--without-mingle", "--without-gossip"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: _answers(f"{base}/health/live"), 60, "the web server answers")
    yield server, base, env
    for process in (web, worker):
        stop_process(process)
    server.stop()
    log.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_redis_restarted_mid_run_loses_no_queued_job(own_stack, tokens):
    server, base, env = own_stack
    with httpx.Client(base_url=base, timeout=30, headers=bearer(tokens["alice"])) as http:
        ids = [http.post("/api/v1/jobs", json={"kind": "diagnostics.selftest",
                                               "params": {"duration_s": 0.5, "steps": 5}}).json()["id"]
               for _ in range(12)]

        def finished() -> list[dict]:
            return [job for job in (http.get(f"/api/v1/jobs/{i}").json() for i in ids) if job["finished_at"]]

        wait_until(lambda: len(finished()) >= 2, 60, "two jobs finish")
        server.stop()  # the broker goes away with ten jobs still queued or running
        down = http.post("/api/v1/jobs", json={"kind": "diagnostics.selftest"})
        assert down.status_code == 503 and down.headers["Retry-After"]  # refused, not half-recorded
        time.sleep(1.0)
        server.start()  # and comes back, its append-only file replayed

        # Every queued job survives and runs. The one cut off mid-run (its worker drops a
        # late-acknowledged task when the broker goes) waits for the reconciler, which
        # beat runs every minute in production; here it is run once the queue is empty.
        def drained() -> bool:  # jobs run in order: once the last has finished, nothing waits
            states = [http.get(f"/api/v1/jobs/{i}").json()["status"] for i in ids]
            return states[-1] == "succeeded" and not {"queued", "retrying"} & set(states)

        wait_until(drained, 90, "the queued jobs run")
        stuck = [i for i in ids if http.get(f"/api/v1/jobs/{i}").json()["status"] == "running"]
        assert len(stuck) <= 1
        report = subprocess.run([sys.executable, "-c", "import json; from worker.reconcile import reconcile; "
                                 "print(json.dumps(reconcile(min_age_s=1)))"],
                                env=env, check=True, timeout=60, capture_output=True, text=True)
        assert json.loads(report.stdout.strip().splitlines()[-1])["dropped_by_worker"] == stuck
        wait_until(lambda: len(finished()) == len(ids), 60, "every job finishes")
        jobs = [http.get(f"/api/v1/jobs/{i}").json() for i in ids]
    assert [job["status"] for job in jobs] == ["succeeded"] * len(ids), [(j["status"], j["error"]) for j in jobs]
    assert all(job["redeliveries"] == (1 if job["id"] in stuck else 0) for job in jobs)
