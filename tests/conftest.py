"""Fixtures that give tests the real parts: a database, Redis, a Celery worker process
and a live web server.

Configured by the environment like vitalq itself: ``DATABASE_URL`` and ``REDIS_URL``
point the suite at a PostgreSQL database and a Redis database that it may empty (CI
does this). With nothing set, the suite runs on SQLite in a temporary folder and an
embedded Redis started for the session, as ``vitalq up`` does. The suite's temporary
folder is removed after the run (``VITALQ_KEEP_TEST_DATA=1`` keeps it, logs and all).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import zlib
from pathlib import Path

# One BLAS/OpenMP thread per process, set before any numerical library loads: the tests,
# their workers and the web server share two cores, and OpenMP threads fighting over busy
# cores made a 1 s scikit-learn fit take 16 s.
for _threads in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")

import httpx  # noqa: E402
import pytest  # noqa: E402
from support import Jobs, WorkerProcess, bearer, gunicorn, sign_in  # noqa: E402

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


@pytest.fixture(scope="module")
def hardware_pool(database):
    """``vitalq serve worker-hw``: a real Celery worker for each registered device, for
    the tests of one module."""
    from support import Subprocess

    pool = Subprocess("worker-hw", [sys.executable, "-m", "vitalq.cli", "serve", "worker-hw"])
    yield pool
    pool.stop()


@pytest.fixture
def app(database):
    """A fresh app for each test, as Flask's tutorial makes one (about 10 ms)."""
    from web import create_app

    return create_app()


@pytest.fixture
def client(app, clean, tokens):
    """Flask's test client, signed in as the admin: for what needs no worker and no socket."""
    test_client = app.test_client()
    test_client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {tokens['admin']}"
    return test_client


@pytest.fixture(scope="session")
def live_server(database):
    """An app of its own on a real threaded HTTP server (websockets included), on a free
    port, for the session: each test starts from a clean database and Redis (``clean``)."""
    from werkzeug.serving import make_server

    from web import create_app

    server = make_server("127.0.0.1", 0, create_app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


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


@pytest.fixture
def jobs(http):
    return Jobs(http)


# --- a real S3 server --------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """moto's standalone S3 server on a free port, with the bucket ``vitalq-test``: the
    AWS variables that point a process at it (``.env``), and a boto3 client (``.client``)."""
    import subprocess
    import sys
    from types import SimpleNamespace

    import boto3

    from support import stop_process, wait_until
    from worker.embedded_redis import free_port

    server = Path(sys.executable).parent / "moto_server"
    if not server.exists():  # a test extra: missing, the install is broken
        pytest.fail(f"no moto_server beside {sys.executable}: pip install -e '.[test]'")
    port = free_port()
    log_path = tmp_path_factory.mktemp("s3") / "moto.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                                   stderr=subprocess.STDOUT)
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "vitalq-test",
           "AWS_SECRET_ACCESS_KEY": "vitalq-test", "AWS_REGION": "us-east-1"}
    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id="vitalq-test",
                          aws_secret_access_key="vitalq-test", region_name="us-east-1")

    def answers() -> bool:
        assert process.poll() is None, log_path.read_text()[-3000:]
        try:
            client.list_buckets()
            return True
        except Exception:
            return False

    try:
        wait_until(answers, 30, "moto_server answers")
        client.create_bucket(Bucket="vitalq-test")
        yield SimpleNamespace(env=env, client=client, bucket="vitalq-test")
    finally:
        stop_process(process)


# --- a real browser -------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, driven by Playwright (no browser download)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        _install_chromium()
    if not Path(CHROMIUM).exists():
        if os.environ.get("VITALQ_REQUIRE_BROWSER"):  # CI: a missing browser is a failure there
            pytest.fail(f"no Chromium at {CHROMIUM}, and it could not be installed")
        pytest.skip("no Chromium, and it could not be installed here (as root: apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()


def _install_chromium() -> None:
    """Install the distribution's Chromium where the suite may (as root, with apt): the page
    tests are to run on a fresh machine, not be skipped."""
    import subprocess

    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for steps in ([["apt-get", "install", "-y", "-q", "chromium"]],
                  [["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]]):
        if all(subprocess.run(step, env=env, capture_output=True, timeout=900).returncode == 0 for step in steps):
            return


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


