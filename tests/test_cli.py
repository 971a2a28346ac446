"""The command line: ``vitalq up`` on embedded defaults, and ``vitalq submit/jobs/cancel``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import redis
from support import bearer, wait_until

from vitalq.client import Client
from worker.embedded_redis import free_port

VITALQ = [sys.executable, "-m", "vitalq.cli"]


@pytest.fixture
def run_cli(tokens):
    def run(*args: str, url: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(VITALQ + list(args), env={**os.environ, "VITALQ_URL": url, "VITALQ_TOKEN": tokens["alice"]},
                              capture_output=True, text=True, timeout=timeout)
    return run


@pytest.mark.usefixtures("worker")
def test_submit_wait_list_and_cancel_from_the_command_line(live_server, clean, run_cli, tmp_path):
    done = run_cli("submit", "diagnostics.selftest", "-p", "duration_s=0.3", "-p", "steps=3",
                   "--priority", "7", "--wait", url=live_server)
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["status"] == "succeeded" and job["priority"] == 7 and job["params"]["steps"] == 3
    assert "100.0%" in done.stderr  # the progress bar, fed by the websocket
    assert "  step 3 of 3\n" in done.stderr  # each message whole, on a line of its own

    # An upload says how far it has got (1 GB went 25 s without a word).
    upload = tmp_path / "input.bin"
    upload.write_bytes(os.urandom(3 * 1024**2))
    sent = run_cli("submit", "diagnostics.selftest", str(upload), "-p", "duration_s=0", "--wait", url=live_server)
    assert sent.returncode == 0 and json.loads(sent.stdout)["result"]["input_sha256_matches"] is True, sent.stderr
    assert "uploading input.bin: 100.0% (3.1 of 3.1 MB)" in sent.stderr, sent.stderr

    listed = run_cli("jobs", "--status", "succeeded", url=live_server)
    assert listed.returncode == 0 and job["id"] in listed.stdout

    queued = run_cli("submit", "diagnostics.selftest", "-p", "duration_s=20", url=live_server)
    assert queued.returncode == 0, queued.stderr
    job_id = queued.stdout.strip()
    cancelled = run_cli("cancel", job_id, url=live_server)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.strip() in (f"job {job_id}: cancelled", f"job {job_id}: asked to stop")
    # A running job stops at its next progress point (every 4 s here).
    wait_until(lambda: job_id in run_cli("jobs", "--status", "cancelled", url=live_server).stdout, 30,
               "the job listed as cancelled")
    again = run_cli("cancel", job_id, url=live_server)  # a finished job cannot be cancelled twice
    assert again.returncode == 1 and "JOB_FINISHED" in again.stderr
    deleted = run_cli("delete", job_id, url=live_server)
    assert deleted.returncode == 0 and deleted.stdout.strip() == f"job {job_id}: deleted", deleted.stderr
    assert job_id not in run_cli("jobs", url=live_server).stdout

    # A live job is cancelled first, then deleted (this was refused: "cancel it first").
    running = run_cli("submit", "diagnostics.selftest", "-p", "duration_s=20", "-p", "steps=20",
                      url=live_server).stdout.strip()
    wait_until(lambda: running in run_cli("jobs", "--status", "running", url=live_server).stdout, 30, "running")
    deleted = run_cli("delete", running, url=live_server)
    assert deleted.returncode == 0 and deleted.stdout.strip() == f"job {running}: deleted", deleted.stderr
    assert running not in run_cli("jobs", url=live_server).stdout


def test_command_line_reports_bad_params_with_the_api_error(live_server, clean, run_cli):
    wrong_type = run_cli("submit", "diagnostics.selftest", "-p", "steps=many", url=live_server)
    assert wrong_type.returncode == 2 and "is not an integer" in wrong_type.stderr
    out_of_range = run_cli("submit", "diagnostics.selftest", "-p", "steps=0", url=live_server)
    assert out_of_range.returncode == 1
    assert "INVALID_INPUT" in out_of_range.stderr and "steps" in out_of_range.stderr
    unknown = run_cli("submit", "no.such.kind", url=live_server)
    assert unknown.returncode == 2 and "diagnostics.selftest" in unknown.stderr


def test_users_are_managed_from_the_command_line(live_server, database):
    env = dict(os.environ)

    def vitalq(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(VITALQ + list(args), env=env, capture_output=True, text=True, timeout=60)

    name = f"dora-{os.getpid()}-{time.monotonic_ns()}"
    created = vitalq("users", "create", name)
    assert created.returncode == 0, created.stderr
    first = created.stdout.strip()
    second = vitalq("users", "token", name).stdout.strip()
    assert second.startswith("vq_") and second != first
    [line] = [line for line in vitalq("users", "list").stdout.splitlines() if line.startswith(name + "\t")]
    assert line.split("\t")[1] == "user" and first[:10] in line and second[:10] in line

    assert httpx.get(f"{live_server}/api/v1/jobs", headers=bearer(first)).status_code == 200
    revoked = vitalq("users", "revoke", first[:10])
    assert revoked.returncode == 0 and "1 token(s) revoked" in revoked.stderr
    assert httpx.get(f"{live_server}/api/v1/jobs", headers=bearer(first)).status_code == 401
    assert httpx.get(f"{live_server}/api/v1/jobs", headers=bearer(second)).status_code == 200  # the other lives
    assert first[:10] not in vitalq("users", "list").stdout
    assert vitalq("users", "revoke", first[:10]).returncode == 1  # nothing left to revoke
    duplicate = vitalq("users", "create", name)
    assert duplicate.returncode != 0 and "ALREADY_EXISTS" in duplicate.stderr


def test_models_default_trains_the_demonstration_model_once(tmp_path):
    env = {**os.environ, "VITALQ_DATA_DIR": str(tmp_path)}
    first = subprocess.run(VITALQ + ["models", "default"], env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "risk model v1 demo-hrv-risk active" in first.stdout and "not clinically validated" in first.stdout
    again = subprocess.run(VITALQ + ["models", "default"], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "risk model v1 " in again.stdout
    assert sorted(p.name for p in (tmp_path / "models").iterdir() if p.is_dir()) == ["1"]  # not trained twice


def test_params_are_typed_from_the_kinds_own_schema_unions_included(client):
    from vitalq.client import coerce_param

    schema = client.get("/api/v1/kinds/signal.filter").json["params_schema"]
    assert coerce_param(schema, "notch_hz", "50") == 50.0  # ["number", "null"]
    assert coerce_param(schema, "notch_hz", "null") is None
    assert coerce_param(schema, "time_column", "2") == 2 and coerce_param(schema, "time_column", "t") == "t"
    assert coerce_param(schema, "zero_phase", "no") is False and coerce_param(schema, "cutoff_hz", "[1, 5]") == [1, 5]
    assert coerce_param(schema, "cutoff_hz", "5") == 5.0  # one edge, as a plain number
    with pytest.raises(ValueError, match="is not an integer"):
        coerce_param(schema, "order", "four")


def wait_http(url: str, timeout_s: float, expect: int = 200) -> httpx.Response:
    seen: list = []

    def answered():
        try:
            seen[:] = [httpx.get(url, timeout=5)]
        except httpx.TransportError as exc:
            seen[:] = [exc]
            return None
        return seen[0] if seen[0].status_code == expect else None

    return wait_until(answered, timeout_s, lambda: f"{url} answering {expect}: {seen!r}", interval_s=0.5)


def _embedded_redis_pid(var: Path) -> int | None:
    """The pid of the live redis-server working in ``var/redis`` (it moves there: --dir)."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if ((proc / "comm").read_text().strip() == "redis-server" and (proc / "stat").read_text().split()[2] != "Z"
                    and os.readlink(proc / "cwd") == str(var / "redis")):
                return int(proc.name)
        except OSError:  # ended meanwhile
            continue
    return None


