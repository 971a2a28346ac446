"""A big result does not hold up the web tier.

A ``risk.predict`` job on a CSV of a million rows (run for real, by a worker) leaves a
result of about 80 MB. Its record keeps a bounded summary and the whole is the job's
``result.json`` artifact, streamed on download. Prints the latency (p50, p95, max, ms)
of ``GET`` on that job, of the jobs list and of ``/health/live``, first with nothing
else going on, then while ten clients download the result over and over, and the web
process's resident memory after each phase. Before records were bounded, one ``GET`` of
such a job took 5 s and ``/health/live`` stalled for 15 s.

    python bench/records.py [--quick] [--rows 1000000] [--clients 10] [--seconds 10]

With ``DATABASE_URL`` and ``REDIS_URL`` set it runs on those servers, else on SQLite and
an embedded Redis in a temporary folder (removed at the end).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, bench/ comes first on sys.path, where bench/queue.py would shadow the
# standard library's queue; the repository root is what is wanted.
ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import argparse  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from bench.stack import children, prepare_services, remove_services, start_vitalq, status_kb  # noqa: E402
from ml.risk.features import FEATURES  # noqa: E402


def write_features_csv(path: Path, rows: int, seed: int = 0) -> None:
    """Plausible HRV features, ``rows`` of them, written in blocks."""
    rng = np.random.default_rng(seed)
    with open(path, "w") as file:
        file.write(",".join(f.name for f in FEATURES) + "\n")
        for start in range(0, rows, 100_000):
            n = min(100_000, rows - start)
            columns = [rng.uniform(f.low + 0.1 * (f.high - f.low), f.low + 0.4 * (f.high - f.low), n)
                       for f in FEATURES]
            np.savetxt(file, np.column_stack(columns), delimiter=",", fmt="%.4g")


def download_forever(url: str, token: str, stop_at: float, counts) -> None:
    """One client downloading ``url`` again and again until ``stop_at`` (monotonic), at
    the lowest CPU priority: on a small machine the clients would otherwise take the cores
    from the server they measure."""
    os.nice(19)
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=120) as client:
        while time.monotonic() < stop_at:
            with client.stream("GET", url) as response:
                for chunk in response.iter_bytes(1 << 20):
                    counts[1] += len(chunk)
            counts[0] += 1


def probe(base: str, token: str, job_id: str, seconds: float) -> dict[str, np.ndarray]:
    """Latencies (ms) of the three reads, in turn, for ``seconds``."""
    paths = {"GET job": f"/api/v1/jobs/{job_id}", "GET jobs list": "/api/v1/jobs", "GET /health/live": "/health/live"}
    times: dict[str, list[float]] = {name: [] for name in paths}
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for name, path in paths.items():
                start = time.perf_counter()
                assert client.get(path).status_code == 200
                times[name].append((time.perf_counter() - start) * 1000)
            time.sleep(0.01)
    return {name: np.array(values) for name, values in times.items()}


def web_rss_mb(master_pid: int) -> float:
    """Resident memory of the web server (its master and worker processes)."""
    return sum(status_kb(pid, "VmRSS") for pid in [master_pid, *children(master_pid)]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="200,000 rows, 5 s a phase")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.seconds = 200_000, 5.0

    embedded = prepare_services("vitalq-records-bench-")
    data_dir = Path(os.environ["VITALQ_DATA_DIR"])
    supervisor, base = start_vitalq(1, env={"VITALQ_LOG_FORMAT": "text", "VITALQ_RATE_LIMIT_PER_MIN": "0"})
    try:
        from worker import accounts

        token = accounts.create_user(f"bench-{os.getpid()}")[1]
        csv_path = data_dir / "features.csv"
        write_features_csv(csv_path, args.rows)
        started = time.perf_counter()
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=600) as client:
            with open(csv_path, "rb") as upload:
                job = client.post("/api/v1/jobs", data={"kind": "risk.predict"},
                                  files={"file": ("features.csv", upload, "text/csv")}).json()
            while not (job := client.get(f"/api/v1/jobs/{job['id']}").json())["finished_at"]:
                time.sleep(0.5)
        if job["status"] != "succeeded":
            raise SystemExit(f"the prediction failed: {job['error']}")
        result = job["result"]
        print(f"risk.predict on {args.rows:,} CSV rows: {time.perf_counter() - started:.1f} s; result "
              f"{result.get('result_bytes', 0) / 1e6:.1f} MB in result.json, the record holding "
              f"{len(httpx.Response(200, json=result).content) / 1e3:.1f} KB of it\n")

        web_pid = supervisor.pid("web")
        phases = {"idle": probe(base, token, job["id"], args.seconds)}
        rss = {"idle": web_rss_mb(web_pid)}
        counts = [multiprocessing.Array("d", 2) for _ in range(args.clients)]
        stop_at = time.monotonic() + args.seconds + 1
        url = f"{base}/api/v1/jobs/{job['id']}/artifacts/result.json"
        clients = [multiprocessing.Process(target=download_forever, args=(url, token, stop_at, count))
                   for count in counts]
        for client_process in clients:
            client_process.start()
        time.sleep(1)  # every download under way
        label = f"{args.clients} downloading"
        phases[label] = probe(base, token, job["id"], args.seconds)
        rss[label] = web_rss_mb(web_pid)
        for client_process in clients:
            client_process.join()
        downloaded = sum(count[1] for count in counts)

        print(f"{'read':18}" + "".join(f"{phase + ' p50/p95/max ms':>36}" for phase in phases))
        for name in phases["idle"]:
            print(f"{name:18}" + "".join(
                f"{np.percentile(t[name], 50):>16.1f} {np.percentile(t[name], 95):>9.1f} {t[name].max():>9.1f}"
                for t in phases.values()))
        print(f"{'web RSS MB':18}" + "".join(f"{rss[phase]:>36.0f}" for phase in phases))
        print(f"\n{args.clients} clients downloaded {sum(int(c[0]) for c in counts)} whole results, "
              f"{downloaded / 1e6:,.0f} MB at {downloaded / 1e6 / (args.seconds + 1):,.0f} MB/s")
    finally:
        supervisor.stop()
        remove_services(embedded)


if __name__ == "__main__":
    main()
