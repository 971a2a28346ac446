"""What the benchmarks that run a whole vitalq share: the services to run it on, and
waiting for it to be ready."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import httpx

from vitalq import processes
from worker.embedded_redis import EmbeddedRedis, free_port

ROOT = Path(__file__).resolve().parent.parent


def prepare_services(prefix: str) -> EmbeddedRedis | None:
    """Point this process (and the processes it starts) at PostgreSQL and Redis when
    DATABASE_URL and REDIS_URL are set, else at SQLite and an embedded Redis in a fresh
    folder; apply the migrations. Returns the embedded Redis to stop, if one was started."""
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    embedded = None
    if not os.environ.get("REDIS_URL"):
        embedded = EmbeddedRedis(data_dir / "redis", persist=False)
        os.environ["REDIS_URL"] = embedded.start()
    os.environ["VITALQ_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{data_dir / 'vitalq.db'}")
    from worker import db

    db.upgrade()
    return embedded


def remove_services(embedded: EmbeddedRedis | None) -> None:
    """Stop the embedded Redis ``prepare_services`` started, and remove its folder and
    whatever the run left in the data folder (uploads, results, logs)."""
    if embedded is not None:
        embedded.stop()
    shutil.rmtree(os.environ["VITALQ_DATA_DIR"], ignore_errors=True)


def children(pid: int) -> list[int]:
    """The pids of a process's children (a gunicorn master's workers, say)."""
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def status_kb(pid: int, field: str) -> int:
    """A memory figure of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``...), in kB."""
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def wait_ready(base: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health/ready", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit("vitalq did not become ready")


def start_vitalq(concurrency: int, env: dict[str, str] | None = None,
                 extra: tuple[processes.ProcessSpec, ...] = ()) -> tuple[processes.Supervisor, str]:
    """A web server and a cpu worker of ``concurrency`` processes (and ``extra``
    processes) on the prepared services, logging to ``vitalq.log`` in the data folder.
    Returns the supervisor, to stop them, and the web server's URL, once vitalq is ready."""
    port = free_port()
    # Their logs go to the data folder: the benchmark's output is its table.
    log = open(Path(os.environ["VITALQ_DATA_DIR"]) / "vitalq.log", "ab")
    supervisor = processes.Supervisor({"PYTHONPATH": str(ROOT), **(env or {})}, output=log)
    for spec in (processes.web("127.0.0.1", port), processes.cpu_worker(concurrency), *extra):
        supervisor.start(spec)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base)
    except BaseException:
        supervisor.stop()
        raise
    return supervisor, base