class Up:
    """``vitalq up`` as a user runs it, in a subprocess, on embedded defaults (``settings``:
    more of its environment); its output is collected in ``lines`` and ``up.log``."""

    def __init__(self, var: Path, **settings: str):
        self.env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "VITALQ_DATA_DIR")}
        self.var, self.port, self.flower_port = var, free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(VITALQ + ["up", "--data-dir", str(var), "--port", str(self.port),
                                                  "--flower-port", str(self.flower_port), "--concurrency", "1"],
                                        env={**self.env, **settings}, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        threading.Thread(target=self._collect, args=(var.parent / "up.log",), daemon=True).start()

    def _collect(self, log_path: Path) -> None:
        with open(log_path, "w") as log:  # kept beside the data folder, for a failure's whole story
            for line in self.process.stdout:
                self.lines.append(line)
                log.write(line)
                log.flush()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def token(self) -> str:
        """The first admin's token, printed by the first start."""
        return next(line.split("=", 1)[1].strip() for line in self.lines if "export VITALQ_TOKEN=" in line)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=60)


def test_up_runs_everything_on_embedded_defaults_and_stops_cleanly(tmp_path: Path):
    """The README's run command, on a machine with nothing configured."""
    up = Up(tmp_path / "var")
    env, port, flower_port, base = up.env, up.port, up.flower_port, up.base
    try:
        ready = wait_http(f"{base}/health/ready", 90)
        assert ready.json()["status"] == "ready"
        # The first start made an admin and printed their token: the platform is usable at once.
        token = up.token()
        assert httpx.get(f"{base}/api/v1/jobs", timeout=5).status_code == 401
        done = subprocess.run(VITALQ + ["submit", "diagnostics.selftest", "--wait", "--url", base],
                              env={**env, "VITALQ_TOKEN": token}, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["status"] == "succeeded"
        assert (tmp_path / "var" / "vitalq.db").exists()
        # Flower, behind its own basic auth, and through vitalq's sign-in for an admin.
        flower = f"http://127.0.0.1:{flower_port}/flower/"
        wait_http(flower, 60, expect=401)
        user, password = (tmp_path / "var" / "flower-auth").read_text().strip().split(":", 1)
        assert httpx.get(flower, auth=(user, password), timeout=10).status_code == 200
        assert "/sign-in" in httpx.get(f"{base}/flower/", timeout=10).headers["Location"]
        through = httpx.get(f"{base}/flower/workers", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert through.status_code == 200 and "cpu@" in through.text

        # The command line beside it finds the embedded Redis: a revocation takes effect at
        # once (it had gone to the Redis on port 6379, and the token worked on for 60 s).
        var = tmp_path / "var"
        beside = {**env, "VITALQ_DATA_DIR": str(var)}
        created = subprocess.run(VITALQ + ["users", "create", "bob"], env=beside, capture_output=True, text=True,
                                 timeout=60)
        bobs = created.stdout.strip()
        assert bobs.startswith("vq_"), created.stderr
        as_bob = {"Authorization": f"Bearer {bobs}"}
        assert httpx.get(f"{base}/api/v1/jobs", headers=as_bob, timeout=5).status_code == 200
        revoked = subprocess.run(VITALQ + ["users", "revoke", bobs[:10]], env=beside, capture_output=True, text=True,
                                 timeout=60)
        assert revoked.returncode == 0 and "not moved on" not in revoked.stderr, revoked.stderr
        assert httpx.get(f"{base}/api/v1/jobs", headers=as_bob, timeout=5).status_code == 401

        # Secrets stay off command lines; what vitalq writes is its owner's alone.
        redis_password = (var / "redis" / "password").read_text().strip()
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                arguments = cmdline.read_bytes()
            except OSError:  # a process that ended meanwhile
                continue
            assert password.encode() not in arguments and redis_password.encode() not in arguments, arguments
        for path in (var / "vitalq.db", var / "flower-auth", var / "secret_key", var / "redis" / "password",
                     var / "redis" / "url"):
            assert path.stat().st_mode & 0o077 == 0, (path, oct(path.stat().st_mode))
        assert var.stat().st_mode & 0o077 == 0 and (var / "redis").stat().st_mode & 0o077 == 0

        # The embedded Redis killed: vitalq up starts it again, on its port and files, and goes on.
        redis_pid = _embedded_redis_pid(var)
        os.kill(redis_pid, signal.SIGKILL)
        wait_until(lambda: _embedded_redis_pid(var) not in (None, redis_pid), 30, "the embedded Redis restarted")
        assert not Path(f"/proc/{redis_pid}").exists()  # reaped, no zombie
        again = subprocess.run(VITALQ + ["submit", "diagnostics.selftest", "--wait", "--url", base],
                               env={**env, "VITALQ_TOKEN": token}, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
    finally:
        up.stop()
    output = up.output
    assert up.process.returncode == 0, output[-3000:]
    assert not (tmp_path / "var" / "redis" / "url").exists()  # the URL of a Redis no longer running
    assert f"http://127.0.0.1:{port}/" in output and f"http://127.0.0.1:{flower_port}/" in output
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{base}/health/live", timeout=2)


def _supervised_pid(var: Path, name: str) -> int | None:
    """The pid ``vitalq up`` reports for its process ``name`` while it runs, else None."""
    try:
        state = json.loads((var / "processes.json").read_text())["processes"][name]
    except (OSError, ValueError, KeyError):
        return None
    return state.get("pid") if state["state"] == "running" else None


def test_up_restarts_whatever_is_killed_and_every_job_in_flight_finishes_once(tmp_path: Path):
    """kill -9 of the worker, the web tier, beat, Flower and the embedded Redis in turn,
    under load: each is started again, the platform is ready again within 10 s, and every
    job finishes exactly once (one had stopped everything, and nothing restarted it)."""
    var = tmp_path / "var"
    # The reconciler looks often, so that the job the killed worker held is queued again in seconds.
    up = Up(var, VITALQ_RECONCILE_INTERVAL_S="2", VITALQ_RECONCILE_MIN_AGE_S="3")
    submitted: list[str] = []
    back_within: dict[str, float] = {}
    try:
        wait_http(f"{up.base}/health/ready", 90)
        # A new connection for each request: a kept-alive one to the web process killed
        # (its worker lingers a moment, then resets it) would fail the next request.
        api = httpx.Client(base_url=up.base, headers=bearer(up.token()), timeout=10,
                           limits=httpx.Limits(max_keepalive_connections=0))

        # Submitted as the command line does: a request whose answer was lost (the web
        # process killed a moment before: its lingering worker drops the connection) is
        # sent again with its Idempotency-Key, never making a twin.
        client = Client(up.base, up.token())

        def submit(count: int) -> None:
            for _ in range(count):
                submitted.append(client.submit("diagnostics.selftest", {"duration_s": 0.6, "steps": 3})["id"])

        for name in ("worker-cpu", "web", "beat", "flower", "redis"):
            submit(4)
            if name == "worker-cpu":  # killed with a job in its hands
                wait_until(lambda: api.get(f"/api/v1/jobs/{submitted[-4]}").json()["status"] == "running", 30,
                           "a job running")
            pid = _supervised_pid(var, name)
            assert pid is not None, up.output[-3000:]
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
            if name != "web":  # the web tier itself answers, and says what is down until it is back
                wait_until(lambda: httpx.get(f"{up.base}/health/ready", timeout=10).status_code == 503, 3,
                           f"/health/ready failing while {name} is down", interval_s=0.05)
            wait_until(lambda: _supervised_pid(var, name) not in (None, pid), 10, f"{name} started again")
            wait_http(f"{up.base}/health/ready", 10 - (time.monotonic() - killed_at))
            back_within[name] = round(time.monotonic() - killed_at, 1)
            assert f"{name} exited (killed by SIGKILL); starting it again" in up.output

        # Redis refusing every write for a while (full, as when MISCONF refuses them on a full disk).
        submit(4)
        server = redis.Redis.from_url((var / "redis" / "url").read_text().strip())
        server.config_set("maxmemory", 1)
        time.sleep(5)
        server.config_set("maxmemory", 0)
        refused_until = time.monotonic()
        wait_http(f"{up.base}/health/ready", 10)
        back_within["writes refused"] = round(time.monotonic() - refused_until, 1)

        def all_finished():
            listed = [api.get(f"/api/v1/jobs/{job_id}").json() for job_id in submitted]
            return listed if all(job["finished_at"] for job in listed) else None

        finished = wait_until(all_finished, 120, lambda: f"every job finished: {up.output[-3000:]}", interval_s=1)
        assert [job["status"] for job in finished] == ["succeeded"] * len(submitted), \
            [(i, job["status"], job["error"], job["attempts"]) for i, job in enumerate(finished) if job["status"] != "succeeded"]
    finally:
        up.stop()
    # Each job's finish is recorded, and logged by the worker that recorded it, once.
    finishes = [json.loads(line) for line in up.lines if line.startswith("{") and '"job_id"' in line]
    finishes = [entry["job_id"] for entry in finishes if entry.get("status") == "succeeded"]
    assert sorted(finishes) == sorted(submitted), up.output[-3000:]
    print("back within (s):", back_within)


def test_a_process_that_keeps_exiting_is_restarted_with_doubling_backoff(tmp_path: Path):
    from vitalq.processes import BACKOFF_MIN_S, ProcessSpec, Supervisor

    status_path = tmp_path / "processes.json"
    supervisor = Supervisor(status_path=status_path)
    supervisor.start(ProcessSpec("crashy", [sys.executable, "-c", "raise SystemExit(3)"]))
    started_at: list[float] = [time.monotonic()]
    saw_down = None
    try:
        while len(started_at) < 4:
            if supervisor._keep_running():
                supervisor._write_status()
                state = json.loads(status_path.read_text())["processes"]["crashy"]
                if state["state"] == "down":
                    saw_down = state
                elif state["restarts"] == len(started_at):
                    started_at.append(time.monotonic())
            time.sleep(0.02)
    finally:
        supervisor.stop()
    gaps = [later - earlier for earlier, later in zip(started_at, started_at[1:])]
    # Each gap is the process's own run (a Python start) plus a backoff twice the last.
    backoffs = [BACKOFF_MIN_S, 2 * BACKOFF_MIN_S, 4 * BACKOFF_MIN_S]
    assert all(backoff <= gap < backoff + 1.5 for gap, backoff in zip(gaps, backoffs)), gaps
    assert saw_down["last_exit_code"] == 3 and saw_down["restart_in_s"] > 0
    assert not status_path.exists()  # a stopped supervisor leaves no report behind
