"""From a face video to heart rate, pulse and HRV: decode, find the skin, average its
colour per region and frame, apply an rPPG method, and read the pulse's spectrum.

    result = analyze_video(path, method="POS", progress=lambda f, m: print(f, m))
    result.heart_rate.overall_bpm, result.hrv["rmssd_ms"]
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ..errors import EmptyInput, InvalidInput
from .heart_rate import DEFAULT_BAND_HZ, HeartRate, Spectrum, bandpass, estimate_heart_rate, pulse_spectrum
from .hrv import hrv_metrics, pulse_peaks
from .methods import apply_method
from .skin import FaceTracker, mean_skin_rgb, region_boxes
from .video import VideoFrames

Progress = Callable[[float, str], None]
#: A pulse band reaching 4 Hz needs at least 8 frames a second (Nyquist).
MIN_FPS = 8.0
#: Below this share of frames with a face, the video is refused.
MIN_FACE_FRACTION = 0.5
#: Beats are timed on the pulse within this distance of the heart rate (Hz): heart-rate
#: variability up to 0.3 Hz (breathing up to 18 a minute) is kept, faster is attenuated.
HRV_HALF_BAND_HZ = 0.3


class NoFaceFound(InvalidInput):
    code = "NO_FACE"


class FrameRateTooLow(InvalidInput):
    code = "FRAME_RATE_TOO_LOW"


@dataclass
class Traces:
    times_s: np.ndarray  # timestamp of each decoded frame
    rgb: np.ndarray  # [estimators, 3, frames], NaN where no face
    regions: list[str]
    face_fraction: float
    seconds: dict[str, float] = field(default_factory=dict)  # time spent per stage


def extract_traces(frames: VideoFrames, *, roi: str = "face", detect_every: int = 10,
                   progress: Progress | None = None, progress_every: int = 30) -> Traces:
    """Mean skin colour of each region in each frame.

    ``roi="face"``: forehead and both cheeks of the tracked face, skin pixels only.
    ``roi="full"``: the whole frame (a video that is already a skin crop).
    """
    tracker = FaceTracker(detect_every=detect_every) if roi == "face" else None
    regions = ["forehead", "left_cheek", "right_cheek"] if tracker else ["full"]
    times, samples, with_face = [], [], 0
    # "decode_wait": time spent waiting for the decoding thread's next frame.
    spent = {"decode_wait": 0.0, "detect": 0.0, "trace": 0.0}
    declared = frames.info.frames
    clock = time.perf_counter()
    for index, (stamp, frame) in enumerate(frames):
        now = time.perf_counter()
        spent["decode_wait"] += now - clock
        if tracker is None:
            b, g, r, _ = cv2.mean(frame)
            sample = np.array([[r, g, b]])
            spent["trace"] += time.perf_counter() - now
        else:
            box = tracker.update(frame)
            detected = time.perf_counter()
            spent["detect"] += detected - now
            if box is None:
                sample = np.full((len(regions), 3), np.nan)
            else:
                with_face += 1
                boxes = region_boxes(box, frame.shape)
                sample = np.stack([mean_skin_rgb(frame, boxes[name]) for name in regions])
            spent["trace"] += time.perf_counter() - detected
        times.append(stamp)
        samples.append(sample)
        if progress and index % progress_every == 0:
            fraction = min(index / declared, 1.0) if declared else 0.0
            progress(0.9 * fraction, f"decoded {index + 1:,}" + (f" of {declared:,} frames" if declared else " frames"))
        clock = time.perf_counter()
    if not samples:
        raise EmptyInput("the video has no frames")
    rgb = np.stack(samples, axis=2)  # [E, 3, T]
    fraction = with_face / len(samples) if tracker else 1.0
    return Traces(np.array(times), rgb, regions, fraction, spent)


def uniform(traces: Traces, nominal_fps: float) -> tuple[np.ndarray, np.ndarray, float]:
    """(grid times s, rgb on the grid, fs Hz): traces resampled at an even rate, gaps
    (frames without a face) filled linearly. Variable-rate videos keep their real timing."""
    times = traces.times_s
    if times.size > 1 and not np.all(np.diff(times) > 0):
        times = np.arange(times.size) / nominal_fps  # the container's clock is unusable
    fs = nominal_fps if nominal_fps > 0 else 1.0 / float(np.median(np.diff(times)))
    grid = np.arange(times[0], times[-1] + 0.5 / fs, 1.0 / fs)
    flat = traces.rgb.reshape(-1, times.size)
    out = np.empty((flat.shape[0], grid.size))
    for row, values in enumerate(flat):
        known = np.isfinite(values)
        out[row] = np.interp(grid, times[known], values[known]) if known.any() else np.nan
    return grid, out.reshape(traces.rgb.shape[0], 3, grid.size), fs


def _around_heart_rate(pulse: np.ndarray, fs: float, bpm: float | None) -> np.ndarray:
    """The pulse narrowed to the heart rate ± HRV_HALF_BAND_HZ, for timing beats.

    A beat interval that varies is a frequency modulation of the pulse: its sidebands
    lie at the heart rate ± the modulation's frequency (0.04-0.15 Hz for LF, about
    0.25 Hz for breathing at rest), so this band keeps them. What lies further out is
    noise, motion and the dicrotic wave, and each of them moves or splits the peaks: in
    a band of 0.7 to 1.6 times the heart rate, RMSSD of synthetic faces came out two to
    four times too high (``bench/rppg.py`` measures it).
    """
    if not bpm:
        return pulse
    f = bpm / 60.0
    low, high = max(f - HRV_HALF_BAND_HZ, 0.5 * f), min(f + HRV_HALF_BAND_HZ, 0.45 * fs)
    return bandpass(pulse[None, :], fs, (low, high), order=4)[0] if low < high else pulse


def pulse_from_traces(rgb: np.ndarray, fs: float, method: str,
                      band_hz: tuple[float, float] = DEFAULT_BAND_HZ) -> np.ndarray:
    """The band-passed pulse ``[estimators, samples]`` of evenly sampled colour traces
    ``[estimators, 3, samples]`` at ``fs`` Hz by ``method``.

    The traces are first band-passed around their means (as pyVHR pre-filters them):
    slow drift and motion would otherwise set the methods' projections, not the pulse.
    """
    mean = rgb.mean(axis=2, keepdims=True)
    return bandpass(apply_method(method, mean + bandpass(rgb - mean, fs, band_hz), fs), fs, band_hz)


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
    seconds: dict[str, float]

    def summary(self) -> dict:
        hr = self.heart_rate
        return {
            "method": self.method,
            "heart_rate_bpm": hr.overall_bpm,
            # A number to trust only when reliable; otherwise the reason (see HeartRate.unreliable_reason).
            "reliable": hr.unreliable_reason is None,
            "unreliable_reason": hr.unreliable_reason,
            "quality": hr.overall_quality,
            "windows": {"total": int(hr.bpm.size), "accepted": hr.windows_used},
            "per_window": [{"t_s": float(t), "bpm": None if not np.isfinite(b) else float(b), "quality": float(q)}
                           for t, b, q in zip(hr.times_s, hr.bpm, hr.quality)],
            "hrv": self.hrv,
            "frames": int(self.traces.times_s.size),
            "duration_s": float(self.times_s[-1] - self.times_s[0]) if self.times_s.size else 0.0,
            "fs_hz": self.fs,
            "regions": self.traces.regions,
            "face_fraction": self.traces.face_fraction,
            "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
        }


def analyze_video(path: Path, *, method: str = "POS", roi: str = "face", window_s: float = 10.0,
                  step_s: float = 1.0, band_hz: tuple[float, float] = DEFAULT_BAND_HZ, min_quality: float = 0.4,
                  detect_every: int = 10, fps: float | None = None, progress: Progress | None = None) -> RppgResult:
    """Heart rate, pulse and HRV of the face video at ``path``.

    Raises UnreadableVideo, EmptyInput, FrameRateTooLow, NoFaceFound (with the fraction
    of frames that had a face), TooShort (shorter than one window), or InvalidInput.
    """
    with VideoFrames(path, fps=fps) as frames:
        nominal = frames.info.fps
        if 0 < nominal < MIN_FPS:
            raise FrameRateTooLow(f"{nominal:g} frames per second is too few for a pulse up to {band_hz[1]:g} Hz; "
                                  f"at least {MIN_FPS:g} are needed", fps=nominal)
        traces = extract_traces(frames, roi=roi, detect_every=detect_every, progress=progress)
    if traces.face_fraction < MIN_FACE_FRACTION:
        raise NoFaceFound(f"a face was found in {traces.face_fraction:.0%} of the frames; at least "
                          f"{MIN_FACE_FRACTION:.0%} are needed (or use roi=full for skin crops)",
                          face_fraction=round(traces.face_fraction, 4))
    grid, rgb, fs = uniform(traces, nominal)
    if fs < MIN_FPS:
        raise FrameRateTooLow(f"{fs:.3g} frames per second is too few; at least {MIN_FPS:g} are needed", fps=fs)
    seconds = dict(traces.seconds)
    clock = time.perf_counter()
    if progress:
        progress(0.9, f"applying {method}")
    bvp = pulse_from_traces(rgb, fs, method, band_hz)
    seconds["method"] = time.perf_counter() - clock
    clock = time.perf_counter()
    heart_rate = estimate_heart_rate(bvp, fs, window_s=window_s, step_s=step_s, band=band_hz, min_quality=min_quality)
    z = (bvp - bvp.mean(axis=1, keepdims=True)) / np.maximum(bvp.std(axis=1, keepdims=True), 1e-12)
    pulse = z.mean(axis=0)
    peaks = pulse_peaks(_around_heart_rate(pulse, fs, heart_rate.overall_bpm), fs, heart_rate.overall_bpm)
    hrv = hrv_metrics(peaks)
    if heart_rate.unreliable_reason:  # beats timed from a pulse that is not there are not HRV
        hrv = {**{name: None for name in hrv}, "beats": hrv["beats"], "intervals_used": 0,
               "withheld": f"the heart rate is unreliable: {heart_rate.unreliable_reason}"}
    else:
        hrv["withheld"] = None
    spectrum = pulse_spectrum(bvp, fs, band_hz)
    seconds["hr"] = time.perf_counter() - clock
    if progress:
        progress(1.0, f"heart rate {heart_rate.overall_bpm:.1f} bpm" if heart_rate.overall_bpm else "no plausible pulse")
    return RppgResult(fs, grid, bvp, pulse, heart_rate, spectrum, hrv, peaks, traces, method.upper(), seconds)
