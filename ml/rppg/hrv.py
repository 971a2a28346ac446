"""Heart-rate variability from pulse peaks: time and frequency domain.

Definitions follow the Task Force of the European Society of Cardiology and the North
American Society of Pacing and Electrophysiology, "Heart rate variability: standards
of measurement, physiological interpretation and clinical use", Circulation 93(5),
1043-1065, 1996. Intervals in milliseconds, powers in ms², frequencies in Hz.
"""

from __future__ import annotations

import numpy as np
from scipy import interpolate, signal

LF_BAND_HZ = (0.04, 0.15)
HF_BAND_HZ = (0.15, 0.40)
#: Beat-to-beat intervals outside this range (seconds) are not beats: 30 to 200 bpm.
PLAUSIBLE_IBI_S = (0.3, 2.0)
#: An interval further than this fraction from the local median is an artefact.
MAX_DEVIATION = 0.25
RESAMPLE_HZ = 4.0


def pulse_peaks(bvp: np.ndarray, fs: float, heart_rate_bpm: float | None = None) -> np.ndarray:
    """Times in seconds of the systolic peaks of a band-passed pulse ``bvp`` at ``fs`` Hz,
    refined between samples by parabolic interpolation.

    ``heart_rate_bpm`` (the spectral estimate, if known) sets the least distance between
    two peaks to 60% of the expected beat interval.
    """
    bvp = np.asarray(bvp, dtype=np.float64)
    beat_s = 60.0 / heart_rate_bpm if heart_rate_bpm else PLAUSIBLE_IBI_S[0] / 0.6
    distance = max(int(0.6 * beat_s * fs), 1)
    prominence = 0.3 * np.std(bvp)
    peaks, _ = signal.find_peaks(bvp, distance=distance, prominence=prominence)
    peaks = peaks[(peaks > 0) & (peaks < bvp.size - 1)]
    a, b, c = bvp[peaks - 1], bvp[peaks], bvp[peaks + 1]
    denominator = a - 2 * b + c
    shift = np.divide(0.5 * (a - c), denominator, out=np.zeros_like(b), where=denominator != 0)
    return (peaks + np.clip(shift, -0.5, 0.5)) / fs


def clean_intervals(peak_times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(beat-to-beat intervals in ms, the time of each interval's end in s), artefacts removed.

    An interval is kept when it is plausible (PLAUSIBLE_IBI_S) and within MAX_DEVIATION
    of the median of the five intervals around it.
    """
    times = np.asarray(peak_times_s, dtype=np.float64)
    ibi = np.diff(times)
    ends = times[1:]
    keep = (ibi >= PLAUSIBLE_IBI_S[0]) & (ibi <= PLAUSIBLE_IBI_S[1])
    if ibi.size >= 5:
        padded = np.pad(ibi, 2, mode="edge")
        local = np.median(np.lib.stride_tricks.sliding_window_view(padded, 5), axis=1)
        keep &= np.abs(ibi - local) <= MAX_DEVIATION * local
    return ibi[keep] * 1000.0, ends[keep]


def hrv_metrics(peak_times_s: np.ndarray) -> dict[str, float | int | None]:
    """Mean HR (bpm), SDNN, RMSSD (ms), pNN50 (%), LF, HF (ms²), LF/HF and the Poincaré
    plot's SD1 and SD2 (ms) from peak times.

    Successive differences are taken only between intervals that were adjacent in the
    recording (a removed artefact breaks the chain). The frequency-domain measures come
    from the intervals resampled at 4 Hz by cubic interpolation, detrended, and Welch's
    spectrum integrated over the LF and HF bands; they are None when the intervals span
    less than 60 s (too short for LF, Task Force 1996 recommends at least 2 minutes).
    SD1 and SD2 are the Poincaré plot's spreads across and along its line of identity, the
    standard deviations of (RR[n+1] - RR[n])/√2 and (RR[n+1] + RR[n])/√2 over adjacent
    intervals (Brennan, Palaniswami & Kamen, "Do existing measures of Poincaré plot
    geometry reflect nonlinear features of heart rate variability?", IEEE Trans. Biomed.
    Eng. 48(11), 2001).

    Examples
    --------
    Five minutes of beats at 60 bpm with a 1.5 % beat-to-beat variation and no breathing
    (``ml.rppg.simulate.rr_intervals``): SDNN is about 15 ms, RMSSD about √2 times that.

    >>> from ml.rppg.simulate import rr_intervals
    >>> beats = rr_intervals(60.0, 300.0, np.random.default_rng(1), hrv=0.0, rr_noise=0.015)
    >>> metrics = hrv_metrics(beats)
    >>> round(metrics["mean_hr_bpm"]), round(metrics["sdnn_ms"] / 5) * 5, round(metrics["rmssd_ms"] / 5) * 5
    (60, 15, 20)
    """
    ibi_ms, ends = clean_intervals(peak_times_s)
    beats = int(np.asarray(peak_times_s).size)
    result: dict[str, float | int | None] = {"beats": beats, "intervals_used": int(ibi_ms.size),
                                             "mean_hr_bpm": None, "sdnn_ms": None, "rmssd_ms": None,
                                             "pnn50_pct": None, "lf_ms2": None, "hf_ms2": None, "lf_hf": None,
                                             "sd1_ms": None, "sd2_ms": None}
    if ibi_ms.size < 3:
        return result
    result["mean_hr_bpm"] = float(60_000.0 / ibi_ms.mean())
    result["sdnn_ms"] = float(np.std(ibi_ms, ddof=1))
    adjacent = np.isclose(np.diff(ends), ibi_ms[1:] / 1000.0, rtol=0, atol=1e-6)
    successive = np.diff(ibi_ms)[adjacent]
    if successive.size:
        result["rmssd_ms"] = float(np.sqrt(np.mean(successive**2)))
        result["pnn50_pct"] = float(100.0 * np.mean(np.abs(successive) > 50.0))
        if successive.size >= 2:
            sums = (ibi_ms[1:] + ibi_ms[:-1])[adjacent]
            result["sd1_ms"] = float(np.std(successive / np.sqrt(2), ddof=1))
            result["sd2_ms"] = float(np.std(sums / np.sqrt(2), ddof=1))
    if ends[-1] - ends[0] >= 60.0 and ibi_ms.size >= 10:
        grid = np.arange(ends[0], ends[-1], 1.0 / RESAMPLE_HZ)
        series = signal.detrend(interpolate.CubicSpline(ends, ibi_ms)(grid))
        freqs, psd = signal.welch(series, fs=RESAMPLE_HZ, nperseg=min(256, series.size), detrend=False)
        lf = _band_power(freqs, psd, LF_BAND_HZ)
        hf = _band_power(freqs, psd, HF_BAND_HZ)
        result.update(lf_ms2=lf, hf_ms2=hf, lf_hf=lf / hf if hf > 0 else None)
    return result


def _band_power(freqs: np.ndarray, psd: np.ndarray, band: tuple[float, float]) -> float:
    inside = (freqs >= band[0]) & (freqs < band[1])
    return float(np.trapezoid(psd[inside], freqs[inside]))
