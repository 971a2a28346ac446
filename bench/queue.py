"""Queue benchmark: how fast vitalq turns a submission into a running, recorded job.

Prints, in one run, against real processes (gunicorn web, Celery workers, Redis and the
database given by DATABASE_URL, or SQLite and an embedded Redis when unset):

- submit-to-start latency of selftest jobs on an idle worker (p50/p95/p99);
- sustained end-to-end jobs per second with full persistence (HTTP submit, job row,
  queue, worker, progress events, result row), beside raw Celery ``apply_async``
  round trips of a no-op task on the same Redis, with a Redis result backend;
- websocket event latency, from the worker's publish to the client (p50/p95).

    python bench/queue.py [--jobs 400] [--concurrency 2]
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

import httpx
import websocket

from bench.stack import prepare_services, start_vitalq  # noqa: E402
from vitalq import processes  # noqa: E402

RAW_APP = "bench.raw_celery"
#: The bench user's token, for every request and websocket.
HEADERS: dict[str, str] = {}


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(int(round(q / 100 * (len(values) - 1))), len(values) - 1)]


def submit(http: httpx.Client, params: dict, priority: int = 5) -> str:
    response = http.post("/api/v1/jobs", json={"kind": "diagnostics.selftest", "params": params, "priority": priority})
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
        job = wait_finished(http, submit(http, {"duration_s": 0, "steps": 1}))
        created, started = (datetime.fromisoformat(job[k]) for k in ("created_at", "started_at"))
        latencies.append((started - created).total_seconds() * 1000)
    return latencies


def sustained(base: str, n: int, clients: int = 8) -> float:
    """Jobs per second, from the first submission to the last job recorded finished."""
    ids: list[str] = []
    lock = threading.Lock()

    def one(_):
        with httpx.Client(base_url=base, timeout=60, headers=HEADERS) as http:
            job_id = submit(http, {"duration_s": 0, "steps": 1})
            with lock:
                ids.append(job_id)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(n)))
    with httpx.Client(base_url=base, timeout=60, headers=HEADERS) as http:
        while http.get("/api/v1/jobs", params={"status": "succeeded", "limit": 1}).json()["total"] < n:
            time.sleep(0.01)
    return n / (time.perf_counter() - started)


def raw_celery(n: int) -> tuple[list[float], float]:
    """Round-trip latencies (ms) one at a time, and throughput with everything in flight."""
    from bench.raw_celery import noop

    noop.delay().get(timeout=30)  # warm up
    latencies = []
    for _ in range(min(n, 300)):
        start = time.perf_counter()
        noop.delay().get(timeout=30)
        latencies.append((time.perf_counter() - start) * 1000)
    start = time.perf_counter()
    results = [noop.delay() for _ in range(n)]
    for result in results:
        result.get(timeout=60)
    return latencies, n / (time.perf_counter() - start)


def websocket_latency(base: str, http: httpx.Client, steps: int = 400) -> list[float]:
    job_id = submit(http, {"duration_s": 4, "steps": steps}, priority=9)
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
    args = parser.parse_args()

    os.environ.setdefault("VITALQ_RATE_LIMIT_PER_MIN", "0")  # the bench is one client going flat out
    embedded = prepare_services("vitalq-bench-")
    from worker import accounts

    token = accounts.create_user("bench", admin=True)[1]
    HEADERS["Authorization"] = f"Bearer {token}"
    raw_worker = processes.ProcessSpec("raw-celery", [sys.executable, "-m", "celery", "-A", RAW_APP, "worker",
                                                      "--concurrency", str(args.concurrency), "--queues", "raw",
                                                      "--loglevel", "WARNING"])
    supervisor, base = start_vitalq(args.concurrency, extra=(raw_worker,))
    try:
        with httpx.Client(base_url=base, timeout=60, headers=HEADERS) as http:
            submit_to_start(http, 10)  # warm up
            latency = submit_to_start(http, args.latency_jobs)
            throughput = sustained(base, args.jobs)
            ws_latency = websocket_latency(base, http)
        raw_latency, raw_throughput = raw_celery(args.jobs)
    finally:
        supervisor.stop()
        if embedded:
            embedded.stop()

    database = os.environ["DATABASE_URL"].split("://")[0]
    print(f"\nvitalq queue benchmark: database {database}, redis {'embedded' if embedded else os.environ['REDIS_URL']}, "
          f"{args.concurrency} worker processes, {os.cpu_count()} cores\n")
    print(f"{'measure':58} {'p50':>9} {'p95':>9} {'p99':>9}")
    rows = [
        ("submit-to-start, selftest on an idle worker (ms)", latency),
        ("raw Celery apply_async -> result round trip (ms)", raw_latency),
        ("websocket event, worker publish -> client (ms)", ws_latency),
    ]
    for name, values in rows:
        print(f"{name:58} {percentile(values, 50):9.2f} {percentile(values, 95):9.2f} {percentile(values, 99):9.2f}")
    print(f"\n{'throughput':58} {'jobs/s':>9}")
    print(f"{'vitalq end to end (HTTP, job row, worker, events, result)':58} {throughput:9.1f}")
    print(f"{'raw Celery apply_async, no-op task, Redis result backend':58} {raw_throughput:9.1f}")
    print(f"\n(n = {len(latency)} latency jobs, {args.jobs} throughput jobs, {len(ws_latency)} websocket events; "
          f"mean submit-to-start {statistics.mean(latency):.2f} ms)")


if __name__ == "__main__":
    main()
