"""A picture of an rPPG result: the pulse, the heart rate over time, and the spectrum."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on a worker
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .pipeline import RppgResult  # noqa: E402


def plot_result(result: RppgResult, path: Path) -> None:
    """Write a PNG with three panels: pulse and its beats, heart rate per window, spectrum."""
    figure, (pulse_ax, hr_ax, spectrum_ax) = plt.subplots(3, 1, figsize=(10, 8), constrained_layout=True)
    pulse_ax.plot(result.times_s - result.times_s[0], result.pulse, lw=0.8, color="#1f77b4")
    beats = np.interp(result.peak_times_s, np.arange(result.pulse.size) / result.fs, result.pulse)
    pulse_ax.plot(result.peak_times_s, beats, "v", ms=4, color="#d62728", label="beats")
    pulse_ax.set(title=f"Pulse ({result.method})", xlabel="time (s)", ylabel="pulse (a.u.)")
    pulse_ax.legend(loc="upper right")

    hr = result.heart_rate
    hr_ax.plot(hr.times_s, hr.bpm, "o-", ms=3, color="#2ca02c", label="accepted windows")
    rejected = ~np.isfinite(hr.bpm)
    if rejected.any():
        hr_ax.plot(hr.times_s[rejected], np.full(rejected.sum(), np.nanmin(hr.bpm) if (~rejected).any() else 60),
                   "x", color="#7f7f7f", label="rejected (low quality)")
    if hr.overall_bpm:
        hr_ax.axhline(hr.overall_bpm, ls="--", color="#2ca02c", lw=0.8, label=f"overall {hr.overall_bpm:.1f} bpm")
    hr_ax.set(title="Heart rate per window", xlabel="window centre (s)", ylabel="bpm")
    hr_ax.legend(loc="upper right")

    spectrum_ax.plot(result.spectrum.freqs_hz * 60, result.spectrum.power, color="#9467bd")
    spectrum_ax.set(title="Pulse spectrum (whole video)", xlabel="bpm", ylabel="share of power")
    figure.savefig(path, dpi=90)
    plt.close(figure)
