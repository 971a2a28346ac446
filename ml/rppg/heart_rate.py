"""Heart rate from a pulse signal: band-pass, then the Welch spectrum's peak per window.

Frequencies are in Hz, times in seconds, heart rates in beats per minute (bpm).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from ..errors import InvalidInput, TooShort
from .defaults import BAND_HZ, MIN_QUALITY, STEP_S, WINDOW_S

#: The half-width of a pulse peak, as a share of its frequency (see ``spectral_peak``).
PEAK_HALF_WIDTH = 0.05


def bandpass(x: np.ndarray, fs: float, band: tuple[float, float] = BAND_HZ, order: int = 4) -> np.ndarray:
    """Zero-phase Butterworth band-pass along the last axis (``scipy.signal.sosfiltfilt``)."""
    sos = signal.butter(order, band, btype="bandpass", output="sos", fs=fs)
    padlen = min(x.shape[-1] - 1, 3 * (2 * sos.shape[0] + 1))
    return signal.sosfiltfilt(sos, x, axis=-1, padlen=padlen)


@dataclass(frozen=True)
class Spectrum:
    freqs_hz: np.ndarray
    power: np.ndarray  # normalised to unit sum over the band, averaged over estimators


def pulse_spectrum(bvp: np.ndarray, fs: float, band: tuple[float, float] = BAND_HZ,
                   nfft_min: int = 4096) -> Spectrum:
    """Welch power spectrum of ``bvp`` (``[estimators, samples]``) inside ``band``.

    Each estimator's spectrum is normalised to unit power in the band, then they are
    averaged with weights that grow with each one's own peak quality (its share of power
    at its peak, squared): a region spoiled by motion or hair does not drown the clean ones.
    """
    bvp = np.atleast_2d(bvp)
    nperseg = bvp.shape[-1]
    nfft = max(nfft_min, 1 << int(np.ceil(np.log2(nperseg))))
    freqs, power = signal.welch(bvp, fs=fs, window="hann", nperseg=nperseg, nfft=nfft, detrend="constant", axis=-1)
    inside = (freqs >= band[0]) & (freqs <= band[1])
    freqs, power = freqs[inside], power[:, inside]
    power = power / np.maximum(power.sum(axis=1, keepdims=True), 1e-300)
    if power.shape[0] > 1:
        weights = np.array([spectral_peak(Spectrum(freqs, row))[1] for row in power]) ** 2
        if weights.sum() > 0:
            return Spectrum(freqs, weights @ power / weights.sum())
    return Spectrum(freqs, power.mean(axis=0))


def evidence_band(band: tuple[float, float], fs: float) -> tuple[float, float]:
    """The band a pulse is filtered to for its evidence (Hz): ``band`` with its upper edge
    doubled, below Nyquist, so that a fast pulse's first harmonic is kept (at 150 bpm it
    lies at 5 Hz, beyond a 4 Hz band's edge)."""
    return band[0], max(band[1], min(2 * band[1], 0.45 * fs))


def spectral_peak(spectrum: Spectrum, search_hz: tuple[float, float] | None = None,
                  harmonic_tolerance_hz: float = 0.2) -> tuple[float, float]:
    """(peak frequency in Hz, quality from 0 to 1) of a pulse spectrum, the peak sought in
    ``search_hz`` (all of the spectrum if None).

    The peak is refined by parabolic interpolation over the three bins around the
    maximum. The quality is the share of power near the peak and near its first
    harmonic: the signal-to-noise measure of de Haan & Jeanne (2013), as a fraction,
    with their ±0.1 Hz around the peak and ``harmonic_tolerance_hz`` around the harmonic,
    both widened to ±PEAK_HALF_WIDTH of the peak's frequency where that is more: the beat
    rate varies by a share of itself (4 % is ordinary at rest), and so does the width of
    its peak. The share is of the power up to the search band's upper edge, or to just
    past the harmonic where that lies beyond it (a spectrum over ``evidence_band``): a
    fast pulse's harmonic is evidence too, without which clear pulses at 150 to 180 bpm
    kept a quality of 0.25 to 0.45. A peak on the search band's edge has quality 0: it is
    no pulse, only the edge of a slope.
    """
    freqs, power = spectrum.freqs_hz, spectrum.power
    low, high = search_hz or (freqs[0], freqs[-1])
    inside = np.flatnonzero((freqs >= low) & (freqs <= high))
    k = int(inside[np.argmax(power[inside])])
    if k == inside[0] or k == inside[-1]:
        return float(freqs[k]), 0.0
    a, b, c = power[k - 1:k + 2]
    denominator = a - 2 * b + c
    shift = 0.5 * (a - c) / denominator if denominator != 0 else 0.0
    peak = float(freqs[k] + shift * (freqs[1] - freqs[0]))
    half_width = max(0.1, PEAK_HALF_WIDTH * peak)
    harmonic_width = max(harmonic_tolerance_hz, 2 * half_width)
    counted = freqs <= max(high, 2 * peak + harmonic_width)
    near = (np.abs(freqs - peak) <= half_width) | (np.abs(freqs - 2 * peak) <= harmonic_width)
    return peak, float(power[near & counted].sum() / max(power[counted].sum(), 1e-300))


