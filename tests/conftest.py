"""Fixtures that give tests the real parts: a database, Redis, a Celery worker process
and a live web server.

Configured by the environment like vitalq itself: ``DATABASE_URL`` and ``REDIS_URL``
point the suite at a PostgreSQL database and a Redis database that it may empty (CI
does this). With nothing set, the suite runs on SQLite in a temporary folder and an
embedded Redis started for the session, as ``vitalq up`` does. The suite's temporary
folder is removed after the run (``VITALQ_KEEP_TEST_DATA=1`` keeps it, logs and all).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
import zlib
from pathlib import Path

# One BLAS/OpenMP thread per process, set before any numerical library loads: the tests,
# their workers and the web server share two cores, and OpenMP threads fighting over busy
# cores made a 1 s scikit-learn fit take 16 s.
for _threads in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")

import httpx  # noqa: E402
import pytest  # noqa: E402

#: Short delays so that retries, cancels and progress happen within a test's patience.
TEST_SETTINGS = {
    "VITALQ_CANCEL_GRACE_S": "3",
    "VITALQ_RETRY_BACKOFF_S": "0.2",
    "VITALQ_RETRY_BACKOFF_MAX_S": "1",
    "VITALQ_MAX_RETRIES": "3",
    "VITALQ_MAX_REDELIVERIES": "2",
    "VITALQ_PROGRESS_DB_INTERVAL_S": "0.2",
    "VITALQ_REGISTRY_REFRESH_S": "0.5",
    "VITALQ_COMPUTE_THREADS": "1",
}
#: A test's worker starts without waiting to meet other workers: it is ready sooner.
QUICK_START = ["--without-mingle", "--without-gossip"]

_embedded_redis = None
_data_dir: Path | None = None


def pytest_configure(config):
    """Point vitalq at the test services before any of its modules reads its settings."""
    global _embedded_redis, _data_dir
    data_dir = _data_dir = Path(tempfile.mkdtemp(prefix="vitalq-tests-"))
    os.environ["VITALQ_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{data_dir / 'vitalq.db'}")
    if not os.environ.get("REDIS_URL"):
        from worker.embedded_redis import EmbeddedRedis

        _embedded_redis = EmbeddedRedis(data_dir / "redis", persist=False)
        os.environ["REDIS_URL"] = _embedded_redis.start()
    os.environ.update(TEST_SETTINGS)
    # The Celery app reads its configuration once, when first asked: now, not inside
    # whichever test (perhaps one that points REDIS_URL elsewhere) first submits a job.
    from worker.celery_app import app

    assert app.conf.broker_url == os.environ["REDIS_URL"]


def pytest_unconfigure(config):
    if _embedded_redis is not None:
        _embedded_redis.stop()
    if _data_dir is not None and not os.environ.get("VITALQ_KEEP_TEST_DATA"):
        shutil.rmtree(_data_dir, ignore_errors=True)


def pytest_report_header(config):
    return [f"vitalq database: {os.environ['DATABASE_URL']}", f"vitalq redis: {os.environ['REDIS_URL']}"]


@pytest.fixture(scope="session")
def settings():
    from worker.settings import get_settings

    return get_settings()


@pytest.fixture
def configure(settings):
    """Change vitalq's settings for one test: ``configure(max_queue_depth=2)``.

    The process's settings are replaced by a copy with these changes, and given back
    after the test. The live server runs in this process and sees the change; worker
    processes do not.
    """
    from dataclasses import replace

    from worker.settings import get_settings, use_settings

    before = get_settings()
    yield lambda **changes: use_settings(replace(get_settings(), **changes))
    use_settings(before)


@pytest.fixture
def rng(request):
    """A random generator seeded from the test's own id: the same numbers whether the test
    runs alone or with others, in any order."""
    import numpy as np

    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture(scope="session")
def database(settings):
    from worker import db

    db.upgrade()
    return db


@pytest.fixture(scope="session")
def tokens(database) -> dict[str, str]:
    """API tokens of an admin and of two users, ``alice`` and ``bob``, made once a session."""
    from worker import accounts

    made = {}
    for name, admin in (("admin", True), ("alice", False), ("bob", False)):
        try:
            made[name] = accounts.create_user(name, admin=admin)[1]
        except Exception:  # a database kept from an earlier run: a fresh token for the same user
            made[name] = accounts.issue_token(name)
    return made


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


@pytest.fixture
def clean(database, settings):
    """No jobs, no risk models, no vitalq keys in Redis and empty queues, before and after the test.

    Celery's own keys (queue bindings, the control channel) are kept: emptying the whole
    Redis database would cut off the session's worker.
    """
    from sqlalchemy import delete

    from worker import devices
    from worker.broker import KEY_PREFIX, get_redis
    from worker.db import session_scope
    from worker.models import Device, Job

    redis = get_redis()

    def reset():
        for queue in devices.queues():
            redis.delete(queue, *(f"{queue}:{step}" for step in range(1, 10)))
        with session_scope() as session:
            session.execute(delete(Job))
            session.execute(delete(Device))
        shutil.rmtree(settings.data_dir / "models", ignore_errors=True)
        keys = list(redis.scan_iter(f"{KEY_PREFIX}*", count=1000))
        if keys:
            redis.delete(*keys)

    reset()
    yield
    reset()


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


@pytest.fixture(scope="session")
def session_worker(database):
    """One Celery worker process, concurrency 1, started once (it takes seconds to start)."""
    process = WorkerProcess(concurrency=1)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def worker(session_worker):
    """The session's worker, taking cpu jobs for the tests of one module only: the other
    modules see no worker, and a job they submit stays queued."""
    session_worker.consume("cpu")
    yield session_worker
    session_worker.consume("cpu", consuming=False)


@pytest.fixture(scope="session")
def app(database):
    from web import create_app

    return create_app()


@pytest.fixture
def client(app, clean, tokens):
    """Flask's test client, signed in as the admin: for what needs no worker and no socket."""
    test_client = app.test_client()
    test_client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {tokens['admin']}"
    return test_client


