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
from conftest import bearer, wait_until

from worker.embedded_redis import free_port

VITALQ = [sys.executable, "-m", "vitalq.cli"]


@pytest.fixture
def run_cli(tokens):
    def run(*args: str, url: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(VITALQ + list(args), env={**os.environ, "VITALQ_URL": url, "VITALQ_TOKEN": tokens["alice"]},
                              capture_output=True, text=True, timeout=timeout)
    return run


@pytest.mark.usefixtures("worker")
def test_submit_wait_list_and_cancel_from_the_command_line(live_server, clean, run_cli):
    done = run_cli("submit", "diagnostics.selftest", "-p", "duration_s=0.3", "-p", "steps=3",
                   "--priority", "7", "--wait", url=live_server)
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["status"] == "succeeded" and job["priority"] == 7 and job["params"]["steps"] == 3
    assert "100.0%" in done.stderr  # the progress bar, fed by the websocket

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


def test_up_runs_everything_on_embedded_defaults_and_stops_cleanly(tmp_path: Path):
    """The README's run command, on a machine with nothing configured."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "VITALQ_DATA_DIR")}
    port, flower_port = free_port(), free_port()
    up = subprocess.Popen(VITALQ + ["up", "--data-dir", str(tmp_path / "var"), "--port", str(port),
                                    "--flower-port", str(flower_port), "--concurrency", "1"],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(up.stdout), daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    try:
        ready = wait_http(f"{base}/health/ready", 90)
        assert ready.json()["status"] == "ready"
        # The first start made an admin and printed their token: the platform is usable at once.
        token = next(line.split("=", 1)[1].strip() for line in lines if "export VITALQ_TOKEN=" in line)
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
        up.send_signal(signal.SIGINT)
        up.wait(timeout=60)
    output = "".join(lines)
    assert up.returncode == 0, output[-3000:]
    assert not (tmp_path / "var" / "redis" / "url").exists()  # the URL of a Redis no longer running
    assert f"http://127.0.0.1:{port}/" in output and f"http://127.0.0.1:{flower_port}/" in output
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{base}/health/live", timeout=2)