#: A window's pulse must be one both halves of the skin see (``halves_see_the_peak``): the
#: halves coherent at it (magnitude-squared coherence over Welch segments of
#: COHERENCE_SEGMENT_S) at least MIN_HALVES_COHERENCE with each half's own spectral peak
#: within the peak's half-width of the window's, or at least HALVES_COHERENCE_ALONE
#: wherever the halves peak (a moving head can put one half's highest peak at the motion).
#: The pulse is one signal under all the skin (Wang, Stuijk & de Haan 2015), while sensor
#: and codec noise differ from half to half: two halves of independent noise reach a
#: coherence of 0.3 in about a third of 10 s windows, 0.7 in about 1 % (Welch's estimate
#: over 4 segments). Of 64 pulse-free synthetic faces (H.264, 320x240, 16 and 20 s),
#: 16 were given a heart rate as reliable without this, none with it, and all 24 faint-pulse
#: faces beside them (0.5 to 1 %) kept theirs. The coherence at 0.3 alone let 6 of the 64
#: through; the peaks alone, 1 of 60 other pulse-free faces (both together: none).
MIN_HALVES_COHERENCE = 0.3
HALVES_COHERENCE_ALONE = 0.7
COHERENCE_SEGMENT_S = 4.0

#: The overall heart rate is trusted only when at least this share of its windows held
#: a clear pulse. Measured on synthetic faces encoded H.264 (640x480, CRF 23, pulse
#: amplitude 0.5 %): every estimate more than 10 bpm off came from 1 or 2 windows of 11
#: (POS gave 65 bpm for 100 from one), while the right ones held 9 to 11. On
#: ``bench/rppg.py``'s 60 animated faces and their 60 pulse-free twins, the twins given a
#: heart rate (the head's motion, 48 to 93 bpm) held 6 or 7 windows of 11: at a half, 4
#: twins were given one and 87 % of the faces their rate; at 0.6, 1 twin and 75 %; at
#: 0.7, none and 70 % (none wrong at any).
MIN_ACCEPTED_SHARE = 0.7
#: ... and when its accepted windows agree: the interquartile range of their heart rates
#: about a running median (of RUNNING_WINDOWS windows, which follows a heart rate that
#: changes over minutes) is at most this (bpm). On ``bench/rppg.py``'s synthetic faces,
#: the results accepted yet wrong mixed windows at the heart rate with windows at a
#: harmonic of the head's motion; no right one spread over more than 8 bpm.
MAX_SPREAD_BPM = 8.0
RUNNING_WINDOWS = 15
#: Of several methods (AUTO), a window whose peak every method finds, within the peak's
#: half-width, counts when each method's quality there is at least this (and both halves
#: see the peak in one of them). Chosen on saved traces of the bench's tuned draw of
#: 60 animated faces, from an earlier tracker: at 0.1, 75 % were given their rate but a
#: twin held 7 windows of 11; at 0.3, 55 %. With the tracker kept, 0.15 changed nothing.
MIN_AGREEING_QUALITY = 0.2


