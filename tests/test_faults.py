"""Faults of the services around vitalq, each under a real web server and worker of its
own: Redis restarted mid-run (with persistence on), and PostgreSQL stopped and started
again. No job is lost. And a job that fills more disk than one job may."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from support import QUICK_START, bearer, stop_process, wait_until

from vitalq import processes
from worker.embedded_redis import EmbeddedRedis, free_port


def start_stack(env: dict[str, str], log_path: Path) -> tuple[str, list[subprocess.Popen]]:
    """A web server and a one-process worker on ``env``'s services; returns their URL."""
    port = free_port()
    log = open(log_path, "ab")
    web = subprocess.Popen(processes.web("127.0.0.1", port).argv, env=env, stdout=log,
                           stderr=subprocess.STDOUT)
    worker = subprocess.Popen(processes.cpu_worker(1, f"faults-{port}@localhost").argv + QUICK_START, env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    log.close()
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: _answers(f"{base}/health/live"), 60, "the web server answers")
    return base, [web, worker]


@pytest.fixture
def own_stack(database, settings, tmp_path, clean):
    """A Redis with an append-only file, and a web server and a worker on it."""
    server = EmbeddedRedis(tmp_path / "redis", persist=True)
    server.start()
    env = {**os.environ, "REDIS_URL": server.url, "VITALQ_LOG_FORMAT": "text"}
    base, stack = start_stack(env, tmp_path / "stack.log")
    yield server, base, env
    for process in stack:
        stop_process(process)
    server.stop()


@pytest.fixture
def stack_with(database, settings, tmp_path, clean):
    """``stack_with(**settings)``: a web server and a worker on a Redis of their own, with
    those settings in their environment; returns the server's URL."""
    stacks: list = []

    def start(**tuned: str) -> str:
        server = EmbeddedRedis(tmp_path / f"redis-{len(stacks)}", persist=False)
        server.start()
        env = {**os.environ, "REDIS_URL": server.url, "VITALQ_LOG_FORMAT": "text", **tuned}
        base, processes_ = start_stack(env, tmp_path / "stack.log")
        stacks.append((server, processes_))
        return base

    yield start
    for server, processes_ in stacks:
        for process in processes_:
            stop_process(process)
        server.stop()


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
        time.sleep(1.0)  # an outage, not a blip: the jobs running meet it too
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


def _postgres_bin() -> Path | None:
    """The folder of this machine's PostgreSQL server programs, if it has them."""
    found = shutil.which("pg_config")
    if found:
        folder = Path(subprocess.run([found, "--bindir"], capture_output=True, text=True).stdout.strip())
        if (folder / "pg_ctl").exists():
            return folder
    installed = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))  # Debian's layout, newest last
    pg_ctl = installed[-1] if installed else shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


