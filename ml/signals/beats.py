"""Heartbeats from contact sensors (ECG, PPG) over recordings of any length: each beat,
its quality, heart rate over time and HRV, read chunk by chunk in bounded memory.

Detection is NeuroKit2's (Makowski et al., "NeuroKit2: A Python toolbox for
neurophysiological signal processing", Behavior Research Methods 53, 2021):

- ECG: ``ecg_clean`` (0.5 Hz high-pass, Butterworth order 5, and a 50 Hz notch) then
  ``ecg_peaks`` with its default "neurokit" method (QRS complexes as the steepest
  slopes of the cleaned signal, with a 0.3 s refractory period);
- PPG: ``ppg_clean`` (0.5-8 Hz band-pass) then ``ppg_findpeaks``'s "elgendi" method
  (Elgendi et al., "Systolic peak detection in acceleration photoplethysmograms
  measured from emergency responders in tropical conditions", PLoS ONE 8(10), 2013:
  two moving averages, of a systolic peak and of a beat, and a refractory period).

Quality is template matching (after Orphanidou et al., "Signal-quality indices for the
electrocardiogram and photoplethysmogram: derivation and applications to wireless
monitoring", IEEE JBHI 19(3), 2015): each beat's waveform is correlated with the median
waveform of the ``TEMPLATE_BEATS`` beats around it. A window's quality is the median of
its beats'; a window under ``MIN_QUALITY`` is unusable: its beats are listed, labelled,
and counted in neither the heart rate nor HRV. On the MIT-BIH noise-stress record 118e06
(electrode motion at 6 dB from 40 s on) the usable windows are the clean 40 s.

Chunks: the signal is read in ``CHUNK_S`` chunks, each with ``MARGIN_S`` more on both
sides that the cleaning filter and the detector see but whose beats belong to the next
chunk; the beats are those of one run over the whole signal (tested on MIT-BIH record
100, a chunk every minute). Times in seconds, intervals in milliseconds, rates in beats
per minute.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Callable

import numpy as np

from ..errors import InvalidInput, NoBeats
from ..rppg.hrv import hrv_metrics
from .chunked import SignalSource, fill_non_finite

SIGNAL_TYPES = ("ecg", "ppg")
#: Seconds of signal per chunk, and seen on each side of it; a chunk and its margins
#: hold at most MAX_CHUNK_SAMPLES samples (32 MB of float64), whatever the sample rate.
CHUNK_S = 600.0
MARGIN_S = 20.0
MAX_CHUNK_SAMPLES = 1 << 22
#: Sample rates (Hz) the detectors are made for: below, NeuroKit2's filters and windows
#: do not fit (a PPG's 0.5-8 Hz band needs more than 16 Hz; record 100's beats are all
#: found down to 50 Hz, a simulated PPG's 95 % at 25 Hz).
FS_RANGE_HZ = {"ecg": (50.0, 10_000.0), "ppg": (25.0, 10_000.0)}
#: Seconds of a window: its heart rate and quality.
WINDOW_S = 10.0
#: A window whose beats match their neighbours' waveform less than this (median
#: correlation) is unusable.
MIN_QUALITY = 0.7
#: Beats on each side whose median waveform is a beat's template, made anew every
#: TEMPLATE_STEP beats.
TEMPLATE_BEATS = 15
TEMPLATE_STEP = 8
#: The part of a beat compared, seconds before and after its peak.
WAVEFORM_S = {"ecg": (0.25, 0.45), "ppg": (0.3, 0.5)}
#: Heart rates a signal of each type can have, bpm (median over the recording).
PLAUSIBLE_BPM = (25.0, 250.0)
#: Least usable signal (seconds) for a heart rate, and for HRV (the Task Force's
#: short-term recordings are 5 min; 1 min is the least its LF band can be read from).
MIN_HEART_RATE_S = 30.0
MIN_HRV_S = 60.0


@dataclass(frozen=True)
class Beats:
    """Every beat of a recording: ``samples`` (indices), their ``quality`` (correlation
    with their neighbours' waveform, NaN at the recording's ends), and per window of
    ``WINDOW_S`` seconds its quality and whether it is usable."""

    fs: float
    n_samples: int
    samples: np.ndarray
    quality: np.ndarray
    window_quality: np.ndarray

    @property
    def times_s(self) -> np.ndarray:
        return self.samples / self.fs

    @property
    def window_usable(self) -> np.ndarray:
        return self.window_quality >= MIN_QUALITY

    @property
    def usable(self) -> np.ndarray:
        """Per beat: it lies in a usable window, and its own waveform matches its
        neighbours' (a motion artefact inside a clean window does not)."""
        if not self.window_quality.size:
            return np.zeros(self.samples.size, bool)
        return self.window_usable[_window_of(self.times_s, self.window_quality.size)] & ~(self.quality < MIN_QUALITY)

    @property
    def window_bounds(self) -> np.ndarray:
        """The beats of window ``w`` are ``samples[bounds[w]:bounds[w + 1]]``."""
        return _window_bounds(self.times_s, self.window_quality.size)


