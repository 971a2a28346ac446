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
from dataclasses import dataclass, field
from typing import Callable

from worker.settings import get_settings

CELERY = [sys.executable, "-m", "celery", "-A", "worker.celery_app"]


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: list[str]
    #: Added to the supervisor's environment: where secrets go, never on the command line
    #: (any user of the machine can read a process's arguments with ps).
    env: dict[str, str] = field(default_factory=dict)
    #: Started again when it exits, rather than stopping everything (the embedded Redis).
    restart: bool = False


def web(host: str, port: int, connections: int | None = None) -> ProcessSpec:
    """Gunicorn with a gevent worker: each request and each open websocket is a greenlet,
    not a thread, so the process holds thousands of websockets (``connections``, default
    ``VITALQ_WEB_CONNECTIONS``, 4000) and switching between them is cheap. One process
    keeps the in-process request metrics whole. The app logs each request itself, as
    JSON; ``web.wsgi`` makes psycopg2 cooperate with gevent."""
    connections = connections or get_settings().web_connections
    return ProcessSpec("web", [sys.executable, "-m", "gunicorn", "--worker-class", "gevent",
                               "--workers", "1", "--worker-connections", str(connections),
                               "--bind", f"{host}:{port}", "--graceful-timeout", "10",
                               # vitalq does not use gunicorn's control socket, which is one fixed
                               # path per user: two web servers would share it.
                               "--no-control-socket", "web.wsgi:app"])


def cpu_worker(concurrency: int | None = None, hostname: str = "cpu@%h") -> ProcessSpec:
    argv = CELERY + ["worker", "--queues", "cpu", "--hostname", hostname, "--loglevel", "INFO"]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    return ProcessSpec("worker-cpu", argv)


def hardware_worker(device_id: str) -> ProcessSpec:
    # Concurrency 1: a device runs one job at a time; others wait on its queue.
    return ProcessSpec(f"worker-hw-{device_id}", CELERY + ["worker", "--queues", f"hw.{device_id}",
                                                           "--concurrency", "1", "--hostname", f"hw-{device_id}@%h",
                                                           "--loglevel", "INFO"])


def hardware_pool() -> list[ProcessSpec]:
    """One worker for each registered device this machine serves."""
    from worker import devices

    return [hardware_worker(device.id) for device in devices.all_devices(host=devices.this_host())]


def beat() -> ProcessSpec:
    # The scheduler (celeryconfig.beat_scheduler) reads schedules from the database.
    return ProcessSpec("beat", CELERY + ["beat", "--loglevel", "INFO"])


def flower(host: str, port: int, basic_auth: str) -> ProcessSpec:
    """Flower behind HTTP basic authentication (``user:password``, passed in Flower's own
    FLOWER_BASIC_AUTH variable); 2.2+ also guards its control API against CSRF."""
    # Served under /flower/ so that the web tier can pass it through behind its sign-in.
    return ProcessSpec("flower", CELERY + ["flower", f"--address={host}", f"--port={port}", "--url_prefix=flower"],
                       env={"FLOWER_BASIC_AUTH": basic_auth})


class Supervisor:
    """Starts processes, and stops them all when one dies or on Ctrl-C / SIGTERM; one
    declared ``restart`` is started again instead (with a second's pause between tries).

    A ``pool`` (a function returning the processes that should run now, such as
    ``hardware_pool``) is looked at every ``pool_interval_s``: its new members are
    started, those gone are stopped, and one that exits is started again.
    """

    def __init__(self, env: dict[str, str] | None = None, grace_s: float = 15.0,
                 pool: Callable[[], list[ProcessSpec]] | None = None, pool_interval_s: float | None = None):
        self.env = {**os.environ, **(env or {})}
        self.grace_s = grace_s
        self.running: dict[str, subprocess.Popen] = {}
        self.specs: dict[str, ProcessSpec] = {}
        self.pool = pool
        if pool_interval_s is None:
            from worker.settings import get_settings

            pool_interval_s = get_settings().registry_refresh_s
        self.pool_interval_s = pool_interval_s
        self.pooled: dict[str, subprocess.Popen] = {}
        self._pool_checked = 0.0

    def start(self, spec: ProcessSpec) -> None:
        self.adopt(spec, subprocess.Popen(spec.argv, env={**self.env, **spec.env}))

    def adopt(self, spec: ProcessSpec, process: subprocess.Popen) -> None:
        """Supervise ``process``, already started from ``spec``."""
        self.specs[spec.name] = spec
        self.running[spec.name] = process

    def _keep_pool(self) -> None:
        if self.pool is None or time.monotonic() - self._pool_checked < self.pool_interval_s:
            return
        self._pool_checked = time.monotonic()
        try:
            wanted = {spec.name: spec for spec in self.pool()}
        except Exception as exc:  # the database is away: keep what runs
            print(f"vitalq: pool not updated: {exc}", file=sys.stderr)
            return
        for name in set(self.pooled) - set(wanted):
            print(f"vitalq: stopping {name}", file=sys.stderr)
            terminate(self.pooled.pop(name), self.grace_s)
        for name, spec in wanted.items():
            process = self.pooled.get(name)
            if process is None or process.poll() is not None:
                if process is not None:
                    print(f"vitalq: {name} exited with code {process.returncode}; starting it again", file=sys.stderr)
                self.pooled[name] = subprocess.Popen(spec.argv, env={**self.env, **spec.env})

    def wait(self) -> int:
        """Block until a child exits or a stop signal arrives; then stop every child."""
        stop = {"signal": None}

        def _on_signal(signum, _frame):
            stop["signal"] = signum

        previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        code = 0
        try:
            while stop["signal"] is None:
                self._keep_pool()
                exited = [(name, p.returncode) for name, p in self.running.items() if p.poll() is not None]
                for name, returncode in exited:
                    if self.specs[name].restart and stop["signal"] is None:
                        print(f"vitalq: {name} exited with code {returncode}; starting it again", file=sys.stderr)
                        time.sleep(1.0)
                        self.start(self.specs[name])
                exited = [(name, returncode) for name, returncode in exited if not self.specs[name].restart]
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
        """Every process, the services (``restart``) last: the others need them to stop well."""
        processes = {**self.running, **{f"pool:{name}": process for name, process in self.pooled.items()}}
        self.pooled.clear()
        restarted = {name for name, spec in self.specs.items() if spec.restart}
        for phase in ([n for n in processes if n not in restarted], [n for n in processes if n in restarted]):
            for name in phase:
                if processes[name].poll() is None:
                    processes[name].send_signal(signal.SIGTERM)
            deadline = time.monotonic() + self.grace_s
            for name in phase:
                try:
                    processes[name].wait(timeout=max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    print(f"vitalq: {name} did not stop in {self.grace_s:g} s; killing it", file=sys.stderr)
                    processes[name].kill()
                    processes[name].wait()


def terminate(process: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM (a warm shutdown), then SIGKILL after ``grace_s`` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