@dataclass
class HeartRate:
    """Heart rate per window and overall, all read from one candidate pulse (the index of
    the method, see ``estimate_heart_rate``). Rejected windows have ``bpm`` NaN."""

    times_s: np.ndarray  # centre of each window
    bpm: np.ndarray
    quality: np.ndarray
    overall_bpm: float | None
    overall_quality: float
    windows_used: int
    candidate: int = 0
    #: Read from the windows where every candidate found the same peak (the pulse is
    #: then ``candidate``'s, the one of the highest mean quality).
    agreed: bool = False

    @property
    def spread_bpm(self) -> float | None:
        """Interquartile range (bpm) of the accepted windows' heart rates about their running median."""
        if self.windows_used < 2:
            return None
        half = RUNNING_WINDOWS // 2
        padded = np.pad(self.bpm, half, constant_values=np.nan)
        running = np.nanmedian(np.lib.stride_tricks.sliding_window_view(padded, RUNNING_WINDOWS), axis=1)
        residual = (self.bpm - running)[np.isfinite(self.bpm)]
        upper, lower = np.percentile(residual, [75, 25])
        return float(upper - lower)

    @property
    def unreliable_reason(self) -> str | None:
        """Why the overall heart rate is not to be trusted as a number, or None if it is."""
        if self.overall_bpm is None:
            return "no window held a clear pulse"
        if self.windows_used < MIN_ACCEPTED_SHARE * self.bpm.size:
            return (f"only {self.windows_used} of {self.bpm.size} windows held a clear pulse "
                    f"(at least {MIN_ACCEPTED_SHARE:.0%} are needed)")
        spread = self.spread_bpm
        if spread is not None and spread > MAX_SPREAD_BPM:
            return (f"the windows that held a pulse disagree: their heart rates spread over {spread:.0f} bpm "
                    f"(at most {MAX_SPREAD_BPM:g})")
        return None

def halves_see_the_peak(halves: np.ndarray, fs: float, peak_hz: float,
                        band: tuple[float, float] = BAND_HZ) -> bool:
    """Whether both halves of the skin, ``halves`` ``[2, samples]`` at ``fs`` Hz, show a
    pulse at ``peak_hz``: their magnitude-squared coherence there (Welch segments of
    COHERENCE_SEGMENT_S, ``scipy.signal.coherence``) is at least HALVES_COHERENCE_ALONE,
    or at least MIN_HALVES_COHERENCE with each half's own spectral peak within
    ``max(0.1 Hz, PEAK_HALF_WIDTH * peak_hz)`` of ``peak_hz``.

    A pulse is one signal under all the skin; the principle is that of W. Wang, S. Stuijk,
    G. de Haan, "Exploiting spatial redundancy of image sensor for motion robust rPPG",
    IEEE Transactions on Biomedical Engineering 62(2), 415-425, 2015. Halves without skin
    in the window (NaN) see nothing.
    """
    if not np.all(np.isfinite(halves)):
        return False
    segment = min(int(round(COHERENCE_SEGMENT_S * fs)), halves.shape[-1])
    freqs, coherence = signal.coherence(halves[0], halves[1], fs=fs, nperseg=segment)
    at_peak = float(np.interp(peak_hz, freqs, coherence))
    if at_peak >= HALVES_COHERENCE_ALONE:
        return True
    tolerance = max(0.1, PEAK_HALF_WIDTH * peak_hz)
    return at_peak >= MIN_HALVES_COHERENCE and all(
        abs(spectral_peak(pulse_spectrum(half, fs, band))[0] - peak_hz) <= tolerance for half in halves)


