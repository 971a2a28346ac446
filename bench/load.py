"""Load, websocket fan-out and soak: vitalq under many clients, in one run.

Starts its own vitalq (gunicorn web, a cpu worker) on PostgreSQL and Redis when
DATABASE_URL and REDIS_URL are set, else on SQLite and an embedded Redis, then prints:

1. **Load**: ``--clients`` concurrent clients, each its own user and token, for
   ``--minutes``: submit a selftest job, poll it every ``--poll-s`` (1 s) until it
   finishes, pause about ``--think-s`` (5 s, drawn from 0.5 to 1.5 times that so
   that the clients do not march in step), again. The first ``--warmup-s`` are not
   counted (new connections, first imports). Requests per second, p50/p95/p99 latency
   of submissions and of polls, errors (goal: none; submit p95 under 50 ms).
   **Capacity**: then, for ``--capacity-minutes``, the same clients with no pause at all
   (each polls every 0.1 s and submits again at once): the most requests and jobs a
   second this machine serves. There latency is the queue's length over the rate
   (Little's law), whatever the code does, so no latency goal applies to it.
2. **Websockets**: ``--websockets`` clients held open on ten running jobs (events every
   0.1 s): event latency from the worker's publish to the client (p50/p95/p99; goal: p95
   under 50 ms) and events dropped (each client checks its sequence numbers; goal: none).
   Events published while the clients were still connecting are counted apart: they
   wait in the sockets of the clients already connected until all are, and start reading.
3. **Soak**: resident memory of the web and worker processes (with their children) at
   the start and end of ``--soak-minutes`` of steady load from 20 clients.

    python bench/load.py                       # the full run: 5 min, 1000 websockets, 30 min soak
    python bench/load.py --minutes 1 --websockets 200 --soak-minutes 2   # a quick look

Every client runs on this same 2-core machine as the server; it takes its share of CPU.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import httpx  # noqa: E402
import websocket  # noqa: E402

from bench.stack import prepare_services, remove_services, start_vitalq  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(int(round(q / 100 * (len(values) - 1))), len(values) - 1)]


class Recorder:
    """Latencies and errors from many threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = {}
        self.errors: dict[str, int] = {}

    def add(self, name: str, ms: float) -> None:
        with self.lock:
            self.latencies.setdefault(name, []).append(ms)

    def error(self, what: str) -> None:
        with self.lock:
            self.errors[what] = self.errors.get(what, 0) + 1


def timed(recorder: Recorder, name: str, call, counted: bool = True):
    started = time.perf_counter()
    try:
        response = call()
    except httpx.HTTPError as exc:
        recorder.error(f"{name}: {type(exc).__name__}")
        return None
    if counted:
        recorder.add(name, (time.perf_counter() - started) * 1000)
    if response.status_code >= 400:
        recorder.error(f"{name}: HTTP {response.status_code}")
        return None
    return response


def client_loop(base: str, token: str, counted_from: float, until: float, recorder: Recorder, poll_s: float,
                think_s: float) -> None:
    with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
        time.sleep(random.uniform(0, poll_s + think_s))  # clients that did not all start in the same instant
        while time.monotonic() < until:
            submitted = timed(recorder, "submit", lambda: http.post(
                "/api/v1/jobs", json={"kind": "diagnostics.selftest", "params": {"duration_s": 0, "steps": 1}}),
                counted=time.monotonic() >= counted_from)
            if submitted is None:
                time.sleep(0.5)
                continue
            job_id = submitted.json()["id"]
            while time.monotonic() < until + 60:
                time.sleep(poll_s)
                polled = timed(recorder, "poll", lambda: http.get(f"/api/v1/jobs/{job_id}"),
                               counted=time.monotonic() >= counted_from)
                if polled is not None and polled.json()["finished_at"]:
                    if polled.json()["status"] != "succeeded":
                        recorder.error(f"job {polled.json()['status']}")
                    break
            time.sleep(think_s * random.uniform(0.5, 1.5))