class PrivatePostgres:
    """A PostgreSQL server of the test's own (a cluster in a temporary folder, this
    machine's server programs), so that stopping it disturbs nothing else. PostgreSQL
    refuses to run as root; as root it runs as the ``postgres`` user."""

    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="vitalq-pg-"))
        self.folder.chmod(0o755)
        self.data = self.folder / "data"
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.folder, "postgres")
        self._run("initdb", "--pgdata", str(self.data), "--auth", "trust", "--username", "postgres", "--no-sync")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(self.as_user + [str(self.bin_dir / program), *args], check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        self._run("pg_ctl", "--pgdata", str(self.data), "--log", str(self.folder / "server.log"), "--wait", "start",
                  "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off")

    def stop(self) -> None:
        """A fast shutdown: every open connection is cut, as in a restart."""
        self._run("pg_ctl", "--pgdata", str(self.data), "--mode", "fast", "--wait", "stop")

    def remove(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def postgres_stack(tmp_path):
    """A PostgreSQL and a Redis of the test's own, migrated, with a user; and a web
    server and a worker on them."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server programs on this machine (pg_ctl)")
    postgres = PrivatePostgres(bin_dir)
    postgres.start()
    redis_server = EmbeddedRedis(tmp_path / "redis", persist=False)
    redis_server.start()
    env = {**os.environ, "DATABASE_URL": postgres.url, "REDIS_URL": redis_server.url, "VITALQ_LOG_FORMAT": "text",
           "VITALQ_DATA_DIR": str(tmp_path / "data")}
    vitalq = [sys.executable, "-m", "vitalq.cli"]
    subprocess.run(vitalq + ["db", "upgrade"], env=env, check=True, capture_output=True, timeout=120)
    token = subprocess.run(vitalq + ["users", "create", "carol"], env=env, check=True, capture_output=True,
                           text=True, timeout=60).stdout.strip()
    base, stack = start_stack(env, tmp_path / "stack.log")
    yield postgres, base, token, env, stack
    for process in stack:
        stop_process(process)
    redis_server.stop()
    postgres.remove()


def test_postgres_restarted_api_answers_503_then_recovers_and_no_job_is_lost(postgres_stack):
    postgres, base, token, _env, _stack = postgres_stack
    with httpx.Client(base_url=base, timeout=30, headers=bearer(token)) as http:
        ids = [http.post("/api/v1/jobs", json={"kind": "diagnostics.selftest",
                                               "params": {"duration_s": 0.6, "steps": 6}}).json()["id"]
               for _ in range(6)]
        wait_until(lambda: http.get(f"/api/v1/jobs/{ids[0]}").json()["finished_at"], 60, "the first job finishes")

        postgres.stop()  # with jobs queued and one running
        for response in (http.get(f"/api/v1/jobs/{ids[-1]}"), http.get("/api/v1/jobs"),
                         http.post("/api/v1/jobs", json={"kind": "diagnostics.selftest"})):
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "UNAVAILABLE" and int(response.headers["Retry-After"]) > 0
        ready = http.get("/health/ready")
        assert ready.status_code == 503 and not ready.json()["checks"]["database"]["ok"]
        assert http.get("/health/live").status_code == 200
        time.sleep(3)  # the worker meets the outage too: the running job cannot record its end
        postgres.start()

        wait_until(lambda: http.get("/health/ready").json()["checks"]["database"]["ok"], 30, "the database is back")
        wait_until(lambda: all(http.get(f"/api/v1/jobs/{i}").json()["finished_at"] for i in ids), 120,
                   "every job finishes")
        jobs = [http.get(f"/api/v1/jobs/{i}").json() for i in ids]
        listed = {job["id"] for job in http.get("/api/v1/jobs", params={"limit": 100}).json()["jobs"]}
    assert [job["status"] for job in jobs] == ["succeeded"] * len(ids), [(j["status"], j["error"]) for j in jobs]
    assert all(job["result"]["peak_hz"] == job["result"]["expected_peak_hz"] for job in jobs)
    assert [(job["attempts"], job["redeliveries"]) for job in jobs] == [(1, 0)] * len(ids)  # each ran once
    assert listed == set(ids)  # nothing recorded twice, nothing half-recorded from the refused submission


def test_a_job_that_cannot_start_while_the_database_is_away_goes_back_on_its_queue(postgres_stack, tmp_path):
    postgres, base, token, env, stack = postgres_stack
    stop_process(stack.pop())  # the stack's worker: the job waits on its queue
    with httpx.Client(base_url=base, timeout=30, headers=bearer(token)) as http:
        job = http.post("/api/v1/jobs", json={"kind": "diagnostics.selftest"}).json()
        postgres.stop()
        log_path = tmp_path / "impatient-worker.log"
        with open(log_path, "wb") as log:  # a worker that waits 1 s for the database to record a start
            stack.append(subprocess.Popen(processes.cpu_worker(1, "impatient@localhost").argv + QUICK_START,
                                          env={**env, "VITALQ_DATABASE_WAIT_S": "1"}, stdout=log,
                                          stderr=subprocess.STDOUT))
        wait_until(lambda: log_path.read_text().count("the job goes back on its queue") >= 2, 90,
                   lambda: f"the job put back, twice: {log_path.read_text()[-3000:]}")
        postgres.start()
        def finished():
            answer = http.get(f"/api/v1/jobs/{job['id']}")  # 503 until the web process reconnects
            return answer.json() if answer.status_code == 200 and answer.json()["finished_at"] else None

        done = wait_until(finished, 90, "the job finishes")
    assert done["status"] == "succeeded" and (done["attempts"], done["redeliveries"]) == (1, 0), done


def test_a_job_that_fills_more_than_its_disk_share_fails_and_leaves_nothing(stack_with, tokens, settings):
    """One job could fill the disk every other job writes to; now each has a ceiling
    (``VITALQ_MAX_JOB_DISK_BYTES``), checked at its progress points."""
    limit = 48 * 1024**2
    base = stack_with(VITALQ_MAX_JOB_DISK_BYTES=str(limit))
    with httpx.Client(base_url=base, timeout=30, headers=bearer(tokens["admin"])) as http:
        over, under = (http.post("/api/v1/jobs", json={"kind": "diagnostics.selftest",
                                                       "params": {"write_bytes": size, "duration_s": 0}}).json()["id"]
                       for size in (2 * limit, limit // 3))

        def finished(job_id: str) -> dict | None:
            job = http.get(f"/api/v1/jobs/{job_id}").json()
            return job if job["finished_at"] else None

        over, under = (wait_until(lambda: finished(job_id), 60, f"job {job_id} finishes") for job_id in (over, under))
    assert over["status"] == "failed" and over["error"]["code"] == "DISK_LIMIT", over["error"]
    assert over["error"]["details"] == {"limit_bytes": limit} and over["attempts"] == 1
    assert over["artifacts"] == [] and not (settings.jobs_dir / over["id"] / "filler.bin").exists()
    assert under["status"] == "succeeded"
    assert {a["name"]: a["size"] for a in under["artifacts"]}["filler.bin"] == limit // 3
