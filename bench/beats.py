"""Heartbeat detection benchmark: vitalq's ``signal.beats`` beside the field's tools.

On the same files, in one run, each method in a process of its own: sensitivity (Se)
and positive predictivity (+P) against the reference beats (a detection within 150 ms
of a reference beat, ANSI/AAMI EC57), wall seconds and peak resident memory.

- vitalq: ``ml.signals.find_beats`` streaming the file (NeuroKit2's detector, chunk by
  chunk), with Se and +P also over the beats it counts (those of usable windows) and the
  share of the recording it found usable;
- NeuroKit2: ``ecg_clean`` + ``ecg_peaks`` (or ``ppg_clean`` + ``ppg_findpeaks``) on the
  whole array;
- HeartPy: ``process`` on the whole array (its own cleaning);
- XQRS: wfdb's detector on the whole array (ECG only).

The files: MIT-BIH record 100 (30 min, 360 Hz) and the noise-stress excerpts 118e24 and
118e06 (2 min each) from ``../shared/data/ecg``, with the cardiologists' beats; a
simulated finger PPG (10 min at 100 Hz, motion artefacts; ``ml.rppg.simulate``); and,
unless ``--quick``, a day: record 100 end to end 48 times (24 h at 360 Hz, 31 M
samples) and a simulated 24 h PPG at 100 Hz. Each run is limited to ``--timeout-s``
seconds and ``--memory-limit-gb`` of address space.

    python bench/beats.py [--quick] [--timeout-s 600] [--memory-limit-gb 8]
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

ECG_DATA = Path(os.environ.get("VITALQ_SHARED_DATA", ROOT.parent / "shared" / "data")) / "ecg"
BEAT_SYMBOLS = set("NLRBAaJSVrFejnE/fQ?")
MATCH_S = 0.150

#: Before the memory baseline: the arguments and numpy.
SETUP = """
import numpy as np
method, path, fs, kind, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5]
"""
#: Each detector's work on one recording, its beats saved to ``out`` (``bench.measured``).
BODY = """
if method == "vitalq":
    from ml.signals import find_beats, open_signal
    beats = find_beats(open_signal(__import__("pathlib").Path(path), {"fs": fs}, None), kind)
    found, counted = beats.samples, beats.samples[beats.usable]
    extra["usable_share"] = float(beats.window_usable.mean())
    np.save(out + ".counted.npy", counted)
else:
    x = np.load(path).astype(np.float64)
    if method == "neurokit2":
        import neurokit2 as nk
        if kind == "ecg":
            found = nk.ecg_peaks(nk.ecg_clean(x, sampling_rate=int(fs)), sampling_rate=int(fs),
                                 correct_artifacts=False)[1]["ECG_R_Peaks"]
        else:
            found = nk.ppg_findpeaks(nk.ppg_clean(x, sampling_rate=int(fs)), sampling_rate=int(fs))["PPG_Peaks"]
    elif method == "heartpy":
        import heartpy as hp
        working, _ = hp.process(x, fs)
        found = np.array(working["peaklist"])[np.array(working["binary_peaklist"], bool)]
    elif method == "xqrs":
        import wfdb.processing
        detector = wfdb.processing.XQRS(sig=x, fs=fs)
        detector.detect(verbose=False)
        found = detector.qrs_inds
