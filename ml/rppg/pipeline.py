"""From a face video to heart rate, pulse and HRV: decode, find the skin, average its
colour per frame, apply an rPPG method, and read the pulse's spectrum.

    result = analyze_video(path, progress=lambda f, m: print(f, m))
    result.heart_rate.overall_bpm, result.hrv["rmssd_ms"]
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ..errors import EmptyInput, FrameRateTooLow, InvalidInput, NoFaceFound
from . import defaults
from .heart_rate import HeartRate, Spectrum, bandpass, estimate_heart_rate, evidence_band, pulse_spectrum
from .hrv import hrv_metrics, pulse_peaks
from .methods import AUTO_METHODS, apply_method
from .skin import FaceTracker, background_rgb, face_skin_rgb, frame_skin_rgb
from .video import VideoFrames

Progress = Callable[[float, str], None]
#: A pulse band reaching 4 Hz needs at least 8 frames a second (Nyquist).
MIN_FPS = 8.0
#: Below this share of frames with a face, the video is refused.
MIN_FACE_FRACTION = 0.5
#: Beats are timed on the pulse within this distance of the heart rate (Hz), by a
#: band-pass of HRV_BAND_ORDER, flat to about 0.35 Hz either side: heart-rate variability
#: up to 0.35 Hz (breathing up to 21 a minute) keeps its depth. Narrower bands cut the
#: respiratory sidebands: at ±0.35 Hz of order 4, an RMSSD of 147 ms came out 26 % low;
#: at ±0.45 of order 8, 2 % low (``bench/rppg.py``, deep breathing).
HRV_HALF_BAND_HZ = 0.45
HRV_BAND_ORDER = 8
#: HRV is reported only when the beats' timing noise would add at most this share to
#: RMSSD and SDNN (see ``beat_jitter_s``); 10 % leaves room for the noise estimate's own error.
MAX_HRV_INFLATION = 0.10
#: The timing noise the halves measure is taken this many times over before that test:
#: the head's motion and the codec move both halves' beats alike, which the difference
#: of their beat times cannot see. On ``bench/rppg.py``'s moving faces, HRV passed with
#: the measured noise alone (28 and 33 ms) and came out 3.2 and 3.3 times too high.
COMMON_NOISE_FACTOR = 1.5
#: ... and when the beats are whole: no more than this share of their intervals removed
#: as artefacts (a beat missed or invented), and the beats' mean rate within
#: MAX_RATE_DISAGREEMENT of the spectrum's heart rate. On H.264, part of the timing noise
#: is common to both halves of the skin (the encoder's frame-level quantisation), which
#: the halves cannot see; it shows as beats missed, invented or moved.
MAX_REMOVED_INTERVALS = 0.05
MAX_RATE_DISAGREEMENT = 0.02


#: The face's colour is regressed on polynomials of its position up to this degree
#: (``pose_terms``). Chosen on saved traces of ``bench/rppg.py``'s tuned draw and the
#: first half of its unseen one (90 animated faces with a pulse, 90 twins): degree 1
#: gave 70 % of the faces their rate and 2 twins a heart rate; 4, 66 % and none; 5, 61 %
#: and none; 6, 57 % and one face wrong.
POSE_DEGREE = 4
#: With ``roi="face"``, a video in whose first PROBE_S seconds no face is found, while at
#: least MIN_CROP_SKIN of each frame looks like skin, is a crop of skin (a face filling
#: the frame, a forehead or a cheek, a finger on a lens): its traces are then the skin of
#: the whole frame (region ``"frame_skin"``) instead of NO_FACE.
PROBE_S = 1.0
MIN_CROP_SKIN = 0.5


@dataclass
class Traces:
    times_s: np.ndarray  # timestamp of each decoded frame
    rgb: np.ndarray  # [1, 3, frames]: the mean R, G, B of the skin, NaN where no face
    halves: np.ndarray  # [2, 3, frames]: the same of its left and right halves
    regions: list[str]  # "face", "frame_skin" or "full"
    face_fraction: float
    seconds: dict[str, float] = field(default_factory=dict)  # time spent per stage
    #: [3, frames]: the face box's centre x and y and its width (pixels), NaN where no
    #: face; None without a tracked face. (The head's rotation, as the tracked points'
    #: similarity transform gives it, is no witness: a pulse moves the points at the
    #: skin's edges, and the rotation of a still face was coherent with its pulse at 0.91.)
    pose: np.ndarray | None = None
    #: [1, 3, frames]: the mean R, G, B of what is not the head, NaN where unknown; None
    #: where the frame has no background (a crop).
    background: np.ndarray | None = None


def _halves_sample(means: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """One frame's sample: [left, right] x [mean R, G, B, pixels]."""
    return np.column_stack([means, counts])


