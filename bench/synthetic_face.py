"""Synthetic face videos with a known pulse, for accuracy tests and benchmarks.

A real face photograph that ships inside scikit-image (``skimage.data.astronaut()``,
NASA, public domain) has its skin modulated by a pulse wave with heart-rate
variability, then the frame is moved (head motion), lit unevenly over time
(illumination drift), given sensor noise, and encoded lossily (Motion JPEG by default).

The skin's colour change follows the blood-volume pulse signature of de Haan & van
Leest (2014): relative amplitudes 0.33 (R), 0.77 (G), 0.53 (B).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

PBV_SIGNATURE = np.array([0.33, 0.77, 0.53])  # R, G, B


@dataclass(frozen=True)
class Truth:
    mean_hr_bpm: float
    beat_times_s: np.ndarray
    fps: float
    seconds: float


def pulse_shape(phase: np.ndarray) -> np.ndarray:
    """A PPG-like wave of unit peak-to-peak: a systolic rise and a dicrotic bump."""
    wave = np.sin(phase) + 0.35 * np.sin(2 * phase + 0.9) + 0.1 * np.sin(3 * phase + 1.5)
    return wave / 2.7


def face_frame(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(BGR float frame, skin weight 0..1) with the astronaut's face centred."""
    from skimage import data

    rgb = data.astronaut()[:300, 90:390]  # head and shoulders
    width, height = size
    scale = 0.9 * height / rgb.shape[0]
    face = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = np.full((height, width, 3), 90, np.uint8)
    y0, x0 = (height - face.shape[0]) // 2, (width - face.shape[1]) // 2
    canvas[y0:y0 + face.shape[0], x0:x0 + face.shape[1]] = face
    bgr = cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR)
    ycrcb = cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb)
    skin = cv2.inRange(ycrcb, (40, 133, 77), (255, 173, 127)).astype(np.float32) / 255.0
    skin = cv2.GaussianBlur(skin, (9, 9), 3)
    return bgr.astype(np.float32), skin


class VariableRateWriter:
    """Motion JPEG frames in a Matroska file, each at its own presentation time, as phones
    record (OpenCV's VideoWriter writes constant rates only). Needs PyAV (``av``, a test
    dependency)."""

    def __init__(self, path: Path, times_s: np.ndarray, nominal_fps: float, size: tuple[int, int]):
        import av

        self.times_ms = np.round(np.asarray(times_s) * 1000).astype(int)
        self.container = av.open(str(path), "w", format="matroska")
        self.stream = self.container.add_stream("mjpeg", rate=int(round(nominal_fps)))
        self.stream.width, self.stream.height = size
        self.stream.pix_fmt = "yuvj420p"
        self.stream.codec_context.time_base = self.stream.time_base = Fraction(1, 1000)
        self.index = 0

    def write(self, bgr: np.ndarray) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(bgr, format="bgr24").reformat(format="yuvj420p")
        frame.pts, frame.time_base = int(self.times_ms[self.index]), Fraction(1, 1000)
        self.container.mux(self.stream.encode(frame))
        self.index += 1

    def release(self) -> None:
        self.container.mux(self.stream.encode(None))
        self.container.close()


def write_face_video(path: Path, *, hr_bpm: float, seconds: float = 20.0, fps: float = 30.0,
                     size: tuple[int, int] = (640, 480), amplitude: float = 0.01, motion_px: float = 6.0,
                     drift: float = 0.06, noise_std: float = 2.0, hrv: float = 0.04, codec: str = "MJPG",
                     seed: int = 0, frame_times_s: np.ndarray | None = None) -> Truth:
    """Write a face video with a pulse of mean ``hr_bpm`` and return the truth.

    ``amplitude`` is the pulse's relative change of skin brightness (green channel,
    peak to peak); ``hrv`` the relative depth of the respiratory (0.25 Hz) and Mayer-wave
    (0.1 Hz) modulation of the beat rate. ``codec`` is a FOURCC: the default, Motion
    JPEG, is lossy frame by frame; MPEG-4 part 2 ("mp4v") at OpenCV's default bitrate
    quantises the chroma's small frame-to-frame changes away, and with them the pulse
    that chrominance methods (CHROM, POS, ...) read: only GREEN survives it.
    ``frame_times_s`` (seconds, increasing, from 0) makes a variable-rate video instead, of
    nominal rate ``fps``, with a frame at each of these times (``VariableRateWriter``).
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * fps))) / fps if frame_times_s is None else np.asarray(frame_times_s, float)
    frames = t.size
    rate_hz = hr_bpm / 60.0 * (1 + hrv * np.sin(2 * np.pi * 0.25 * t + rng.uniform(0, 6))
                               + 0.5 * hrv * np.sin(2 * np.pi * 0.1 * t + rng.uniform(0, 6)))
    fine = np.arange(0.0, t[-1] + 1.0 / fps, 1.0 / (fps * 20))
    phase = 2 * np.pi * np.cumsum(np.interp(fine, t, rate_hz)) / (fps * 20)
    beats = fine[np.flatnonzero(np.diff(np.floor(phase / (2 * np.pi))) > 0)]
    pulse = pulse_shape(np.interp(t, fine, phase))

    base, skin = face_frame(size)
    if frame_times_s is None:
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, size)
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write {codec} video here")
    else:
        writer = VariableRateWriter(path, t, fps, size)
    bgr_signature = PBV_SIGNATURE[::-1] / PBV_SIGNATURE[1]
    try:
        for i in range(frames):
            light = 1 + drift * np.sin(2 * np.pi * 0.05 * t[i])
            modulation = 1 + amplitude * pulse[i] * skin[:, :, None] * bgr_signature
            frame = base * modulation * light
            angle = 1.5 * np.sin(2 * np.pi * 0.11 * t[i])
            shift = (motion_px * np.sin(2 * np.pi * 0.2 * t[i]), 0.5 * motion_px * np.sin(2 * np.pi * 0.13 * t[i]))
            matrix = cv2.getRotationMatrix2D((size[0] / 2, size[1] / 2), angle, 1.0)
            matrix[:, 2] += shift
            frame = cv2.warpAffine(frame, matrix, size, borderMode=cv2.BORDER_REFLECT)
            frame += rng.normal(0, noise_std, frame.shape).astype(np.float32)
            writer.write(np.clip(frame, 0, 255).astype(np.uint8))
    finally:
        writer.release()
    return Truth(float(np.mean(np.interp(fine, t, rate_hz)) * 60.0), beats, fps, float(t[-1] + 1.0 / fps))
