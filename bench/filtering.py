"""Filtering benchmark: vitalq's chunked zero-phase filter against the whole array in memory.

For float32 ``.npy`` files of growing size (up to 2 GB), prints wall time, throughput
and peak resident memory of:

- vitalq: ``ml.signals.filter_source`` streaming the file in chunks (exactly sosfiltfilt);
- scipy: ``np.load`` then ``scipy.signal.sosfiltfilt`` on the whole array;
- vitalDSP: ``SignalFiltering.butterworth`` (``filtfilt`` on the whole array), if the
  ``vitaldsp`` package is installed (``pip install vitaldsp``; it is not a dependency).

Then, for one raw int8 upload (``--shape-mb``, 32 MB) declared with 1 to 4,096
channels, the whole of a ``signal.filter`` job's work (``ml.signals.filter_file``: the
filtered file, the preview and the statistics) beside scipy in memory, with the peak
resident set, and what the run added to what the process held after its imports. Memory
must follow the bytes, not the shape: before chunks were sized in bytes across
channels, this upload declared as 1,024 channels took a worker to 1.3 GB.

Each run is a separate process, so its peak resident set (``VmHWM``) is its own.
In-memory runs get an address-space limit (``--memory-limit-gb``) so that a size that
does not fit fails with MemoryError instead of taking the machine down.

    python bench/filtering.py [--quick] [--sizes-mb 20 200 2000] [--channels 1 16 256 1024 4096]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, bench/ comes first on sys.path, where bench/queue.py would shadow the
# standard library's queue; the repository root is what is wanted.
ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import argparse
import os
import tempfile

import numpy as np

from bench import measured

FS = 250.0
BAND = (0.5, 8.0)
ORDER = 4

#: Before the memory baseline: the arguments, numpy and scipy, and vitalq's job code.
SETUP = f"""
from pathlib import Path
import numpy as np
from scipy import signal
method, path, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
channels = int(sys.argv[4]) if len(sys.argv) > 4 else 1
FS, BAND, ORDER = {FS!r}, {BAND!r}, {ORDER!r}
if method == "vitalq-job":
    from ml.signals import filter_file
"""
#: Each way of filtering one file into ``out`` (``bench.measured``).
BODY = """
if method == "vitalq-job":
    params = {"format": "raw", "dtype": "int8", "n_channels": channels, "fs": FS, "family": "butter",
              "btype": "bandpass", "cutoff_hz": list(BAND), "order": ORDER, "zero_phase": True,
              "nan_policy": "raise", "output_dtype": "float32", "chunk_size": 1 << 20, "preview_points": 2000}
    filter_file(path, params, lambda name: out.parent / f"{out.stem}-{name}", out.parent)
elif method == "scipy-shape":
    x = np.fromfile(path, dtype=np.int8).reshape(-1, channels).astype(np.float64)
    sos = signal.butter(ORDER, BAND, btype="bandpass", output="sos", fs=FS)
    np.save(out, signal.sosfiltfilt(sos, x, axis=0).astype(np.float32))
elif method == "vitalq":
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


def run(method: str, path: Path, out: Path, limit_bytes: int, channels: int = 1) -> dict:
    return measured.run(BODY, [method, path, out, channels], setup=SETUP, limit_bytes=limit_bytes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20 MB only, and 1, 256 and 4096 channels")
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[20, 200, 2000])
    parser.add_argument("--channels", type=int, nargs="+", default=[1, 16, 256, 1024, 4096])
    parser.add_argument("--shape-mb", type=float, default=32)
    parser.add_argument("--memory-limit-gb", type=float, default=14.0,
                        help="address-space limit of the in-memory runs")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.sizes_mb, args.channels = [20], [1, 256, 4096]
    limit = int(args.memory_limit_gb * 1024**3)
    with tempfile.TemporaryDirectory(prefix="vitalq-filter-bench-", dir=args.workdir) as workdir:
        print(f"butterworth band-pass {BAND[0]}-{BAND[1]} Hz, order {ORDER}, fs {FS:g} Hz, zero-phase; "
              f"{os.cpu_count()} cores; in-memory runs limited to {args.memory_limit_gb:g} GB\n")
        by_size(Path(workdir), args.sizes_mb, limit)
        by_shape(Path(workdir), args.shape_mb, args.channels, limit)


def by_size(workdir: Path, sizes_mb: list[float], limit: int) -> None:
    print("float32 .npy in, float32 .npy out, one channel")
    print(f"{'file':>9} {'method':10} {'wall s':>8} {'Msamples/s':>11} {'peak RSS MB':>12} "
          f"{'max |y - sosfiltfilt|':>22}  status")
    for size_mb in sizes_mb:
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


def by_shape(workdir: Path, shape_mb: float, channel_counts: list[int], limit: int) -> None:
    print(f"\none raw int8 file of {shape_mb:g} MB declared with n channels: a signal.filter job's whole work "
          "(vitalq-job) beside scipy in memory")
    print(f"{'channels':>8} {'samples':>10} {'method':12} {'wall s':>8} {'peak RSS MB':>12} {'added MB':>9}  status")
    path = workdir / "shape.raw"
    for channels in channel_counts:
        usable = int(shape_mb * 1e6) // channels * channels  # whole frames of all channels
        np.random.default_rng(0).integers(-100, 100, usable, dtype=np.int8).tofile(path)
        for method in ("vitalq-job", "scipy-shape"):
            out = workdir / f"{method}-{channels}.npy"
            result = run(method, path, out, 0 if method == "vitalq-job" else limit, channels)
            print(f"{channels:>8} {usable // channels:>10} {method:12} {result['seconds']:8.2f} "
                  f"{result['peak_rss_mb']:12.0f} {result['added_mb']:9.0f}  {result['status']}", flush=True)
            for produced in workdir.glob(f"{method}-{channels}*"):
                produced.unlink()


def _max_abs_difference(a: Path, b: Path, block: int = 1 << 24) -> float:
    x, y = np.load(a, mmap_mode="r"), np.load(b, mmap_mode="r")
    return max(float(np.max(np.abs(x[i:i + block].astype(np.float64) - y[i:i + block])))
               for i in range(0, x.shape[0], block))


if __name__ == "__main__":
    main()