def extract_traces(frames: VideoFrames, *, roi: str = defaults.ROI, detect_every: int = defaults.DETECT_EVERY,
                   progress: Progress | None = None, progress_every: int = 30) -> Traces:
    """Mean skin colour in each frame, of all the skin and of its left and right halves,
    with the head's pose and the background's colour as witnesses of motion and light.

    ``roi="face"``: the skin of the tracked face (``face_skin_rgb``); a video whose first
    PROBE_S seconds show no face but mostly skin is read as a skin crop (``frame_skin_rgb``,
    region ``"frame_skin"``). ``roi="full"``: every pixel of the frame (a video that is
    already a skin crop).
    """
    tracker = FaceTracker(detect_every=detect_every) if roi == "face" else None
    region = "face" if tracker else "full"
    probe_frames = max(int(round(PROBE_S * (frames.info.fps or 30.0))), 10)
    times, samples, poses, backgrounds, crop_samples, skin_shares = [], [], [], [], [], []
    with_face = 0
    no_pose, no_background = np.full(3, np.nan), np.full(3, np.nan)
    # "decode_wait": time spent waiting for the decoding thread's next frame.
    spent = {"decode_wait": 0.0, "detect": 0.0, "trace": 0.0}
    declared = frames.info.frames
    clock = time.perf_counter()
    for index, (stamp, frame) in enumerate(frames):
        now = time.perf_counter()
        spent["decode_wait"] += now - clock
        if region == "full":
            middle = frame.shape[1] // 2
            sample = np.array([(*cv2.mean(half)[2::-1], half.shape[0] * half.shape[1])
                               for half in (frame[:, :middle], frame[:, middle:])])
            spent["trace"] += time.perf_counter() - now
        elif region == "frame_skin":
            sample = _halves_sample(*frame_skin_rgb(frame)[:2])
            spent["trace"] += time.perf_counter() - now
        else:
            box = tracker.update(frame)
            detected = time.perf_counter()
            spent["detect"] += detected - now
            if box is None:
                sample = np.zeros((2, 4))
                poses.append(no_pose)
                backgrounds.append(no_background)
            else:
                with_face += 1
                sample = _halves_sample(*face_skin_rgb(frame, box))
                poses.append(np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, box[2] - box[0]]))
                backgrounds.append(background_rgb(tracker.small, box * tracker.scale))
            if index < probe_frames:
                means, counts, share = frame_skin_rgb(frame)
                crop_samples.append(_halves_sample(means, counts))
                skin_shares.append(share)
                if index == probe_frames - 1 and with_face == 0 and np.mean(skin_shares) >= MIN_CROP_SKIN:
                    # A crop of skin: read whole from the first frame on.
                    region, samples, sample = "frame_skin", crop_samples[:-1], crop_samples[-1]
            spent["trace"] += time.perf_counter() - detected
        times.append(stamp)
        samples.append(sample)
        if progress and index % progress_every == 0:
            fraction = min(index / declared, 1.0) if declared else 0.0
            progress(0.9 * fraction, f"decoded {index + 1:,}" + (f" of {declared:,} frames" if declared else " frames"))
        clock = time.perf_counter()
    if not samples:
        raise EmptyInput("the video has no frames")
    stacked = np.stack(samples, axis=2)  # [2 halves, R G B pixels, T]
    halves, pixels = stacked[:, :3], stacked[:, 3:]
    with np.errstate(invalid="ignore", divide="ignore"):
        rgb = (np.nan_to_num(halves) * pixels).sum(axis=0, keepdims=True) / pixels.sum(axis=0, keepdims=True)
    halves[np.broadcast_to(pixels == 0, halves.shape)] = np.nan
    fraction = with_face / len(samples) if region == "face" else 1.0
    face = region == "face"
    return Traces(np.array(times), rgb, halves, [region], fraction, spent,
                  pose=np.stack(poses, axis=1) if face else None,
                  background=np.stack(backgrounds, axis=1)[None] if face else None)


