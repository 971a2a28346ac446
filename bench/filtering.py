"""Filtering benchmark: vitalq's chunked zero-phase filter against the whole array in memory.

For float32 ``.npy`` files of growing size (up to 2 GB), prints wall time, throughput
and peak resident memory of:

- vitalq: ``ml.signals.filter_source`` streaming the file in chunks (exactly sosfiltfilt);
- scipy: ``np.load`` then ``scipy.signal.sosfiltfilt`` on the whole array;
- vitalDSP: ``SignalFiltering.butterworth`` (``filtfilt`` on the whole array), if the
  ``vitaldsp`` package is installed (``pip install vitaldsp``; it is not a dependency).

Each run is a separate process, so its peak resident set (``VmHWM``) is its own.
In-memory runs get an address-space limit (``--memory-limit-gb``) so that a size that
does not fit fails with MemoryError instead of taking the machine down.

    python bench/filtering.py [--sizes-mb 20 200 2000] [--memory-limit-gb 14]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, bench/ comes first on sys.path, where bench/queue.py would shadow the
# standard library's queue; the repository root is what is wanted.
ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import argparse
import json
import os
import subprocess
import tempfile

import numpy as np
FS = 250.0
BAND = (0.5, 8.0)
ORDER = 4

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import numpy as np
method, path, out, limit = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
from scipy import signal
FS, BAND, ORDER = 250.0, (0.5, 8.0), 4
if limit:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
start = time.perf_counter()
try:
    if method == "vitalq":
        from ml.signals import FilterSpec, design_sos, filter_source, open_signal
        source = open_signal(path, {"fs": FS}, out.parent)
        sos = design_sos(FilterSpec("butter", "bandpass", BAND, ORDER), FS)
        filter_source(source, sos, out, out_dtype="float32")
    elif method == "scipy":
        x = np.load(path)
        sos = signal.butter(ORDER, BAND, btype="bandpass", output="sos", fs=FS)
        np.save(out, signal.sosfiltfilt(sos, x).astype(np.float32))
    elif method == "vitaldsp":
        from vitalDSP.filtering.signal_filtering import SignalFiltering
        x = np.load(path)
        y = SignalFiltering(x).bandpass(lowcut=BAND[0], highcut=BAND[1], fs=FS, order=ORDER, filter_type="butter")
        np.save(out, np.asarray(y, dtype=np.float32))
    status = "ok"
except MemoryError:
    status = "MemoryError"
except ImportError as exc:
    status = f"not installed ({exc.name})"
elapsed = time.perf_counter() - start
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec.
hwm_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"status": status, "seconds": elapsed, "peak_rss_mb": hwm_kb / 1024}))
"""


def make_signal(path: Path, n: int, block: int = 1 << 24) -> None:
    """A synthetic PPG-like float32 signal, written block by block."""
    rng = np.random.default_rng(0)
    with open(path, "wb") as file:
        np.lib.format.write_array_header_1_0(file, {"descr": "<f4", "fortran_order": False, "shape": (n,)})
        for start in range(0, n, block):
            t = np.arange(start, min(start + block, n)) / FS
            x = 500 + 40 * np.sin(2 * np.pi * 1.2 * t) + 10 * np.sin(2 * np.pi * 0.25 * t) + rng.normal(0, 5, t.size)
            file.write(x.astype(np.float32).tobytes())


def run(method: str, path: Path, out: Path, limit_bytes: int) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, method, str(path), str(out), str(limit_bytes)],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"status": f"crashed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}",
                "seconds": float("nan"), "peak_rss_mb": float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[20, 200, 2000])
    parser.add_argument("--memory-limit-gb", type=float, default=14.0,
                        help="address-space limit of the in-memory runs")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    limit = int(args.memory_limit_gb * 1024**3)

    workdir = Path(tempfile.mkdtemp(prefix="vitalq-filter-bench-", dir=args.workdir))
    print(f"butterworth band-pass {BAND[0]}-{BAND[1]} Hz, order {ORDER}, fs {FS:g} Hz, zero-phase; float32 .npy in, "
          f"float32 .npy out; {os.cpu_count()} cores; in-memory runs limited to {args.memory_limit_gb:g} GB\n")
    print(f"{'file':>9} {'method':10} {'wall s':>8} {'Msamples/s':>11} {'peak RSS MB':>12} {'max |y - sosfiltfilt|':>22}  status")
    for size_mb in args.sizes_mb:
        n = int(size_mb * 1e6 / 4)
        path = workdir / f"signal-{n}.npy"
        make_signal(path, n)
        outputs, figures = {}, {}
        for method in ("vitalq", "scipy", "vitaldsp"):
            out = workdir / f"{method}-{n}.npy"
            figures[method] = run(method, path, out, 0 if method == "vitalq" else limit)
            if figures[method]["status"] == "ok":
                outputs[method] = out
        for method, result in figures.items():
            ok = result["status"] == "ok"
            difference = ""
            if ok and method != "scipy" and "scipy" in outputs:
                difference = f"{_max_abs_difference(outputs[method], outputs['scipy']):.3g}"
            rate = n / result["seconds"] / 1e6 if ok else float("nan")
            print(f"{size_mb:>7g}MB {method:10} {result['seconds']:8.2f} {rate:11.1f} {result['peak_rss_mb']:12.0f} "
                  f"{difference:>22}  {result['status']}", flush=True)
        for out in outputs.values():
            out.unlink(missing_ok=True)
        path.unlink()


def _max_abs_difference(a: Path, b: Path, block: int = 1 << 24) -> float:
    x, y = np.load(a, mmap_mode="r"), np.load(b, mmap_mode="r")
    return max(float(np.max(np.abs(x[i:i + block].astype(np.float64) - y[i:i + block])))
               for i in range(0, x.shape[0], block))


if __name__ == "__main__":
    main()