def estimate_heart_rate(bvp: np.ndarray, fs: float, *, halves: np.ndarray | None = None, window_s: float = WINDOW_S,
                        step_s: float = STEP_S, band: tuple[float, float] = BAND_HZ,
                        min_quality: float = MIN_QUALITY) -> HeartRate:
    """Heart rate from a pulse ``bvp`` sampled at ``fs`` Hz: ``[samples]``,
    ``[estimators, samples]``, or ``[candidates, estimators, samples]`` (the pulses of
    several methods).

    Windows of ``window_s`` seconds every ``step_s`` seconds each give the Welch
    spectrum's peak (see ``spectral_peak``). A window is accepted when its quality is at
    least ``min_quality`` and, if ``halves`` is given (the same candidates' pulses of the
    skin's left and right halves, ``[candidates, 2, samples]``), both halves see its peak
    (``halves_see_the_peak``). A rejected window is given no invented number. The
    overall heart rate is the median of the accepted windows, or None if none was.

    Of several candidates, there is one more reading: the windows where every candidate
    finds the same peak (within ``max(0.1 Hz, PEAK_HALF_WIDTH * peak)``), each with a
    quality of at least MIN_AGREEING_QUALITY, and both halves see it in one of them
    (``HeartRate.agreed``). The result is the reading whose windows make it reliable
    (``HeartRate.unreliable_reason``), the most of them if several are; otherwise the
    one with the most accepted windows, unreliable. Windows are never pooled across
    candidates (one window from this method, the next from that): two methods that each
    decline must not add up to an accept (pooled, 2 of 10 pulse-free animated faces were
    given a heart rate that neither GREEN nor POS gave alone). Agreement asks more of a
    window than either method alone, at a lower quality: GREEN keeps what POS cancels as
    shading, POS what GREEN takes from the light, and a pulse is what both find. With it
    (and the position's polynomials of ``ml.rppg.pipeline.pose_terms``), one run of
    ``bench/rppg.py --quick`` gave 91 of 120 animated faces their heart rate (1 wrong)
    and none of their 120 pulse-free twins one; without it, on saved traces of the 60
    faces of the tuned draw, 48 % were given theirs.

    Raises
    ------
    TooShort
        If the signal is shorter than one window.
    """
    candidates = np.asarray(bvp, dtype=np.float64)
    candidates = candidates.reshape((1,) * (3 - candidates.ndim) + candidates.shape)
    if halves is not None:
        halves = np.asarray(halves, dtype=np.float64)
        if halves.shape != (candidates.shape[0], 2, candidates.shape[-1]):
            raise InvalidInput(f"halves must have shape {(candidates.shape[0], 2, candidates.shape[-1])}, "
                               f"not {halves.shape}")
    length = int(round(window_s * fs))
    step = max(int(round(step_s * fs)), 1)
    if candidates.shape[-1] < length or length < 8:
        raise TooShort(f"the pulse lasts {candidates.shape[-1] / fs:.1f} s, shorter than one {window_s:g} s window",
                       duration_s=candidates.shape[-1] / fs, window_s=window_s)
    starts = np.arange(0, candidates.shape[-1] - length + 1, step)
    times = (starts + length / 2) / fs
    several = candidates.shape[0] > 1
    evidence = evidence_band(band, fs)
    peaks_hz = np.empty((candidates.shape[0], starts.size))
    qualities = np.empty_like(peaks_hz)
    for index, pulse in enumerate(candidates):
        for k, start in enumerate(starts):
            peaks_hz[index, k], qualities[index, k] = spectral_peak(
                pulse_spectrum(pulse[:, start:start + length], fs, evidence), band)
    # Whether both halves of the skin see each peak, asked only where the window could
    # count: its quality enough for its method's own reading, or for agreement.
    both_halves = qualities >= (min(min_quality, MIN_AGREEING_QUALITY) if several else min_quality)
    if halves is not None:
        for index, k in zip(*np.nonzero(both_halves)):
            both_halves[index, k] = halves_see_the_peak(halves[index, :, starts[k]:starts[k] + length], fs,
                                                        peaks_hz[index, k], band)
    seen = (qualities >= min_quality) & both_halves

    def read(rates_hz: np.ndarray, accepted: np.ndarray, quality: np.ndarray, candidate: int,
             agreed: bool = False) -> HeartRate:
        rates = np.where(accepted, rates_hz * 60.0, np.nan)
        return HeartRate(times, rates, quality, float(np.median(rates[accepted])) if accepted.any() else None,
                         float(np.mean(quality)), int(accepted.sum()), candidate, agreed)

    results = [read(peaks_hz[index], seen[index], qualities[index], index) for index in range(candidates.shape[0])]
    if several:
        # Windows where every method finds the same peak (see the docstring).
        tolerance = np.maximum(0.1, PEAK_HALF_WIDTH * peaks_hz.mean(axis=0))
        agreeing = ((np.ptp(peaks_hz, axis=0) <= tolerance) & (qualities.min(axis=0) >= MIN_AGREEING_QUALITY)
                    & both_halves.any(axis=0))
        best = int(np.argmax(qualities.mean(axis=1)))
        results.append(read(peaks_hz[best], agreeing, qualities.max(axis=0), best, agreed=True))
    return max(results, key=lambda hr: (hr.unreliable_reason is None, hr.windows_used, hr.overall_quality))