def uniform(traces: Traces, nominal_fps: float) -> tuple[np.ndarray, dict[str, np.ndarray | None], float]:
    """(grid times s, the traces on the grid, fs Hz): ``rgb``, ``halves``, ``pose`` and
    ``background`` resampled at an even rate, gaps (frames without a face) filled
    linearly. Variable-rate videos keep their real timing."""
    times = traces.times_s
    if times.size > 1 and not np.all(np.diff(times) > 0):
        times = np.arange(times.size) / nominal_fps  # the container's clock is unusable
    fs = nominal_fps if nominal_fps > 0 else 1.0 / float(np.median(np.diff(times)))
    grid = np.arange(times[0], times[-1] + 0.5 / fs, 1.0 / fs)

    def resampled(values: np.ndarray | None) -> np.ndarray | None:
        if values is None:
            return None
        flat = values.reshape(-1, times.size)
        out = np.empty((flat.shape[0], grid.size))
        for row, series in enumerate(flat):
            known = np.isfinite(series)
            out[row] = np.interp(grid, times[known], series[known]) if known.any() else np.nan
        return out.reshape(*values.shape[:-1], grid.size)

    names = ("rgb", "halves", "pose", "background")
    return grid, {name: resampled(getattr(traces, name)) for name in names}, fs


def _around_heart_rate(pulse: np.ndarray, fs: float, bpm: float | None) -> np.ndarray:
    """The pulse narrowed to the heart rate ± HRV_HALF_BAND_HZ, for timing beats.

    A beat interval that varies is a frequency modulation of the pulse: its sidebands
    lie at the heart rate ± the modulation's frequency (0.04-0.15 Hz for LF, about
    0.25 Hz for breathing at rest), so this band keeps them. What lies further out is
    noise, motion and the dicrotic wave, and each of them moves or splits the peaks: in
    a band of 0.7 to 1.6 times the heart rate, from three small boxes of skin, RMSSD of
    synthetic faces came out two to four times too high. What noise is left in the band
    is measured by ``beat_jitter_s``.
    """
    if not bpm:
        return pulse
    f = bpm / 60.0
    low, high = max(f - HRV_HALF_BAND_HZ, 0.5 * f), min(f + HRV_HALF_BAND_HZ, 0.45 * fs)
    return bandpass(pulse[None, :], fs, (low, high), order=HRV_BAND_ORDER)[0] if low < high else pulse


def beat_jitter_s(halves_pulse: np.ndarray, fs: float, bpm: float) -> float | None:
    """How precisely the beats of the whole skin's pulse are timed (standard deviation, s),
    from the pulses of its two halves ``[2, samples]`` (``Traces.halves``), or None if
    they share too few beats to tell.

    Two halves of the skin are two independent looks at the same beats: the difference
    of their beat times, d = e_left - e_right, has variance 2σ² for a timing noise σ in
    each half, and the whole, their average, has σ²/2 = var(d)/4. A timing noise σ adds
    2σ² to RMSSD² and σ² to SDNN² (the variances of differences and of intervals of
    independent errors), which is what HRV from video overstates.
    """
    beats = [pulse_peaks(_around_heart_rate(_unit(pulse), fs, bpm), fs, bpm) for pulse in halves_pulse]
    left, right = beats
    if left.size < 4 or right.size < 4:
        return None
    nearest = np.clip(np.searchsorted(right, left), 1, right.size - 1)
    nearest = np.where(np.abs(right[nearest - 1] - left) < np.abs(right[nearest] - left), nearest - 1, nearest)
    difference = right[nearest] - left
    matched = np.abs(difference - np.median(difference)) < 0.25 * 60.0 / bpm
    if matched.sum() < 0.5 * min(left.size, right.size) or matched.sum() < 4:
        return None
    return float(np.sqrt(np.var(difference[matched]) / 4))


def _unit(pulse: np.ndarray) -> np.ndarray:
    return (pulse - pulse.mean()) / max(float(pulse.std()), 1e-12)