def check_sample_rate(fs: float, signal_type: str) -> None:
    """InvalidInput (naming ``fs``) for a rate outside FS_RANGE_HZ for ``signal_type``."""
    low, high = FS_RANGE_HZ[signal_type]
    if not low <= fs <= high:
        raise InvalidInput(f"a {signal_type.upper()} sampled at {fs:g} Hz cannot be read for beats: its sample rate "
                           f"must be {low:g} to {high:g} Hz", field="fs", fs=fs)


def detect_beats(x: np.ndarray, fs: float, signal_type: str) -> tuple[np.ndarray, np.ndarray]:
    """Beats of a whole signal ``x`` sampled at ``fs`` Hz: (peak indices, the cleaned
    signal they were found in)."""
    import neurokit2 as nk  # imported by the worker only: NeuroKit2 brings pandas

    if signal_type not in SIGNAL_TYPES:
        raise ValueError(f"signal_type must be one of {SIGNAL_TYPES}")
    rate = int(round(fs))  # NeuroKit2 takes whole-number rates; sub-Hz rounding shifts nothing here
    if signal_type == "ecg":
        cleaned = nk.ecg_clean(x, sampling_rate=rate)
        _, info = nk.ecg_peaks(cleaned, sampling_rate=rate, correct_artifacts=False)
        peaks = info["ECG_R_Peaks"]
    else:
        cleaned = nk.ppg_clean(x, sampling_rate=rate)
        peaks = nk.ppg_findpeaks(cleaned, sampling_rate=rate)["PPG_Peaks"]
    return np.asarray(peaks, dtype=np.int64), np.asarray(cleaned, dtype=np.float64)


def beat_quality(cleaned: np.ndarray, peaks: np.ndarray, fs: float, signal_type: str) -> np.ndarray:
    """Per beat, the correlation of its waveform with the median of the TEMPLATE_BEATS
    beats on each side; NaN where its waveform runs past the signal."""
    before, after = (int(round(s * fs)) for s in WAVEFORM_S[signal_type])
    quality = np.full(peaks.size, np.nan)
    whole = (peaks - before >= 0) & (peaks + after < cleaned.size)
    if whole.sum() < 2:
        return quality
    index = peaks[whole][:, None] + np.arange(-before, after)[None, :]
    waves = cleaned[index]
    waves = waves - waves.mean(axis=1, keepdims=True)
    # One template for each TEMPLATE_STEP beats, the median of the beats around their
    # middle: a median per beat took half the time of a day's detection, and moved no
    # beat's correlation by more than 0.005 on MIT-BIH record 100.
    templates = np.empty_like(waves)
    for first in range(0, len(waves), TEMPLATE_STEP):
        middle = first + TEMPLATE_STEP // 2
        templates[first:first + TEMPLATE_STEP] = np.median(
            waves[max(0, middle - TEMPLATE_BEATS):middle + TEMPLATE_BEATS + 1], axis=0)
    norms = np.linalg.norm(waves, axis=1) * np.linalg.norm(templates, axis=1)
    products = np.einsum("ij,ij->i", waves, templates)
    quality[whole] = np.divide(products, norms, out=np.zeros_like(products), where=norms > 0)
    return quality


