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


class PyAVWriter:
    """Frames written through PyAV (``av``, a test dependency), each at its own
    presentation time: Motion JPEG in Matroska for variable-rate videos as phones record
    them (OpenCV's VideoWriter writes constant rates only), or H.264 (libx264, yuv420p,
    the ``crf`` given, preset medium) in MP4, as phones and webcams write video."""

    def __init__(self, path: Path, times_s: np.ndarray, nominal_fps: float, size: tuple[int, int],
                 codec: str = "mjpeg", crf: int = 23):
        import av

        self.times_ms = np.round(np.asarray(times_s) * 1000).astype(int)
        self.container = av.open(str(path), "w", format="matroska" if codec == "mjpeg" else "mp4")
        self.stream = self.container.add_stream(codec, rate=int(round(nominal_fps)))
        self.stream.width, self.stream.height = size
        self.pix_fmt = self.stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if codec == "libx264":
            # A seed must pin down what a test or the bench decodes. x264's assembly for
            # macroblock-tree rate control made the same frames into different videos from
            # encode to encode (with asm=0 it did not), so it is off (phones' hardware
            # encoders have none either); and x264's output depends on its thread count,
            # which would follow the machine's cores, so it runs on one.
            self.stream.options = {"crf": str(crf), "preset": "medium", "threads": "1", "x264-params": "mbtree=0"}
        self.stream.codec_context.time_base = self.stream.time_base = Fraction(1, 1000)
        self.index = 0

    def write(self, bgr: np.ndarray) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(bgr, format="bgr24").reformat(format=self.pix_fmt)
        frame.pts, frame.time_base = int(self.times_ms[self.index]), Fraction(1, 1000)
        self.container.mux(self.stream.encode(frame))
        self.index += 1

    def release(self) -> None:
        self.container.mux(self.stream.encode(None))
        self.container.close()


#: Wavelengths (nm) of the camera's R, G and B, for melanin's absorption.
RGB_WAVELENGTHS_NM = np.array([600.0, 550.0, 470.0])


def melanin_transmission(optical_density: float) -> np.ndarray:
    """Share of light through the epidermis once, for R, G, B, at a melanin optical
    density ``optical_density`` at 550 nm (0: the photograph's skin as it is).

    Melanin's absorption falls with wavelength as λ^-3.33 (S. L. Jacques, "Optical
    properties of biological tissues: a review", Physics in Medicine and Biology 58(11),
    R37-R61, 2013): darker skin loses more blue and green than red.
    """
    return np.exp(-optical_density * (RGB_WAVELENGTHS_NM / 550.0) ** -3.33)


#: Share of the photographed skin's light reflected at its surface, which carries no
#: pulse: about the Fresnel reflectance of skin (refractive index 1.4-1.5: 3-4 %) and
#: some scattering in the stratum corneum.
SURFACE_SHARE = 0.1


def write_face_video(path: Path, *, hr_bpm: float, seconds: float = 20.0, fps: float = 30.0,
                     size: tuple[int, int] = (640, 480), amplitude: float = 0.01, motion_px: float = 6.0,
                     drift: float = 0.06, flicker: float = 0.0, noise_std: float = 2.0, hrv: float = 0.04,
                     melanin: float = 0.0, codec: str = "MJPG", crf: int = 23, seed: int = 0,
                     frame_times_s: np.ndarray | None = None) -> Truth:
    """Write a face video with a pulse of mean ``hr_bpm`` and return the truth.

    ``amplitude`` is the pulse's relative change of skin brightness (green channel,
    peak to peak) of the photographed skin; ``hrv`` the relative depth of the
    respiratory (0.25 Hz) and Mayer-wave (0.1 Hz) modulation of the beat rate.
    ``drift`` is a slow (0.05 Hz) change of the light, ``flicker`` the relative standard
    deviation of a fast one (band-limited noise, 0.1 to 5 Hz, as from a screen or
    passing shade), both on the whole frame. ``melanin`` darkens the skin
    (``melanin_transmission``, through the epidermis in and out) and, since the light
    reflected at the skin's surface carries no pulse (``SURFACE_SHARE``), makes the pulse
    shallower too: 0.5 and 1.0 are about medium and dark brown skin.
    ``codec`` is a FOURCC written by OpenCV, or ``"h264"`` (PyAV's libx264 at ``crf``,
    what phones and webcams write). Motion JPEG, the default, is lossy frame by frame;
    MPEG-4 part 2 ("mp4v") at OpenCV's default bitrate quantises the chroma's small
    frame-to-frame changes away, and with them the pulse that chrominance methods
    (CHROM, POS, ...) read.
    ``frame_times_s`` (seconds, increasing, from 0) makes a variable-rate video instead, of
    nominal rate ``fps``, with a frame at each of these times (``PyAVWriter``).
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
    light = 1 + drift * np.sin(2 * np.pi * 0.05 * t)
    if flicker:
        light = light + flicker * _band_limited_noise(rng, t, (0.1, 5.0))

    base, skin = face_frame(size)
    # Skin of another tone: its diffuse part through melanin twice, its surface part as it is.
    diffuse = (1 - SURFACE_SHARE) * melanin_transmission(melanin)[::-1] ** 2  # B, G, R
    tone = 1 + skin[:, :, None] * (SURFACE_SHARE + diffuse - 1)
    depth = amplitude * (diffuse / (SURFACE_SHARE + diffuse)) / (1 - SURFACE_SHARE)
    base = (base * tone).astype(np.float32)
    if codec == "h264" or frame_times_s is not None:
        writer = PyAVWriter(path, t, fps, size, codec="libx264" if codec == "h264" else "mjpeg", crf=crf)
    else:
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, size)
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write {codec} video here")
    pulsing = (skin[:, :, None] * (depth * PBV_SIGNATURE[::-1] / PBV_SIGNATURE[1])).astype(np.float32)
    cv2.setRNGSeed(seed)
    noise = np.empty_like(base)
    try:
        for i in range(frames):
            frame = base * (pulsing * np.float32(pulse[i] * light[i]) + np.float32(light[i]))
            angle = 1.5 * np.sin(2 * np.pi * 0.11 * t[i])
            shift = (motion_px * np.sin(2 * np.pi * 0.2 * t[i]), 0.5 * motion_px * np.sin(2 * np.pi * 0.13 * t[i]))
            matrix = cv2.getRotationMatrix2D((size[0] / 2, size[1] / 2), angle, 1.0)
            matrix[:, 2] += shift
            frame = cv2.warpAffine(frame, matrix, size, borderMode=cv2.BORDER_REFLECT)
            frame += cv2.randn(noise, 0.0, noise_std)  # OpenCV's generator: several times NumPy's speed
            writer.write(np.clip(frame, 0, 255).astype(np.uint8))
    finally:
        writer.release()
    return Truth(float(np.mean(np.interp(fine, t, rate_hz)) * 60.0), beats, fps, float(t[-1] + 1.0 / fps))


def _band_limited_noise(rng: np.random.Generator, t: np.ndarray, band_hz: tuple[float, float]) -> np.ndarray:
    """Gaussian noise of unit standard deviation with its power in ``band_hz``, at times ``t``."""
    from scipy import signal

    fs = 1.0 / float(np.median(np.diff(t))) if t.size > 1 else 1.0
    sos = signal.butter(2, (band_hz[0], min(band_hz[1], 0.45 * fs)), btype="bandpass", output="sos", fs=fs)
    noise = signal.sosfiltfilt(sos, rng.normal(size=t.size + int(4 * fs)))[int(2 * fs):int(2 * fs) + t.size]
    return noise / max(float(noise.std()), 1e-12)