def load_phase(base: str, tokens: list[str], minutes: float, poll_s: float, think_s: float,
               warmup_s: float = 0.0) -> tuple[Recorder, float]:
    """Runs ``warmup_s`` uncounted, then ``minutes``; returns the figures and the seconds counted."""
    recorder = Recorder()
    counted_from = time.monotonic() + warmup_s
    until = counted_from + minutes * 60
    threads = [threading.Thread(target=client_loop, args=(base, token, counted_from, until, recorder, poll_s, think_s))
               for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return recorder, until - counted_from


def websocket_phase(base: str, tokens: list[str], clients: int, jobs: int = 10) -> dict:
    headers = {"Authorization": f"Bearer {tokens[0]}"}
    with httpx.Client(base_url=base, timeout=30, headers=headers) as http:
        job_ids = [http.post("/api/v1/jobs", json={"kind": "diagnostics.selftest", "priority": 9,
                                                  "params": {"duration_s": 25, "steps": 250}}).json()["id"]
                   for _ in range(jobs)]
    recorder = Recorder()
    counts = {"connected": 0, "dropped": 0, "failed": 0, "events": 0}
    lock = threading.Lock()
    ready = threading.Barrier(clients + 1, timeout=120)

    def listen(index: int) -> None:
        job_id = job_ids[index % jobs]
        try:
            ws = websocket.create_connection(base.replace("http", "ws", 1) + f"/ws/jobs/{job_id}", timeout=120,
                                             header=headers)
        except Exception:
            with lock:
                counts["failed"] += 1
            ready.wait()
            return
        with lock:
            counts["connected"] += 1
        ready.wait()
        released = time.time()
        seqs = []
        try:
            while True:
                message = json.loads(ws.recv())
                if message["type"] == "progress":
                    # Events published while the other clients were still connecting waited in
                    # this socket until the barrier let the thread read: not the server's delay.
                    name = "event" if message["time"] >= released else "event before all connected"
                    recorder.add(name, (time.time() - message["time"]) * 1000)
                if "seq" in message:
                    seqs.append(message["seq"])
                if message["type"] == "final":
                    break
        except Exception:
            with lock:
                counts["failed"] += 1
        finally:
            ws.close()
        if seqs:
            missing = (seqs[-1] - seqs[0] + 1) - len(set(seqs))
            with lock:
                counts["dropped"] += missing
                counts["events"] += len(seqs)

    threads = [threading.Thread(target=listen, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    ready.wait()
    for thread in threads:
        thread.join(timeout=300)
    return {"recorder": recorder, **counts}


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its descendants, in MB."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid=,rss="], capture_output=True, text=True).stdout.split("\n")
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for line in filter(None, (row.split() for row in out)):
        child, parent, kb = map(int, line)
        children.setdefault(parent, []).append(child)
        rss[child] = kb
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        total += rss.get(current, 0)
        stack.extend(children.get(current, []))
    return total / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--poll-s", type=float, default=1.0, help="seconds between two polls of a job")
    parser.add_argument("--think-s", type=float, default=5.0, help="seconds a client pauses between jobs")
    parser.add_argument("--capacity-minutes", type=float, default=1)
    parser.add_argument("--warmup-s", type=float, default=15.0, help="seconds of load not counted, at first")
    parser.add_argument("--websockets", type=int, default=1000)
    parser.add_argument("--soak-minutes", type=float, default=30)
    parser.add_argument("--concurrency", type=int, default=2, help="processes of the cpu worker")
    parser.add_argument("--quick", action="store_true",
                        help="50 clients for a minute, 200 websockets, a 2-minute soak")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.minutes, args.capacity_minutes, args.warmup_s = 50, 1.0, 0.5, 5.0
        args.websockets, args.soak_minutes = 200, 2.0

    embedded = prepare_services("vitalq-load-")
    from worker import accounts

    tokens = [accounts.create_user(f"load-{i}")[1] for i in range(max(args.clients, 20))]
    supervisor, base = start_vitalq(args.concurrency, {"VITALQ_LOG_FORMAT": "json"})
    try:
        web_pid, worker_pid = supervisor.pid("web"), supervisor.pid("worker-cpu")

        load, load_s = load_phase(base, tokens[: args.clients], args.minutes, args.poll_s, args.think_s,
                                   args.warmup_s)
        capacity, capacity_s = load_phase(base, tokens[: args.clients], args.capacity_minutes, 0.1, 0.0)
        sockets = websocket_phase(base, tokens, args.websockets)
        rss_start = (tree_rss_mb(web_pid), tree_rss_mb(worker_pid))
        soak, soak_s = load_phase(base, tokens[:20], args.soak_minutes, args.poll_s, 0.0)
        rss_end = (tree_rss_mb(web_pid), tree_rss_mb(worker_pid))
    finally:
        supervisor.stop()
        remove_services(embedded)

    database = os.environ["DATABASE_URL"].split("://")[0]
    print(f"\nvitalq load benchmark: database {database}, redis {'embedded' if embedded else 'server'}, "
          f"{args.concurrency} worker processes, {os.cpu_count()} cores (clients on the same machine)\n")
    for title, recorder, seconds in (
            (f"1. {args.clients} clients for {args.minutes:g} min, polling every {args.poll_s:g} s, "
             f"pausing {args.think_s:g} s between jobs", load, load_s),
            (f"   capacity: the same clients for {args.capacity_minutes:g} min, polling every 0.1 s, "
             "no pause", capacity, capacity_s)):
        requests = sum(len(v) for v in recorder.latencies.values())
        print(f"{title}: {requests / seconds:.1f} requests/s, "
              f"{len(recorder.latencies.get('submit', [])) / seconds:.1f} jobs/s, errors "
              f"{sum(recorder.errors.values())} {recorder.errors or ''}")
        print(f"   {'latency (ms)':28} {'p50':>8} {'p95':>8} {'p99':>8} {'n':>8}")
        for name in ("submit", "poll"):
            values = recorder.latencies.get(name, [])
            print(f"   {name:28} {percentile(values, 50):8.1f} {percentile(values, 95):8.1f} "
                  f"{percentile(values, 99):8.1f} {len(values):8d}")
    print(f"\n2. {args.websockets} websockets on 10 jobs: connected {sockets['connected']}, failed {sockets['failed']}, "
          f"events received {sockets['events']}, dropped {sockets['dropped']}")
    print(f"   {'event latency (ms)':28} {'p50':>8} {'p95':>8} {'p99':>8} {'n':>8}")
    for name, label in (("event", "after all connected"), ("event before all connected", "while connecting (held)")):
        events = sockets["recorder"].latencies.get(name, [])
        print(f"   {label:28} {percentile(events, 50):8.1f} {percentile(events, 95):8.1f} "
              f"{percentile(events, 99):8.1f} {len(events):8d}")
    soak_rate = sum(len(v) for v in soak.latencies.values()) / soak_s
    print(f"\n3. soak, 20 clients polling every {args.poll_s:g} s for {args.soak_minutes:g} min ({soak_rate:.1f}"
          f" requests/s, errors {sum(soak.errors.values())}): resident memory (MB)")
    print(f"   {'process':28} {'start':>8} {'end':>8} {'change':>8}")
    for name, start, end in (("web (gunicorn)", rss_start[0], rss_end[0]), ("cpu worker (+ pool)", rss_start[1], rss_end[1])):
        print(f"   {name:28} {start:8.1f} {end:8.1f} {end - start:+8.1f}")


if __name__ == "__main__":
    main()