def find_beats(source: SignalSource, signal_type: str, channel: int = 0,
               progress: Callable[[float, str], None] | None = None,
               chunk_s: float = CHUNK_S, margin_s: float = MARGIN_S, cleaned_to: BinaryIO | None = None) -> Beats:
    """The beats of one channel of ``source``, chunk by chunk (memory: a chunk and its
    margins, at most MAX_CHUNK_SAMPLES; and the beats). NaN and infinite samples are
    interpolated over. Raises InvalidInput for a sample rate outside FS_RANGE_HZ.

    ``cleaned_to``: a file to which the cleaned signal the beats were found in is
    written as it is made, a little-endian float32 per sample (NeuroKit2's
    ``ecg_clean`` or ``ppg_clean``; the signal's own units), so that any stretch of it
    can be read by its byte offset (sample ``k`` at ``4 k``).

    Examples
    --------
    Two minutes of a simulated finger PPG at 72 bpm and 100 Hz (``ml.rppg.simulate``):

    >>> from ml.rppg.simulate import contact_ppg
    >>> from ml.signals import MemorySource
    >>> x, peaks_s = contact_ppg(hr_bpm=72.0, seconds=120.0, rng=np.random.default_rng(0))
    >>> found = find_beats(MemorySource(x, fs=100.0), "ppg")
    >>> bool(abs(found.samples.size - peaks_s.size) <= 2)
    True
    >>> summary = summarize(found, "ppg")
    >>> round(summary["heart_rate_bpm"]), summary["hrv"]["withheld"]
    (72, None)
    """
    fs, n = float(source.fs), source.n_samples
    if signal_type not in SIGNAL_TYPES:
        raise ValueError(f"signal_type must be one of {SIGNAL_TYPES}")
    check_sample_rate(fs, signal_type)
    margin = min(int(margin_s * fs), MAX_CHUNK_SAMPLES // 4)
    chunk = max(min(int(chunk_s * fs), MAX_CHUNK_SAMPLES - 2 * margin), 1)
    samples, quality = [], []
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        lo, hi = max(start - margin, 0), min(stop + margin, n)
        x = fill_non_finite(source, lo, source.read(lo, hi), "interpolate")[:, channel].astype(np.float64)
        peaks, cleaned = detect_beats(x, fs, signal_type)
        mine = (peaks >= start - lo) & (peaks < stop - lo)
        if cleaned_to is not None:
            cleaned[start - lo:stop - lo].astype("<f4").tofile(cleaned_to)
        samples.append(peaks[mine] + lo)
        quality.append(beat_quality(cleaned, peaks, fs, signal_type)[mine])
        if progress:
            progress(stop / n, f"{stop / fs / 3600:.2f} of {n / fs / 3600:.2f} hours read")
    found = np.concatenate(samples) if samples else np.empty(0, np.int64)
    quality_of = np.concatenate(quality) if quality else np.empty(0)
    return Beats(fs, n, found, quality_of, _window_quality(found / fs, quality_of, n / fs))


def _window_of(times_s: np.ndarray, windows: int) -> np.ndarray:
    """Per beat, its window (the last takes what is left of the recording)."""
    return np.minimum((times_s // WINDOW_S).astype(int), windows - 1)


def _window_bounds(times_s: np.ndarray, windows: int) -> np.ndarray:
    """Where each window's beats start in the (sorted) beats, and where the last ends:
    a day has 8,640 windows and 100,000 beats, too many to mask each window's out."""
    return np.searchsorted(_window_of(times_s, windows), np.arange(windows + 1))


def _window_quality(times_s: np.ndarray, quality: np.ndarray, duration_s: float) -> np.ndarray:
    windows = max(int(np.ceil(duration_s / WINDOW_S)), 1)
    bounds = _window_bounds(times_s, windows)
    result = np.zeros(windows)
    for w in range(windows):
        inside = quality[bounds[w]:bounds[w + 1]]
        inside = inside[np.isfinite(inside)]
        result[w] = float(np.median(inside)) if inside.size >= 2 else 0.0
    return result


def summarize(beats: Beats, signal_type: str) -> dict:
    """Heart rate (over the usable windows' normal-to-normal intervals) with its
    confidence (the share of the recording usable), quality, and HRV (``ml.rppg.hrv``,
    the Task Force's definitions; withheld with the reason under MIN_HRV_S of usable
    signal). Raises NoBeats when there is nothing to summarize."""
    duration_s = beats.n_samples / beats.fs
    usable = beats.usable
    usable_share = float(beats.window_usable.mean()) if beats.window_quality.size else 0.0
    if beats.samples.size < 3:
        raise NoBeats(f"no heartbeats found in this {signal_type.upper()} ({beats.samples.size} peaks in "
                      f"{duration_s:.0f} s)", {"beats": int(beats.samples.size), "usable_share": usable_share})
    rate = 60.0 / np.median(np.diff(beats.times_s))
    if not PLAUSIBLE_BPM[0] <= rate <= PLAUSIBLE_BPM[1]:
        raise NoBeats(f"the peaks found come at {rate:.0f} per minute, which is no heart rate "
                      f"({PLAUSIBLE_BPM[0]:g}-{PLAUSIBLE_BPM[1]:g} bpm): is this an {signal_type.upper()}, "
                      "and its sample rate right?", {"rate_per_min": float(rate), "usable_share": usable_share})
    # Beats of usable windows only; an interval across an unusable stretch is no NN interval.
    hrv = _hrv_of_usable(beats.times_s, usable)
    usable_s = usable_share * duration_s
    # A few clean-looking windows in noise are no heart rate (a sensor on no finger).
    heart_rate = hrv["mean_hr_bpm"] if usable_s >= MIN_HEART_RATE_S else None
    if usable_s < MIN_HRV_S:
        hrv = {key: None for key in hrv} | {"withheld": f"only {usable_s:.0f} s of usable signal; HRV needs "
                                                         f"{MIN_HRV_S:g} s"}
    else:
        hrv["withheld"] = None
    hrv["span_s"] = usable_s
    return {
        "signal_type": signal_type,
        "fs_hz": beats.fs,
        "duration_s": duration_s,
        "beats": int(beats.samples.size),
        "usable_beats": int(usable.sum()),
        "usable_share": usable_share,
        "heart_rate_bpm": heart_rate,
        "confidence": usable_share,
        "quality_median": float(np.nanmedian(beats.quality)) if np.isfinite(beats.quality).any() else None,
        "windows": int(beats.window_quality.size),
        "usable_windows": int(beats.window_usable.sum()),
        "hrv": hrv,
    }


def _hrv_of_usable(times_s: np.ndarray, usable: np.ndarray) -> dict:
    """HRV over the usable beats that have a usable neighbour (a lone one makes no
    interval of its own). An interval across unusable beats is left to the interval
    cleaning of ``hrv_metrics``: across a stretch (10 s or more) it is no plausible
    interval; across a false beat it is the true one; across a missed beat it is twice
    its neighbours, and dropped."""
    before = np.concatenate([[False], usable[:-1]])
    after = np.concatenate([usable[1:], [False]])
    return hrv_metrics(times_s[usable & (before | after)])
