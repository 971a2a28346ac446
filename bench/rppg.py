"""rPPG benchmark: accuracy on synthetic faces with a known pulse and on real video with
pulse-oximeter ground truth, and speed.

Prints, in one run:

1. synthetic faces (``bench/synthetic_face.py``: a real face photograph with a known
   pulse, heart-rate variability, head motion, illumination drift, sensor noise and
   lossy encoding), heart rates from 45 to 160 bpm: mean absolute error per method, and
   the HRV (mean HR, SDNN, RMSSD) that POS measures beside the true one;
2. real video, ``../shared/data/rppg/india`` (skin-region crops, ``roi=full``): mean
   absolute error of the mean heart rate per method and region, and with the three
   regions of a subject fused, in the default pulse band and in a resting one, beside
   the error of a constant guess; how far the pulse at the oximeter's rate stands out
   of each video's spectrum; a Bland-Altman plot of the best method to ``bench/out/``;
3. speed on a 60 s 640x480 30 fps face video: frames per second end to end beside
   decoding alone, and the time of each stage.

    python bench/rppg.py [--data ../shared/data/rppg/india] [--seconds 30]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, bench/ comes first on sys.path, where bench/queue.py would shadow the
# standard library's queue; the repository root is what is wanted.
ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import argparse
import csv
import time
import warnings
from collections import defaultdict

import cv2
import numpy as np
from scipy import signal

from bench.synthetic_face import write_face_video  # noqa: E402
from ml.rppg import METHODS, analyze_video  # noqa: E402
from ml.rppg.heart_rate import estimate_heart_rate  # noqa: E402
from ml.rppg.hrv import hrv_metrics  # noqa: E402
from ml.rppg.pipeline import extract_traces, pulse_from_traces, uniform  # noqa: E402
from ml.rppg.video import VideoFrames  # noqa: E402

OUT = ROOT / "bench" / "out"
SYNTHETIC_HR = (45, 60, 75, 90, 105, 120, 140, 160)
REGIONS = ("forehead", "leftcheek", "rightcheek")


HRV_KEYS = ("mean_hr_bpm", "sdnn_ms", "rmssd_ms")


def synthetic_accuracy(seconds: float) -> tuple[dict[str, list[float]], list[tuple[dict, dict]]]:
    """({method: [abs HR errors]}, [(true HRV, POS's HRV) per video])."""
    errors: dict[str, list[float]] = defaultdict(list)
    hrv = []
    for index, hr in enumerate(SYNTHETIC_HR):
        path = OUT / f"synthetic-{hr}-{seconds:g}s.avi"
        truth = write_face_video(path, hr_bpm=hr, seconds=seconds, seed=index)
        for method in METHODS:
            result = analyze_video(path, method=method)
            estimate = result.heart_rate.overall_bpm
            errors[method].append(abs(estimate - truth.mean_hr_bpm) if estimate else float("nan"))
            if method == "POS":
                hrv.append((hrv_metrics(truth.beat_times_s), result.hrv))
        path.unlink()
    return errors, hrv


def traces_of(path: Path) -> tuple[np.ndarray, float]:
    with VideoFrames(path) as frames:
        _grid, rgb, fs = uniform(extract_traces(frames, roi="full"), frames.info.fps)
        return rgb, fs


def load_real(data: Path) -> tuple[dict[str, float], dict[str, dict[str, tuple[np.ndarray, float]]]]:
    """({subject: oximeter heart rate}, {subject: {region: (rgb traces, fs)}})."""
    truth = {row["subject"]: float(row["heart_rate_bpm"]) for row in csv.DictReader(open(data / "ground_truth.csv"))}
    subjects = sorted({p.name.split("_")[0] for p in data.glob("*.avi")}, key=lambda s: int(s[5:]))
    return truth, {subject: {region: traces_of(data / f"{subject}_{region}.avi") for region in REGIONS
                             if (data / f"{subject}_{region}.avi").exists()} for subject in subjects}


def pulse_visibility(bvp: np.ndarray, fs: float, truth_bpm: float, band: tuple[float, float]) -> tuple[float, float]:
    """How far the pulse at the oximeter's heart rate stands out of the whole recording's
    spectrum (Welch, 20 s segments): (its power over the band's median power, the share
    of the band's frequencies with more power than it; 0.5 is no pulse at all)."""
    freqs, power = signal.welch(bvp, fs=fs, nperseg=min(int(20 * fs), bvp.shape[-1]), nfft=2048, axis=-1)
    power = power.mean(axis=0)
    inside = (freqs >= band[0]) & (freqs <= band[1])
    at_truth = power[np.abs(freqs - truth_bpm / 60.0) <= 0.05].max()
    return float(at_truth / np.median(power[inside])), float(np.mean(power[inside] > at_truth))


def real_accuracy(truth: dict, subjects: dict, band: tuple[float, float]) -> tuple[dict, dict, dict, dict]:
    """({(method, region): [abs errors]}, {method: [abs errors fused over regions]},
    {method: [(truth, estimate)]}, {method: [pulse visibility of each video]})."""
    per_region: dict = defaultdict(list)
    fused: dict = defaultdict(list)
    pairs: dict = defaultdict(list)
    visibility: dict = defaultdict(list)
    for subject, regions in subjects.items():
        for method in METHODS:
            pulses = []
            for region, (rgb, fs) in regions.items():
                bvp = pulse_from_traces(rgb, fs, method, band)
                # Every window counts here: the data set's score is the error of the mean heart rate.
                estimate = estimate_heart_rate(bvp, fs, window_s=10, step_s=1, band=band, min_quality=0.0).overall_bpm
                per_region[(method, region)].append(abs(estimate - truth[subject]))
                visibility[method].append(pulse_visibility(bvp, fs, truth[subject], band))
                pulses.append((bvp, fs))
            length = min(p.shape[1] for p, _ in pulses)
            stacked = np.concatenate([p[:, :length] for p, _ in pulses])
            estimate = estimate_heart_rate(stacked, pulses[0][1], window_s=10, step_s=1, band=band,
                                           min_quality=0.0).overall_bpm
            fused[method].append(abs(estimate - truth[subject]))
            pairs[method].append((truth[subject], estimate))
    return per_region, fused, pairs, visibility


def bland_altman(pairs: list[tuple[float, float]], method: str, path: Path) -> tuple[float, float]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    truth, estimate = np.array(pairs).T
    mean, difference = (truth + estimate) / 2, estimate - truth
    bias, spread = difference.mean(), 1.96 * difference.std(ddof=1)
    figure, axes = plt.subplots(figsize=(7, 5), constrained_layout=True)
    axes.scatter(mean, difference, s=18)
    for value, style in ((bias, "-"), (bias + spread, "--"), (bias - spread, "--")):
        axes.axhline(value, ls=style, color="gray", lw=1)
    axes.set(title=f"Bland-Altman, {method} (regions fused), real video vs pulse oximeter",
             xlabel="mean of the two (bpm)", ylabel="rPPG - oximeter (bpm)")
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return float(bias), float(spread)


def speed() -> None:
    path = OUT / "speed-60s-640x480.avi"
    if not path.exists():
        write_face_video(path, hr_bpm=72, seconds=60.0, size=(640, 480))
    capture = cv2.VideoCapture(str(path))
    frames = 0
    start = time.perf_counter()
    while capture.read()[0]:
        frames += 1
    decode_s = time.perf_counter() - start
    capture.release()
    start = time.perf_counter()
    result = analyze_video(path, method="POS")
    total_s = time.perf_counter() - start
    print(f"\n3. speed, 60 s 640x480 30 fps face video ({frames} frames, {path.stat().st_size / 1e6:.0f} MB MJPG), "
          f"{result.heart_rate.overall_bpm:.1f} bpm found")
    print(f"{'':32} {'seconds':>9} {'frames/s':>10}")
    print(f"{'decoding alone (cv2.read)':32} {decode_s:9.2f} {frames / decode_s:10.0f}")
    print(f"{'vitalq end to end (POS)':32} {total_s:9.2f} {frames / total_s:10.0f}   ({total_s / decode_s:.2f}x decoding)")
    for stage, seconds in result.seconds.items():
        print(f"{'  stage: ' + stage:32} {seconds:9.2f}")


def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "rppg" / "india")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each synthetic video")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    warnings.simplefilter("ignore")  # FastICA's convergence chatter

    errors, hrv = synthetic_accuracy(args.seconds)
    print(f"1. synthetic faces, {args.seconds:g} s each, true mean HR {SYNTHETIC_HR[0]}-{SYNTHETIC_HR[-1]} bpm: "
          f"absolute error (bpm)")
    print(f"{'method':8} {'MAE':>6} {'max':>6}   " + " ".join(f"{hr:>5}" for hr in SYNTHETIC_HR))
    for method, values in errors.items():
        print(f"{method:8} {np.nanmean(values):6.2f} {np.nanmax(values):6.2f}   "
              + " ".join(f"{v:5.1f}" for v in values))

    print("\nHRV of the same videos by POS, true / measured (the truth from the generator's beat times)")
    print(f"{'HR':>5}  " + " ".join(f"{key:>15}" for key in HRV_KEYS))
    for hr, (true, measured) in zip(SYNTHETIC_HR, hrv):
        print(f"{hr:>5}  " + " ".join(f"{_value(true[k]):>7}/{_value(measured[k]):<7}" for k in HRV_KEYS))
    for key in HRV_KEYS[1:]:
        pairs = [(t[key], m[key]) for t, m in hrv if t[key] is not None and m[key] is not None]
        print(f"{key}: mean absolute error {np.mean([abs(m - t) for t, m in pairs]):.1f} ms, "
              f"mean ratio measured/true {np.mean([m / t for t, m in pairs]):.2f} (n={len(pairs)})")

    if args.data.exists():
        print(f"\n2. real video ({args.data}), roi=full: MAE of the mean heart rate (bpm); "
              f"published: CHROM 8-16, POS 12-15, best 5-6.5")
        truth, subjects = load_real(args.data)
        # The floor any estimator must beat: each subject given the mean of the others' heart rates.
        constant = [abs(truth[s] - np.mean([truth[o] for o in subjects if o != s])) for s in subjects]
        print(f"constant guess (each subject: the mean heart rate of the others): MAE {np.mean(constant):.2f} bpm")
        for band in ((0.65, 4.0), (0.7, 3.0)):  # the job's default band, and one for people at rest
            per_region, fused, pairs, visibility = real_accuracy(truth, subjects, band)
            print(f"\nband {band[0]}-{band[1]} Hz ({band[0] * 60:.0f}-{band[1] * 60:.0f} bpm); pulse at the oximeter's "
                  f"rate (median over videos): its power / the band's median, share of the band above it (0.5: none)")
            print(f"{'method':8} " + " ".join(f"{r:>11}" for r in REGIONS) + f" {'fused':>8}  {'power':>6} {'above':>6}")
            for method in METHODS:
                ratio, above = np.median(visibility[method], axis=0)
                print(f"{method:8} " + " ".join(f"{np.mean(per_region[(method, r)]):11.2f}" for r in REGIONS)
                      + f" {np.mean(fused[method]):8.2f}  {ratio:6.2f} {above:6.2f}   (n={len(fused[method])} subjects)")
            best = min(fused, key=lambda m: np.mean(fused[m]))
            plot = OUT / f"bland_altman_{band[0]}-{band[1]}hz.png"
            bias, spread = bland_altman(pairs[best], best, plot)
            print(f"Bland-Altman ({best}, fused): bias {bias:+.2f} bpm, limits of agreement ±{spread:.2f} bpm -> {plot}")
    else:
        print(f"\n2. real video: {args.data} not found, skipped")
    speed()


if __name__ == "__main__":
    main()
