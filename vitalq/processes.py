"""The processes that make up vitalq, and a supervisor that runs them together.

Each process's command line is declared once here: ``vitalq up`` runs them all, and
the Procfile runs each through ``vitalq serve NAME``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from worker.settings import hardware_queue

CELERY = [sys.executable, "-m", "celery", "-A", "worker.celery_app"]


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: list[str]


def web(host: str, port: int, threads: int = 64) -> ProcessSpec:
    # gthread workers serve flask-sock websockets, one thread each; one process keeps
    # the in-process metrics whole.
    return ProcessSpec("web", [sys.executable, "-m", "gunicorn", "--worker-class", "gthread",
                               "--workers", "1", "--threads", str(threads), "--bind", f"{host}:{port}",
                               "--access-logfile", "-", "--graceful-timeout", "10", "web:create_app()"])


def cpu_worker(concurrency: int | None = None) -> ProcessSpec:
    argv = CELERY + ["worker", "--queues", "cpu", "--hostname", "cpu@%h", "--loglevel", "INFO"]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    return ProcessSpec("worker-cpu", argv)


def hardware_worker(device: str) -> ProcessSpec:
    # Concurrency 1: a device runs one job at a time; others wait on its queue.
    return ProcessSpec(f"worker-hw-{device}", CELERY + ["worker", "--queues", hardware_queue(device),
                                                        "--concurrency", "1", "--hostname", f"hw-{device}@%h",
                                                        "--loglevel", "INFO"])


def beat(data_dir: Path) -> ProcessSpec:
    return ProcessSpec("beat", CELERY + ["beat", "--schedule", str(data_dir / "celerybeat-schedule"),
                                         "--loglevel", "INFO"])


def flower(host: str, port: int) -> ProcessSpec:
    return ProcessSpec("flower", CELERY + ["flower", f"--address={host}", f"--port={port}"])


class Supervisor:
    """Starts processes, and stops them all when one dies or on Ctrl-C / SIGTERM."""

    def __init__(self, env: dict[str, str] | None = None, grace_s: float = 15.0):
        self.env = {**os.environ, **(env or {})}
        self.grace_s = grace_s
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, spec: ProcessSpec) -> None:
        self.running[spec.name] = subprocess.Popen(spec.argv, env=self.env)

    def wait(self) -> int:
        """Block until a child exits or a stop signal arrives; then stop every child."""
        stop = {"signal": None}

        def _on_signal(signum, _frame):
            stop["signal"] = signum

        previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        code = 0
        try:
            while stop["signal"] is None:
                exited = [(name, p.returncode) for name, p in self.running.items() if p.poll() is not None]
                if exited:
                    name, code = exited[0]
                    print(f"vitalq: {name} exited with code {code}; stopping the others", file=sys.stderr)
                    code = code or 1
                    break
                time.sleep(0.2)
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return code

    def stop(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        for name, process in self.running.items():
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                print(f"vitalq: {name} did not stop in {self.grace_s:g} s; killing it", file=sys.stderr)
                process.kill()
                process.wait()