def _withheld_hrv(hrv: dict, jitter_s: float | None, bpm: float) -> str | None:
    """Why HRV from beats timed with noise ``jitter_s``, of a pulse at ``bpm``, is not to
    be reported, or None."""
    if jitter_s is None:
        return "the two halves of the skin do not share enough beats to tell how precisely they are timed"
    if hrv["rmssd_ms"] is None or hrv["sdnn_ms"] is None:
        return "too few clean beat intervals"
    removed = 1 - hrv["intervals_used"] / max(hrv["beats"] - 1, 1)
    if removed > MAX_REMOVED_INTERVALS:
        return f"{removed:.0%} of the beat intervals were artefacts (beats missed or invented)"
    if abs(hrv["mean_hr_bpm"] - bpm) > MAX_RATE_DISAGREEMENT * bpm:
        return (f"the beats' rate ({hrv['mean_hr_bpm']:.1f} bpm) is not the pulse's ({bpm:.1f} bpm): "
                "beats were missed, invented or moved")
    noise_ms = 1000.0 * jitter_s * COMMON_NOISE_FACTOR
    for name, value, added in (("RMSSD", hrv["rmssd_ms"], 2 * noise_ms**2), ("SDNN", hrv["sdnn_ms"], noise_ms**2)):
        share = 1 - added / value**2
        if share <= 0 or 1 / np.sqrt(share) - 1 > MAX_HRV_INFLATION:
            return (f"beats are timed to ±{1000.0 * jitter_s:.0f} ms (±{noise_ms:.0f} ms with what both halves "
                    f"share), which would make {name} ({value:.0f} ms) more than {MAX_HRV_INFLATION:.0%} too high")
    return None


def without_witnessed(rgb: np.ndarray, witnesses: np.ndarray | None) -> np.ndarray:
    """Colour traces ``[estimators, 3, samples]`` (band-passed, about zero) less their
    least-squares fit on ``witnesses`` ``[k, samples]`` (band-passed alike): what the
    light and the head's motion explain is removed before a method reads the pulse.

    The background's colour witnesses the light and the camera's gain (illumination
    rectification, after Li et al., CVPR 2014, who filter it out adaptively with NLMS);
    the head's position and size (``pose_terms``) witness the shading and the texture
    that move across the skin. A pulse is in neither, so a fit on them takes little of
    it: the share of an unrelated signal's variance removed is about k / samples (19
    witnesses over a 20 s video at 30 fps: 3 %).
    """
    if witnesses is None:
        return rgb
    usable = witnesses[np.all(np.isfinite(witnesses), axis=1) & (witnesses.std(axis=1) > 0)]
    if not usable.shape[0]:
        return rgb
    design = (usable / usable.std(axis=1, keepdims=True)).T  # [samples, k]
    flat = rgb.reshape(-1, rgb.shape[-1]).T  # [samples, estimators x 3]
    fit, *_ = np.linalg.lstsq(design, flat, rcond=1e-6)
    return (flat - design @ fit).T.reshape(rgb.shape)


def pulse_from_traces(rgb: np.ndarray, fs: float, method: str,
                      band_hz: tuple[float, float] = defaults.BAND_HZ,
                      witnesses: np.ndarray | None = None) -> np.ndarray:
    """The band-passed pulse ``[estimators, samples]`` of evenly sampled colour traces
    ``[estimators, 3, samples]`` at ``fs`` Hz by ``method``, less what ``witnesses``
    ``[k, samples]`` (the background's colour, the head's pose) explain
    (``without_witnessed``).

    The traces are first band-passed around their means (as pyVHR pre-filters them):
    slow drift and motion would otherwise set the methods' projections, not the pulse.
    """
    mean = rgb.mean(axis=2, keepdims=True)
    varying = bandpass(rgb - mean, fs, band_hz)
    if witnesses is not None:
        varying = without_witnessed(varying, bandpass(witnesses - witnesses.mean(axis=1, keepdims=True), fs, band_hz))
    return bandpass(apply_method(method, mean + varying, fs), fs, band_hz)


def pose_terms(pose: np.ndarray, degree: int = POSE_DEGREE) -> np.ndarray:
    """``[k, samples]``: the products of the face box's centre x and y (standardised)
    up to ``degree``, and its width, from ``pose`` ``[3, samples]`` (``Traces.pose``).

    The colour of a moving face is a function of where it is: texture, shading and the
    skin map's edges cross the skin's region as the head sways, and not linearly. A sway
    of 0.2 Hz then colours the skin at its harmonics too, inside the pulse band (0.8 and
    1 Hz, 48 and 60 bpm): regressed out on the position alone, two pulse-free twins of
    ``bench/rppg.py``'s unseen draw were given 50 and 57 bpm from 8 and 9 windows of 11.
    """
    x, y, width = pose
    if degree <= 1 or not (np.isfinite(x).any() and np.isfinite(y).any()):
        return pose
    x = (x - np.nanmean(x)) / max(float(np.nanstd(x)), 1e-6)
    y = (y - np.nanmean(y)) / max(float(np.nanstd(y)), 1e-6)
    return np.stack([x ** (d - k) * y ** k for d in range(1, degree + 1) for k in range(d + 1)] + [width])