@pytest.fixture(scope="session")
def live_server(app):
    """The app on a real threaded HTTP server (websockets included), on a free port."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


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


@pytest.fixture(scope="session")
def gunicorn_server(database, tmp_path_factory):
    with gunicorn(tmp_path_factory.mktemp("gunicorn") / "web.log") as base:
        yield base


@pytest.fixture
def as_user(live_server, clean, tokens) -> dict[str, httpx.Client]:
    """HTTP clients of the live server, one per user of ``tokens`` (admin, alice, bob)."""
    clients = {name: httpx.Client(base_url=live_server, timeout=30, headers=bearer(token))
               for name, token in tokens.items()}
    yield clients
    for client in clients.values():
        client.close()


@pytest.fixture
def http(live_server, clean, tokens):
    """An HTTP client of the live server, with the admin's token."""
    with httpx.Client(base_url=live_server, timeout=30, headers=bearer(tokens["admin"])) as client:
        yield client


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


@pytest.fixture
def jobs(http):
    return Jobs(http)


# --- a real browser -------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(os.environ.get("VITALQ_SCREENSHOTS", tempfile.gettempdir())) / "vitalq-screenshots"


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, driven by Playwright (no browser download)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        if os.environ.get("VITALQ_REQUIRE_BROWSER"):  # CI installs it: a missing browser is a failure there
            pytest.fail(f"no Chromium at {CHROMIUM}")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()


def sign_in(page, token: str) -> None:
    """Sign in through the sign-in page, as a person would."""
    page.goto("/sign-in")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/sign-in" not in url)


@pytest.fixture
def page(browser, live_server, clean, tokens):
    """A fresh browser tab on the live app, signed in as the admin; fails the test on
    any script error or anything the page's security policy refused."""
    context = browser.new_context(base_url=live_server, viewport={"width": 1100, "height": 900})
    page = context.new_page()
    sign_in(page, tokens["admin"])
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # A script, style or socket the Content-Security-Policy refused breaks the page as surely.
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text else None)
    yield page
    context.close()
    assert errors == [], errors


def shot(page, name: str) -> Path:
    """Save a full-page screenshot to look at (``$VITALQ_SCREENSHOTS/vitalq-screenshots``)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