np.save(out, np.asarray(found, dtype=np.int64))
"""


def score(found: np.ndarray, reference: np.ndarray, fs: float) -> tuple[float, float]:
    """Se and +P: each reference beat matched to at most one detection within MATCH_S."""
    found, reference, tolerance = np.sort(found), np.sort(reference), int(MATCH_S * fs)
    if not found.size:
        return 0.0, 0.0
    # The nearest unmatched detection of each reference beat, in one pass (both sorted).
    matched, used = 0, np.zeros(found.size, bool)
    for beat in reference:
        lo, hi = np.searchsorted(found, beat - tolerance), np.searchsorted(found, beat + tolerance, side="right")
        free = [k for k in range(lo, hi) if not used[k]]
        if free:
            used[min(free, key=lambda k: abs(found[k] - beat))] = True
            matched += 1
    return matched / reference.size, matched / found.size


def recordings(workdir: Path, quick: bool):
    """(name, signal type, path of a float32 .npy, fs, reference beats), written to ``workdir``."""
    import wfdb

    from ml.rppg.simulate import contact_ppg

    record = wfdb.rdrecord(str(ECG_DATA / "100"))
    annotation = wfdb.rdann(str(ECG_DATA / "100"), "atr")
    x100 = record.p_signal[:, 0].astype(np.float32)
    ref100 = np.array([s for s, symbol in zip(annotation.sample, annotation.symbol) if symbol in BEAT_SYMBOLS])
    cases = [("MIT-BIH 100 (30 min)", "ecg", x100, 360.0, ref100)]
    for name in ("118e24", "118e06"):
        cases.append((f"NSTDB {name} (2 min)", "ecg", np.loadtxt(ECG_DATA / f"{name}.csv").astype(np.float32),
                      360.0, np.loadtxt(ECG_DATA / f"{name}_ann.csv").astype(int)))
    ppg, peaks = contact_ppg(hr_bpm=72, seconds=600, rng=np.random.default_rng(7), artefacts_per_min=2)
    cases.append(("PPG, simulated (10 min)", "ppg", ppg.astype(np.float32), 100.0, np.round(peaks * 100).astype(int)))
    if not quick:
        copies = 48
        day = np.tile(x100, copies)
        day_ref = np.concatenate([ref100 + i * x100.size for i in range(copies)])
        cases.append(("MIT-BIH 100 x48 (24 h)", "ecg", day, 360.0, day_ref))
        ppg_day, peaks_day = contact_ppg(hr_bpm=72, seconds=24 * 3600, rng=np.random.default_rng(8),
                                         artefacts_per_min=0.5)
        cases.append(("PPG, simulated (24 h)", "ppg", ppg_day.astype(np.float32), 100.0,
                      np.round(peaks_day * 100).astype(int)))
    for name, kind, x, fs, reference in cases:
        path = workdir / f"{len(list(workdir.iterdir()))}.npy"
        np.save(path, x)
        yield name, kind, path, fs, reference


def run(method: str, path: Path, fs: float, kind: str, out: Path, limit: int, timeout_s: float) -> dict:
    return measured.run(BODY, [method, path, fs, kind, out], setup=SETUP, limit_bytes=limit, timeout_s=timeout_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="without the 24 h recordings")
    parser.add_argument("--timeout-s", type=float, default=600)
    parser.add_argument("--memory-limit-gb", type=float, default=8)
    args = parser.parse_args()
    limit = int(args.memory_limit_gb * 1024**3)
    print(f"a detection within {MATCH_S * 1000:g} ms of a reference beat is that beat; {os.cpu_count()} cores; "
          f"each run limited to {args.timeout_s:g} s and {args.memory_limit_gb:g} GB\n")
    print(f"{'recording':26} {'method':10} {'Se':>7} {'+P':>7} {'counted Se/+P':>15} {'usable':>7} {'wall s':>8} "
          f"{'peak RSS MB':>12}  status")
    with tempfile.TemporaryDirectory(prefix="vitalq-beats-bench-") as folder:
        workdir = Path(folder) / "data"
        workdir.mkdir()
        for name, kind, path, fs, reference in recordings(workdir, args.quick):
            for method in ("vitalq", "neurokit2", "heartpy", "xqrs"):
                if method == "xqrs" and kind != "ecg":
                    continue
                out = Path(folder) / f"{method}.npy"
                result = run(method, path, fs, kind, out, limit, args.timeout_s)
                se = ppv = counted = usable = ""
                if result["status"] == "ok":
                    se, ppv = (f"{v:.4f}" for v in score(np.load(out), reference, fs))
                if method == "vitalq" and result["status"] == "ok":
                    counted_beats = np.load(f"{out}.counted.npy")
                    windows = (reference / fs // 10).astype(int)
                    # The reference beats in the windows vitalq counted.
                    counted_windows = np.unique((counted_beats / fs // 10).astype(int))
                    kept = reference[np.isin(windows, counted_windows)]
                    counted = "/".join(f"{v:.4f}" for v in score(counted_beats, kept, fs))
                    usable = f"{result['usable_share']:.0%}"
                print(f"{name:26} {method:10} {se:>7} {ppv:>7} {counted:>15} {usable:>7} {result['seconds']:8.1f} "
                      f"{result['peak_rss_mb']:12.0f}  {result['status']}", flush=True)
                for leftover in Path(folder).glob(f"{method}.npy*"):
                    leftover.unlink()
            path.unlink()


if __name__ == "__main__":
    main()