def witnesses_of(uniform_traces: dict[str, np.ndarray | None]) -> np.ndarray | None:
    """``[k, samples]``: the head's position (``pose_terms``) and size, and the
    background's relative colour, or None."""
    rows = []
    if uniform_traces["pose"] is not None:
        rows.append(pose_terms(uniform_traces["pose"]))
    if uniform_traces["background"] is not None:
        background = uniform_traces["background"][0]
        rows.append(background / np.maximum(np.nanmean(background, axis=1, keepdims=True), 1e-6))
    return np.concatenate(rows) if rows else None


@dataclass
class RppgResult:
    fs: float
    times_s: np.ndarray
    bvp: np.ndarray  # [estimators, samples], band-passed
    pulse: np.ndarray  # the estimators combined, unit variance
    heart_rate: HeartRate
    spectrum: Spectrum
    hrv: dict
    peak_times_s: np.ndarray
    traces: Traces
    method: str
    candidates: tuple[str, ...]  # the methods each window could be read from (one unless AUTO)
    seconds: dict[str, float]

    def summary(self) -> dict:
        hr = self.heart_rate
        return {
            "method": self.method,
            # A heart rate only when it is to be trusted; otherwise null and the reason
            # (HeartRate.unreliable_reason), the best guess kept apart for inspection.
            "heart_rate_bpm": None if hr.unreliable_reason else hr.overall_bpm,
            "reliable": hr.unreliable_reason is None,
            "unreliable_reason": hr.unreliable_reason,
            "best_guess_bpm": hr.overall_bpm,
            "quality": hr.overall_quality,
            "windows": {"total": int(hr.bpm.size), "accepted": hr.windows_used},
            "per_window": [{"t_s": float(t), "bpm": None if not np.isfinite(b) else float(b), "quality": float(q),
                            "method": "+".join(self.candidates) if hr.agreed else self.candidates[hr.candidate]}
                           for t, b, q in zip(hr.times_s, hr.bpm, hr.quality)],
            "hrv": self.hrv,
            "frames": int(self.traces.times_s.size),
            "duration_s": float(self.times_s[-1] - self.times_s[0]) if self.times_s.size else 0.0,
            "fs_hz": self.fs,
            "regions": self.traces.regions,
            "face_fraction": self.traces.face_fraction,
            "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
        }


def analyze_video(path: Path, *, method: str = defaults.METHOD, roi: str = defaults.ROI,
                  window_s: float = defaults.WINDOW_S, step_s: float = defaults.STEP_S,
                  band_hz: tuple[float, float] = defaults.BAND_HZ, min_quality: float = defaults.MIN_QUALITY,
                  detect_every: int = defaults.DETECT_EVERY, fps: float | None = None,
                  progress: Progress | None = None) -> RppgResult:
    """Heart rate, pulse and HRV of the face video at ``path``: its traces
    (``extract_traces``) analysed by ``analyze_traces``.

    Raises UnreadableVideo, EmptyInput, FrameRateTooLow, NoFaceFound (with the fraction
    of frames that had a face), TooShort (shorter than one window), or InvalidInput.

    Examples
    --------
    A simulated face (``ml.rppg.simulate``) at 72 bpm, 16 s of Motion JPEG:

    >>> import tempfile, pathlib
    >>> from ml.rppg.simulate import write_face_video
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "face.avi"
    >>> truth = write_face_video(path, hr_bpm=72.0, seconds=16.0, size=(320, 240))
    >>> result = analyze_video(path)
    >>> abs(result.heart_rate.overall_bpm - truth.mean_hr_bpm) < 2
    True
    """
    _candidates(method)  # an unknown method is refused before the video is decoded
    with VideoFrames(path, fps=fps) as frames:
        nominal = frames.info.fps
        if 0 < nominal < MIN_FPS:
            raise FrameRateTooLow(f"{nominal:g} frames per second is too few for a pulse up to {band_hz[1]:g} Hz; "
                                  f"at least {MIN_FPS:g} are needed", fps=nominal)
        traces = extract_traces(frames, roi=roi, detect_every=detect_every, progress=progress)
    return analyze_traces(traces, nominal, method=method, window_s=window_s, step_s=step_s, band_hz=band_hz,
                          min_quality=min_quality, progress=progress)


