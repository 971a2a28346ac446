"""Queue benchmark: how fast vitalq turns a submission into a running, recorded job.

Prints, in one run, against real processes (gunicorn web, Celery workers, Redis and the
database given by DATABASE_URL, or SQLite and an embedded Redis when unset):

- submit-to-start latency of selftest jobs on an idle worker (p50/p95/p99);
- sustained end-to-end jobs per second with full persistence (HTTP submit, job row,
  queue, worker, status events, result row) of ``diagnostics.noop`` jobs, which do
  nothing as the baselines' tasks do nothing (and of selftest jobs, which compute,
  report progress and write an artifact), beside two baselines on the same Redis and
  database: its peer (``bench/peer.py``: a Flask/gevent POST that inserts one
  SQLAlchemy row and sends one Celery task, which marks the row done) and raw Celery
  ``apply_async`` round trips of a no-op task. Each baseline runs twice: with Celery's
  defaults, and as vitalq delivers a job (acknowledged late, a prefetch of one, task
  events on); the difference is what those guarantees cost. The runs take turns in
  rounds (medians reported), each with the CPU milliseconds it costs per job in the
  client, the web server, the worker's pool and main processes, and the PostgreSQL
  and Redis servers when they run on this machine;
- websocket event latency, from the worker's publish to the client (p50/p95).

    python bench/queue.py [--quick] [--jobs 400] [--rounds 7] [--concurrency 2]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, bench/ comes first on sys.path, where this file would shadow the
# standard library's queue; the repository root is what is wanted.
ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import argparse
import json
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Callable

import httpx
import websocket

from bench.stack import prepare_services, remove_services, start_vitalq  # noqa: E402
from vitalq import processes  # noqa: E402
from worker.embedded_redis import free_port  # noqa: E402

RAW_APP = "bench.raw_celery"
#: The bench user's token, for every request and websocket.
HEADERS: dict[str, str] = {}


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(int(round(q / 100 * (len(values) - 1))), len(values) - 1)]


#: What the throughput runs submit: a job that does nothing, as the baselines' tasks do.
NOOP = {"kind": "diagnostics.noop"}
#: A selftest of one progress point: a job that computes a little and writes an artifact.
SELFTEST = {"kind": "diagnostics.selftest", "params": {"duration_s": 0, "steps": 1}}


def submit(http: httpx.Client, job: dict, priority: int = 5) -> str:
    """Submit ``job`` (its kind and params) and return its id."""
    response = http.post("/api/v1/jobs", json={**job, "priority": priority})
    response.raise_for_status()
    return response.json()["id"]


def wait_finished(http: httpx.Client, job_id: str) -> dict:
    while True:
        job = http.get(f"/api/v1/jobs/{job_id}").json()
        if job["finished_at"]:
            return job
        time.sleep(0.002)


def submit_to_start(http: httpx.Client, n: int) -> list[float]:
    latencies = []
    for _ in range(n):
        job = wait_finished(http, submit(http, SELFTEST))
        created, started = (datetime.fromisoformat(job[k]) for k in ("created_at", "started_at"))
        latencies.append((started - created).total_seconds() * 1000)
    return latencies


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError):
            continue
    return found


def server_processes(command: str) -> Callable[[], list[int]]:
    """A function finding the processes of a server run on this machine (``postgres``,
    ``redis-server``; none if it runs elsewhere)."""

    def find() -> list[int]:
        found = []
        for comm in Path("/proc").glob("[0-9]*/comm"):
            try:
                if comm.read_text().strip() == command:
                    found.append(int(comm.parent.name))
            except (OSError, ValueError):
                continue
        return found

    return find


class CpuMeter:
    """CPU seconds spent by named groups of processes between ``start`` and ``stop``;
    a group is a list of pids, or a function that finds them (a process that starts
    meanwhile, as a database backend may, counts from its start)."""

    def __init__(self, groups: dict[str, list[int] | Callable[[], list[int]]]):
        self.groups = groups

    def _read(self) -> dict[str, dict[int, float]]:
        seconds = {}
        for name, pids in self.groups.items():
            seconds[name] = {}
            for pid in pids() if callable(pids) else pids:
                try:
                    seconds[name][pid] = cpu_seconds(pid)
                except OSError:  # ended
                    continue
        return seconds

    def start(self) -> None:
        self.before = self._read()

    def stop(self) -> dict[str, float]:
        after = self._read()
        return {name: sum(seconds - self.before[name].get(pid, 0.0) for pid, seconds in after[name].items())
                for name in self.groups}


def process_groups(supervisor: processes.Supervisor, web: str, worker: str) -> dict:
    """The client (this process), the web server (gunicorn and its worker), a Celery
    worker's main process and its pool children, and the database and broker."""
    web_pid, worker_pid = supervisor.pid(web), supervisor.pid(worker)
    return {"client": [os.getpid()], "web": [web_pid, *children(web_pid)],
            "worker child": children(worker_pid), "worker main": [worker_pid],
            "postgres": server_processes("postgres"), "redis": server_processes("redis-server")}


