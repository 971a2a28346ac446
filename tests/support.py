"""What the tests share besides fixtures: helpers to wait, to run a worker or a web
server of their own, to talk to jobs over HTTP and websockets, and to drive pages.
Fixtures live in ``conftest.py``; test modules import these from here."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx

#: A test's worker starts without waiting to meet other workers: it is ready sooner.
QUICK_START = ["--without-mingle", "--without-gossip"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def close_code(ws) -> int | str:
    """The close code the server sent, "reset" if it closed the connection with what the
    client sent still unread (TCP then resets, and the close frame may be lost), or
    "open" if it is still open after the socket's timeout."""
    import socket

    import websocket

    try:
        while True:
            opcode, data = ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return int.from_bytes(data[:2], "big")
    except (socket.timeout, websocket.WebSocketTimeoutException):
        return "open"
    except (websocket.WebSocketException, OSError):
        return "reset"


def wait_until(predicate, timeout_s: float, what, interval_s: float = 0.2):
    """The predicate's first true value, polled every ``interval_s``; else, after
    ``timeout_s``, an AssertionError naming ``what`` (a string, or a function giving one,
    called then: the last state seen)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never within {timeout_s:g} s: {what() if callable(what) else what}")
        time.sleep(interval_s)


class WorkerProcess:
    """A real ``celery worker`` subprocess consuming the cpu queue."""

    def __init__(self, concurrency: int = 1, extra_env: dict[str, str] | None = None):
        self.hostname = f"test-{uuid.uuid4().hex[:8]}@localhost"
        self.log_path = Path(os.environ["VITALQ_DATA_DIR"]) / f"{self.hostname}.log"
        from vitalq import processes

        argv = processes.cpu_worker(concurrency, self.hostname).argv + QUICK_START
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(argv, env={**os.environ, **(extra_env or {})},
                                        stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(self._answers, 60, lambda: f"worker {self.hostname} ready: {self.log_tail()}", interval_s=0)

    def _answers(self) -> bool:
        from worker.celery_app import app

        if self.process.poll() is not None:
            raise RuntimeError(f"worker exited with {self.process.returncode}: {self.log_tail()}")
        return self.hostname in (app.control.inspect(destination=[self.hostname], timeout=0.5).ping() or {})

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def consume(self, queue: str, consuming: bool = True) -> None:
        """Start (or with ``consuming=False``, stop) taking jobs from ``queue``; returns once the worker has."""
        from worker.celery_app import app

        control = app.control.add_consumer if consuming else app.control.cancel_consumer
        replies = control(queue, destination=[self.hostname], reply=True, timeout=10)
        assert replies and self.hostname in replies[0], f"{self.hostname} did not answer: {self.log_tail()}"
        if not consuming:
            # A BRPOP the worker sent before the cancel still takes a message for up to its
            # timeout (kombu's brpop_timeout): let it lapse before anyone submits again.
            time.sleep(app.connection_for_read().transport.brpop_timeout + 0.5)

    def stop(self) -> None:
        stop_process(self.process)
        self.log.close()


def stop_process(process: subprocess.Popen, timeout_s: float = 30) -> None:
    from vitalq.processes import terminate

    terminate(process, timeout_s)


class Subprocess:
    """A vitalq process run as the Procfile runs it, logging to the test data folder."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None):
        self.log_path = Path(os.environ["VITALQ_DATA_DIR"]) / f"{name}-{os.getpid()}-{time.monotonic_ns()}.log"
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(argv, env={**os.environ, **(env or {})}, stdout=self.log,
                                        stderr=subprocess.STDOUT)

    def stop(self) -> None:
        stop_process(self.process)
        self.log.close()


def device_worker_answers(device_id: str) -> bool:
    """Whether the hardware pool's worker for the device answers a ping."""
    import socket

    from worker.celery_app import app

    hostname = f"hw-{device_id}@{socket.gethostname()}"
    return hostname in (app.control.inspect(destination=[hostname], timeout=0.5).ping() or {})


def wait_for_device_worker(device_id: str, pool: Subprocess, timeout_s: float = 60.0) -> None:
    """Until the pool has started the device's worker and it answers."""
    def answers() -> bool:
        assert pool.process.poll() is None, pool.log_path.read_text()[-3000:]
        return device_worker_answers(device_id)

    wait_until(answers, timeout_s, lambda: f"a worker for {device_id}: {pool.log_path.read_text()[-3000:]}",
               interval_s=0)