def _candidates(method: str) -> tuple[str, ...]:
    method = method.upper()
    if method not in defaults.METHOD_NAMES:
        raise InvalidInput(f"unknown rPPG method {method!r}; one of {', '.join(defaults.METHOD_NAMES)}",
                           field="method")
    return AUTO_METHODS if method == "AUTO" else (method,)


def analyze_traces(traces: Traces, nominal_fps: float, *, method: str = defaults.METHOD,
                   window_s: float = defaults.WINDOW_S, step_s: float = defaults.STEP_S,
                   band_hz: tuple[float, float] = defaults.BAND_HZ, min_quality: float = defaults.MIN_QUALITY,
                   progress: Progress | None = None) -> RppgResult:
    """Heart rate, pulse and HRV of skin-colour traces from a video of ``nominal_fps``
    frames per second (0 if unknown: the timestamps' rate is used).

    ``method`` is one of ``defaults.METHOD_NAMES``: ``"AUTO"`` reads the traces with each
    of AUTO_METHODS and gives the reading ``estimate_heart_rate`` chooses (one method's
    own windows, or the windows where all agree); the pulse, spectrum and HRV then come
    from that reading's method.

    Raises NoFaceFound, FrameRateTooLow, TooShort or InvalidInput.
    """
    candidates = _candidates(method)
    if traces.face_fraction < MIN_FACE_FRACTION:
        raise NoFaceFound(f"a face was found in {traces.face_fraction:.0%} of the frames; at least "
                          f"{MIN_FACE_FRACTION:.0%} are needed (or use roi=full for skin crops)",
                          face_fraction=round(traces.face_fraction, 4))
    grid, resampled, fs = uniform(traces, nominal_fps)
    rgb, halves, witnesses = resampled["rgb"], resampled["halves"], witnesses_of(resampled)
    if fs < MIN_FPS:
        raise FrameRateTooLow(f"{fs:.3g} frames per second is too few; at least {MIN_FPS:g} are needed", fps=fs)
    seconds = dict(traces.seconds)
    clock = time.perf_counter()
    if progress:
        progress(0.9, f"applying {method.upper()}")
    wide = evidence_band(band_hz, fs)  # the heart rate is sought in band_hz, its harmonic may lie beyond
    pulses = np.stack([pulse_from_traces(rgb, fs, name, wide, witnesses) for name in candidates])
    halves_pulses = np.stack([pulse_from_traces(halves, fs, name, wide, witnesses) for name in candidates])
    seconds["method"] = time.perf_counter() - clock
    clock = time.perf_counter()
    heart_rate = estimate_heart_rate(pulses, fs, halves=halves_pulses, window_s=window_s, step_s=step_s,
                                     band=band_hz, min_quality=min_quality)
    chosen = heart_rate.candidate
    bvp = pulses[chosen]
    z = (bvp - bvp.mean(axis=1, keepdims=True)) / np.maximum(bvp.std(axis=1, keepdims=True), 1e-12)
    pulse = z.mean(axis=0)
    peaks = pulse_peaks(_around_heart_rate(pulse, fs, heart_rate.overall_bpm), fs, heart_rate.overall_bpm)
    hrv = hrv_metrics(peaks)
    jitter = None
    if heart_rate.unreliable_reason:  # beats timed from a pulse that is not there are not HRV
        withheld = f"the heart rate is unreliable: {heart_rate.unreliable_reason}"
    else:
        jitter = beat_jitter_s(halves_pulses[chosen], fs, heart_rate.overall_bpm)
        withheld = _withheld_hrv(hrv, jitter, heart_rate.overall_bpm)
    if withheld:
        hrv = {**{name: None for name in hrv}, "beats": hrv["beats"], "intervals_used": 0}
    hrv["withheld"] = withheld
    hrv["beat_jitter_ms"] = None if jitter is None else round(1000.0 * jitter, 2)
    spectrum = pulse_spectrum(bvp, fs, band_hz)
    seconds["hr"] = time.perf_counter() - clock
    if progress:
        progress(1.0, f"heart rate unreliable: {heart_rate.unreliable_reason}" if heart_rate.unreliable_reason
                 else f"heart rate {heart_rate.overall_bpm:.1f} bpm")
    return RppgResult(fs, grid, bvp, pulse, heart_rate, spectrum, hrv, peaks, traces, method.upper(), candidates,
                      seconds)