def sustained(base: str, n: int, submit_some, finished, per_call: int = 1, clients: int = 8) -> float:
    """Jobs per second, from the first submission to the last of these ``n`` recorded
    finished; ``submit_some(http)`` submits ``per_call`` jobs and returns their ids,
    ``finished(ids)`` says which of ``ids`` have finished. Each
    client thread keeps one HTTP connection (a new client per job costs more CPU than
    the job: it loads the CA bundle into a new SSL context)."""
    ids: list[str] = []
    lock = threading.Lock()
    local = threading.local()

    def call(_):
        if not hasattr(local, "http"):
            local.http = httpx.Client(base_url=base, timeout=60, headers=HEADERS)
        submitted = submit_some(local.http)
        with lock:
            ids.extend(submitted)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(call, range(n // per_call)))
    # Each look asks only for the jobs not yet seen finished: a look costs the database
    # (whose CPU is measured) in proportion to the backlog, not to every job so far.
    pending = set(ids)
    while pending:
        pending -= finished(pending)
        if pending:
            time.sleep(0.05)
    return len(ids) / (time.perf_counter() - started)


def submit_batch(http: httpx.Client, size: int) -> list[str]:
    jobs = [NOOP] * size
    response = http.post("/api/v1/batches", json={"jobs": jobs})
    response.raise_for_status()
    return [job["id"] for job in response.json()["jobs"]]


def vitalq_finished(ids: set[str]) -> set[str]:
    """Which of ``ids`` the job table records finished (read directly: no request to
    the web server, whose CPU is being measured)."""
    from sqlalchemy import select

    from worker.db import session_scope
    from worker.models import Job

    with session_scope() as session:
        return set(session.scalars(select(Job.id).where(Job.id.in_(ids), Job.finished_at.is_not(None))))


def peer_finished(ids: set[str]) -> set[str]:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from bench.peer import PeerJob, engine

    with Session(engine) as session:
        return set(session.scalars(select(PeerJob.id).where(PeerJob.id.in_(ids), PeerJob.status == "done")))


def raw_latency(n: int) -> list[float]:
    """Raw Celery round-trip latencies (ms), one task at a time."""
    from bench.raw_celery import noop

    noop.delay().get(timeout=30)  # warm up
    latencies = []
    for _ in range(n):
        start = time.perf_counter()
        noop.delay().get(timeout=30)
        latencies.append((time.perf_counter() - start) * 1000)
    return latencies


def raw_throughput(n: int, late: bool = False) -> float:
    """Raw Celery tasks a second with all ``n`` in flight (``late``: as vitalq delivers them)."""
    from bench.raw_celery import noop, noop_late

    task = noop_late if late else noop
    start = time.perf_counter()
    results = [task.delay() for _ in range(n)]
    for result in results:
        result.get(timeout=60)
    return n / (time.perf_counter() - start)


def websocket_latency(base: str, http: httpx.Client, steps: int = 400) -> list[float]:
    job_id = submit(http, {"kind": "diagnostics.selftest", "params": {"duration_s": 4, "steps": steps}}, priority=9)
    ws = websocket.create_connection(base.replace("http", "ws", 1) + f"/ws/jobs/{job_id}", timeout=60, header=HEADERS)
    latencies = []
    try:
        while True:
            message = json.loads(ws.recv())
            received = time.time()
            if message["type"] == "progress":
                latencies.append((received - message["time"]) * 1000)
            if message["type"] == "final":
                break
    finally:
        ws.close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=400, help="jobs for the throughput runs")
    parser.add_argument("--latency-jobs", type=int, default=200, help="jobs for the submit-to-start latency")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes (both workers)")
    parser.add_argument("--batch", type=int, default=50, help="jobs per batch submission (0: no batches)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of the throughput runs, each run in turn")
    parser.add_argument("--quick", action="store_true", help="100 jobs, 50 for the latency, 3 rounds")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.latency_jobs, args.rounds = 100, 50, 3

    os.environ.setdefault("VITALQ_RATE_LIMIT_PER_MIN", "0")  # the bench is one client going flat out
    # ... whose whole run may be waiting at once, when the workers lag the submissions.
    os.environ.setdefault("VITALQ_MAX_QUEUED_PER_USER", str(max(1000, args.jobs)))
    embedded = prepare_services("vitalq-bench-")
    from worker import accounts

    token = accounts.create_user(f"bench-{os.getpid()}", admin=True)[1]  # a database used before has one
    HEADERS["Authorization"] = f"Bearer {token}"
    celery_worker = [sys.executable, "-m", "celery", "worker", "--concurrency", str(args.concurrency),
                     "--loglevel", "WARNING", "--without-mingle", "--without-gossip"]
    raw_worker = processes.ProcessSpec("raw-celery", celery_worker[:3] + ["-A", RAW_APP] + celery_worker[3:]
                                       + ["--queues", "raw"])
    raw_late_worker = processes.ProcessSpec("raw-celery-late", celery_worker[:3] + ["-A", RAW_APP] + celery_worker[3:]
                                            + ["--queues", "raw-late", "--prefetch-multiplier", "1", "--task-events"])
    peer_port = free_port()
    peer_web = processes.ProcessSpec("peer-web", [sys.executable, "-m", "gunicorn", "--worker-class", "gevent",
                                                  "--workers", "1", "--bind", f"127.0.0.1:{peer_port}",
                                                  "bench.peer:web"], env={"PEER_ROLE": "web"})
    peer_worker = processes.ProcessSpec("peer-worker", celery_worker[:3] + ["-A", "bench.peer"] + celery_worker[3:]
                                        + ["--queues", "peer"])
    peer_late_worker = processes.ProcessSpec("peer-worker-late", celery_worker[:3] + ["-A", "bench.peer"]
                                             + celery_worker[3:]
                                             + ["--queues", "peer-late", "--prefetch-multiplier", "1", "--task-events"])
    from bench.peer import Base, engine

    Base.metadata.create_all(engine)
    supervisor, base = start_vitalq(args.concurrency, extra=(raw_worker, raw_late_worker, peer_web, peer_worker,
                                                                  peer_late_worker))
    peer_base = f"http://127.0.0.1:{peer_port}"
    # Rounds of the four runs in turn: this box's speed drifts by tens of per cent over a
    # minute, so each round's ratios compare runs made seconds apart, and the medians
    # over rounds are what is reported.
    runs = ["vitalq", "vitalq batch", "vitalq selftest", "peer", "peer late", "raw", "raw late"]
    if not args.batch:
        runs.remove("vitalq batch")
    jobs_per_s: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, dict[str, float]] = {name: {} for name in runs}
    wall_s = dict.fromkeys(runs, 0.0)
    try:
        wait_answers(f"{peer_base}/jobs", method="POST")
        vitalq_meter = CpuMeter(process_groups(supervisor, "web", "worker-cpu"))
        peer_meter = CpuMeter(process_groups(supervisor, "peer-web", "peer-worker"))
        peer_late_meter = CpuMeter(process_groups(supervisor, "peer-web", "peer-worker-late"))
        raw_meter, raw_late_meter = (
            CpuMeter({name: pids for name, pids in process_groups(supervisor, "web", worker).items() if name != "web"})
            for worker in ("raw-celery", "raw-celery-late"))
        throughput_runs: dict[str, tuple[CpuMeter, Callable[[], float]]] = {
            "vitalq": (vitalq_meter, lambda: sustained(
                base, args.jobs, lambda client: [submit(client, NOOP)], vitalq_finished)),
            "vitalq selftest": (vitalq_meter, lambda: sustained(
                base, args.jobs, lambda client: [submit(client, SELFTEST)], vitalq_finished)),
            "vitalq batch": (vitalq_meter, lambda: sustained(
                base, args.jobs, lambda client: submit_batch(client, args.batch), vitalq_finished,
                per_call=args.batch)),
            "peer": (peer_meter, lambda: sustained(
                peer_base, args.jobs, lambda client: [client.post("/jobs").json()["id"]], peer_finished)),
            "peer late": (peer_late_meter, lambda: sustained(
                peer_base, args.jobs, lambda client: [client.post("/jobs?late=1").json()["id"]], peer_finished)),
            "raw": (raw_meter, lambda: raw_throughput(args.jobs)),
            "raw late": (raw_late_meter, lambda: raw_throughput(args.jobs, late=True)),
        }
        with httpx.Client(base_url=base, timeout=60, headers=HEADERS) as http:
            submit_to_start(http, 10)  # warm up
            latency = submit_to_start(http, args.latency_jobs)
            ws_latency = websocket_latency(base, http)
        for path in ("/jobs", "/jobs?late=1"):  # warm up
            sustained(peer_base, 50, lambda client: [client.post(path).json()["id"]], peer_finished)
        raw_throughput(50)  # warm up
        raw_throughput(50, late=True)
        raw_latencies = raw_latency(min(args.jobs, 300))
        for _ in range(args.rounds):
            for name in runs:
                meter, run = throughput_runs[name]
                meter.start()
                began = time.perf_counter()
                jobs_per_s[name].append(run())
                wall_s[name] += time.perf_counter() - began
                for group, seconds in meter.stop().items():
                    cpu[name][group] = cpu[name].get(group, 0.0) + seconds
    finally:
        supervisor.stop()
        remove_services(embedded)

    database = os.environ["DATABASE_URL"].split("://")[0]
    print(f"\nvitalq queue benchmark: database {database}, redis {'embedded' if embedded else os.environ['REDIS_URL']}, "
          f"{args.concurrency} worker processes, {os.cpu_count()} cores\n")
    print(f"{'measure':58} {'p50':>9} {'p95':>9} {'p99':>9}")
    rows = [
        ("submit-to-start, selftest on an idle worker (ms)", latency),
        ("raw Celery apply_async -> result round trip (ms)", raw_latencies),
        ("websocket event, worker publish -> client (ms)", ws_latency),
    ]
    for name, values in rows:
        print(f"{name:58} {percentile(values, 50):9.2f} {percentile(values, 95):9.2f} {percentile(values, 99):9.2f}")

    def share(name: str, of: str) -> str:
        ratios = [100 * mine / theirs for mine, theirs in zip(jobs_per_s[name], jobs_per_s[of])]
        return f"{statistics.median(ratios):4.0f}% ({min(ratios):.0f}-{max(ratios):.0f})"

    references = {"peer": "of peer", "peer late": "of peer, late ack", "raw": "of raw", "raw late": "of raw, late ack"}
    print(f"\nthroughput, 8 clients each keeping its connection, median of {args.rounds} rounds"
          f"\n{'(shares: median of the per-round ratios, and their range)':58} {'jobs/s':>9}"
          + "".join(f" {heading:>17}" for heading in references.values()))
    labels = {"vitalq": "vitalq end to end, no-op job (HTTP, row, worker, events)",
              "vitalq batch": f"vitalq, no-op jobs in batches of {args.batch} (POST /batches)",
              "vitalq selftest": "vitalq end to end, selftest job (+ progress, artifact)",
              "peer": "peer: Flask/gevent POST + one SQLAlchemy row + Celery task",
              "peer late": "peer, late ack + prefetch 1 + events (vitalq's way)",
              "raw": "raw Celery apply_async, no-op task, Redis result backend",
              "raw late": "raw Celery, late ack + prefetch 1 + events (vitalq's way)"}
    for name in runs:
        print(f"{labels[name]:58} {statistics.median(jobs_per_s[name]):9.1f}"
              + "".join(f" {share(name, reference):>17}" for reference in references))
    groups = ("client", "web", "worker child", "worker main", "postgres", "redis")
    # Cores busy: the CPU seconds of every process measured over the runs' wall time. Short
    # of the machine's cores, the jobs waited (on round trips, on the disk) rather than
    # computed, and CPU saved per job buys less throughput than waits cut.
    print(f"\n{'CPU ms per job, in the throughput runs':37}" + "".join(f"{g:>13}" for g in groups)
          + f"{'total':>9}{'cores busy':>12}")
    cpu_labels = {"raw": "raw Celery no-op", "raw late": "raw Celery no-op, as vitalq delivers",
                  "peer": "peer (HTTP + row + task)", "peer late": "peer, as vitalq delivers",
                  "vitalq": "vitalq, no-op job", "vitalq batch": f"vitalq, no-op, batches of {args.batch}",
                  "vitalq selftest": "vitalq, selftest job"}
    for name, label in cpu_labels.items():
        if name not in runs:
            continue
        per_job = {g: 1000 * cpu[name].get(g, 0.0) / (args.jobs * args.rounds) for g in groups}
        print(f"{label:37}" + "".join(f"{per_job[g]:13.2f}" if g in cpu[name] else f"{'-':>13}" for g in groups)
              + f"{sum(per_job.values()):9.2f}{sum(cpu[name].values()) / wall_s[name]:12.2f}")
    print(f"\n(n = {len(latency)} latency jobs, {args.jobs} jobs a throughput run, {len(ws_latency)} websocket events; "
          f"mean submit-to-start {statistics.mean(latency):.2f} ms)")


def wait_answers(url: str, method: str = "GET", timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.request(method, url, timeout=5).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not answer")


if __name__ == "__main__":
    main()
