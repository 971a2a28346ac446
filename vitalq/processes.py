"""The processes that make up vitalq, and a supervisor that runs them together.

Each process's command line is declared once here: ``vitalq up`` runs them all, and
the Procfile runs each through ``vitalq serve NAME`` (where the platform's own process
manager restarts what exits).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable

from worker.settings import get_settings

CELERY = [sys.executable, "-m", "celery", "-A", "worker.celery_app"]


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: list[str]
    #: Added to the supervisor's environment: where secrets go, never on the command line
    #: (any user of the machine can read a process's arguments with ps).
    env: dict[str, str] = field(default_factory=dict)
    #: A service the others use (the embedded Redis): stopped last, so that they stop well.
    service: bool = False


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


#: Seconds before a process that exited is started again: doubled at each exit in a row,
#: up to the maximum, and back to the minimum once it has run ``STABLE_S`` seconds.
BACKOFF_MIN_S, BACKOFF_MAX_S, STABLE_S = 0.5, 30.0, 30.0


@dataclass
class Child:
    """One supervised process and its restart history."""
    spec: ProcessSpec
    process: subprocess.Popen | None
    started_at: float = field(default_factory=time.monotonic)
    #: Exits in a row, each after less than ``STABLE_S`` seconds of running.
    quick_exits: int = 0
    restarts: int = 0
    last_exit_code: int | None = None
    #: When it is to be started again (monotonic seconds), while it is down.
    restart_at: float | None = None
    #: Started by the pool (``Supervisor.pool``) rather than by ``start``.
    pooled: bool = False
    #: Started in a process group of its own (by ``Supervisor.start``, not ``adopt``):
    #: what it forked (gunicorn's and Celery's workers) goes with it.
    own_group: bool = False

    def end_group(self) -> None:
        """Kill what is left of the process's group once the process itself is gone:
        a gunicorn worker or a Celery pool child orphaned by a killed parent would
        otherwise keep its socket or its task (after a web kill -9, a new connection
        reached the dead server's lingering worker, which dropped it)."""
        if self.own_group and self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):  # the group is already empty
                pass

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Supervisor:
    """Runs processes and keeps them running until Ctrl-C or SIGTERM: one that exits,
    crashed or killed, is started again after a backoff (``BACKOFF_MIN_S`` doubling to
    ``BACKOFF_MAX_S``), and each exit and restart is logged. A process that dies must not
    take the platform with it: under ``kill -9`` of the worker, the web tier, beat, Flower
    or the embedded Redis, the rest carries on and the one killed is back in seconds.

    A ``pool`` (a function returning the processes that should run now, such as
    ``hardware_pool``) is looked at every ``pool_interval_s``: its new members are
    started, those gone are stopped.

    With an ``output`` (an open file), the processes write there rather than to this
    process's own output. With a ``status_path``, the state of every process (running,
    or down and when it restarts) is kept in that JSON file while the supervisor runs;
    ``/health/ready`` reports not-ready while one is down (``web.health``).
    """

    def __init__(self, env: dict[str, str] | None = None, grace_s: float = 15.0,
                 pool: Callable[[], list[ProcessSpec]] | None = None, pool_interval_s: float | None = None,
                 status_path: Path | None = None, output: IO | None = None):
        self.env = {**os.environ, **(env or {})}
        self.output = output
        self.grace_s = grace_s
        self.children: dict[str, Child] = {}
        self.pool = pool
        self.pool_interval_s = get_settings().registry_refresh_s if pool_interval_s is None else pool_interval_s
        self._pool_checked = -float("inf")
        self.status_path = status_path

    def start(self, spec: ProcessSpec, pooled: bool = False) -> None:
        self.children[spec.name] = Child(spec, self._spawn(spec), pooled=pooled, own_group=True)

    def adopt(self, spec: ProcessSpec, process: subprocess.Popen, pooled: bool = False) -> None:
        """Supervise ``process``, already started from ``spec``."""
        self.children[spec.name] = Child(spec, process, pooled=pooled)

    def pid(self, name: str) -> int | None:
        """The pid of the process ``name`` while it runs."""
        child = self.children.get(name)
        return child.process.pid if child is not None and child.running else None

    def _spawn(self, spec: ProcessSpec) -> subprocess.Popen:
        # A session (and process group) of its own: a Ctrl-C at the terminal reaches the
        # supervisor alone, which stops the processes in order (the services last).
        return subprocess.Popen(spec.argv, env={**self.env, **spec.env}, stdout=self.output,
                                stderr=None if self.output is None else subprocess.STDOUT, start_new_session=True)

    def _keep_pool(self) -> bool:
        """Start the pool's new members and stop those gone; True when anything changed."""
        if self.pool is None or time.monotonic() - self._pool_checked < self.pool_interval_s:
            return False
        self._pool_checked = time.monotonic()
        try:
            wanted = {spec.name: spec for spec in self.pool()}
        except Exception as exc:  # the database is away: keep what runs
            _say(f"pool not updated: {exc}")
            return False
        gone = [name for name, child in self.children.items() if child.pooled and name not in wanted]
        for name in gone:
            _say(f"stopping {name}")
            child = self.children.pop(name)
            if child.process is not None:
                terminate(child.process, self.grace_s)
                child.end_group()
        new = [name for name in wanted if name not in self.children]
        for name in new:
            self.start(wanted[name], pooled=True)
        return bool(gone or new)

    def _keep_running(self) -> bool:
        """Schedule a restart for each process that exited, and start those whose time has
        come; True when anything changed."""
        changed = False
        now = time.monotonic()
        for name, child in self.children.items():
            if child.restart_at is None and not child.running:
                code = child.process.returncode if child.process is not None else None
                child.end_group()
                child.quick_exits = child.quick_exits + 1 if now - child.started_at < STABLE_S else 1
                delay = min(BACKOFF_MIN_S * 2 ** (child.quick_exits - 1), BACKOFF_MAX_S)
                child.last_exit_code, child.restart_at, child.process = code, now + delay, None
                _say(f"{name} exited ({_exit_reason(code)}); starting it again in {delay:g} s")
                changed = True
            elif child.restart_at is not None and now >= child.restart_at:
                try:
                    child.process = self._spawn(child.spec)
                except OSError as exc:  # its program is gone: try again later
                    _say(f"{name} could not be started: {exc}")
                    child.restart_at = now + BACKOFF_MAX_S
                    continue
                child.started_at, child.restart_at, child.own_group = now, None, True
                child.restarts += 1
                _say(f"{name} started again (pid {child.process.pid}, restart {child.restarts})")
                changed = True
        return changed

    def status(self) -> dict:
        """Each process: ``running`` with its pid, or ``down`` with its last exit code and
        the seconds until it is started again."""
        now = time.monotonic()
        return {name: {"state": "running", "pid": child.process.pid, "restarts": child.restarts}
                if child.restart_at is None and child.process is not None else
                {"state": "down", "last_exit_code": child.last_exit_code, "restarts": child.restarts,
                 "restart_in_s": round(max((child.restart_at or now) - now, 0), 1)}
                for name, child in self.children.items()}

    def _write_status(self) -> None:
        if self.status_path is None:
            return
        body = {"supervisor_pid": os.getpid(), "host": socket.gethostname(), "processes": self.status()}
        partial = self.status_path.with_name(f".{self.status_path.name}.{os.getpid()}")
        partial.write_text(json.dumps(body))
        partial.replace(self.status_path)  # readers see the old file or the new, never half

    def wait(self) -> int:
        """Block until Ctrl-C or SIGTERM, keeping every process running; then stop them all."""
        stop = {"signal": None}

        def _on_signal(signum, _frame):
            stop["signal"] = signum

        previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._write_status()
            while stop["signal"] is None:
                if self._keep_pool() | self._keep_running():  # both, every time
                    self._write_status()
                time.sleep(0.2)
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def stop(self) -> None:
        """Every process, the services last: the others need them to stop well."""
        if self.status_path is not None:
            self.status_path.unlink(missing_ok=True)
        children, self.children = self.children, {}
        for phase in ([n for n, c in children.items() if not c.spec.service],
                      [n for n, c in children.items() if c.spec.service]):
            processes = {name: children[name].process for name in phase if children[name].process is not None}
            for process in processes.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + self.grace_s
            for name, process in processes.items():
                try:
                    process.wait(timeout=max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    _say(f"{name} did not stop in {self.grace_s:g} s; killing it")
                    process.kill()
                    process.wait()
                children[name].end_group()


def _say(message: str) -> None:
    print(f"vitalq: {message}", file=sys.stderr, flush=True)


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"exit code {code}"


def terminate(process: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM (a warm shutdown), then SIGKILL after ``grace_s`` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