@contextlib.contextmanager
def gunicorn(log_path: Path, **env: str):
    """The web process as production runs it (``vitalq serve web``: gunicorn, one gevent
    worker), on the suite's database and Redis with ``env`` added, on a free port: its URL."""
    from vitalq import processes
    from worker.embedded_redis import free_port

    port = free_port()
    with open(log_path, "wb") as log:
        server = subprocess.Popen(processes.web("127.0.0.1", port).argv, env={**os.environ, **env}, stdout=log,
                                  stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert server.poll() is None, log_path.read_text()[-3000:]
        try:
            return httpx.get(f"{base}/health/live", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(answers, 60, "gunicorn answers")
        yield base
    finally:
        stop_process(server)


class Jobs:
    """Submitting and watching jobs over the real HTTP API and websocket."""

    def __init__(self, http: httpx.Client):
        self.http = http

    def submit(self, params: dict | None = None, priority: int | None = None,
               kind: str = "diagnostics.selftest") -> dict:
        response = self.http.post("/api/v1/jobs", json={"kind": kind, "params": params or {}, "priority": priority})
        assert response.status_code == 201, response.text
        return response.json()

    def get(self, job_id: str) -> dict:
        response = self.http.get(f"/api/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_for(self, job_id: str, predicate, timeout_s: float = 30.0, what: str = "condition") -> dict:
        seen: list[dict] = []

        def reached():
            seen[:] = [self.get(job_id)]
            return seen[0] if predicate(seen[0]) else None

        return wait_until(reached, timeout_s, lambda: f"job {job_id} reaching {what}; last seen: {seen}",
                          interval_s=0.05)

    def wait_finished(self, job_id: str, timeout_s: float = 30.0) -> dict:
        return self.wait_for(job_id, lambda job: job["finished_at"] is not None, timeout_s, "a finish")

    def wait_running(self, job_id: str, timeout_s: float = 30.0) -> dict:
        return self.wait_for(job_id, lambda job: job["status"] == "running", timeout_s, "running")

    def events(self, job_id: str, after: int | None = None, timeout_s: float = 30.0) -> list[dict]:
        """Every websocket message of the job, until the socket closes."""
        import json

        import websocket

        url = self.http.base_url.copy_with(scheme="ws", path=f"/ws/jobs/{job_id}",
                                           query=None if after is None else f"after={after}".encode())
        ws = websocket.create_connection(str(url), timeout=timeout_s,
                                         header={"Authorization": self.http.headers["Authorization"]})
        messages = []
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                if time.monotonic() > deadline:
                    raise AssertionError(f"websocket of job {job_id} still open after {timeout_s} s: {messages[-3:]}")
                try:
                    raw = ws.recv()
                except websocket.WebSocketConnectionClosedException:
                    break
                if not raw:
                    break
                messages.append(json.loads(raw))
        finally:
            ws.close()
        return messages


SCREENSHOTS = Path(os.environ.get("VITALQ_SCREENSHOTS", tempfile.gettempdir())) / "vitalq-screenshots"


def sign_in(page, token: str) -> None:
    """Sign in through the sign-in page, as a person would."""
    page.goto("/sign-in")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/sign-in" not in url)


def shot(page, name: str) -> Path:
    """Save a full-page screenshot to look at (``$VITALQ_SCREENSHOTS/vitalq-screenshots``)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def shared_data(*parts: str) -> Path:
    """A folder of the team's shared data (``../shared/data`` beside the repository):
    ``$VITALQ_SHARED_DATA``, else beside this checkout, else where this machine keeps it
    (a clone made elsewhere, as CI's may be). A missing folder fails the test that needs it."""
    candidates = [Path(os.environ["VITALQ_SHARED_DATA"])] if os.environ.get("VITALQ_SHARED_DATA") else []
    candidates += [Path(__file__).resolve().parents[2] / "shared" / "data", Path("/work/shared/data")]
    for root in candidates:
        if root.joinpath(*parts).is_dir():
            return root.joinpath(*parts)
    raise FileNotFoundError(f"no shared data {'/'.join(parts)} in {', '.join(map(str, candidates))} "
                            "(set VITALQ_SHARED_DATA)")
