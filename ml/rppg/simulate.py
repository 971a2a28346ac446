"""Simulated face videos with a known pulse: what the tests, the benchmark and the
docstring examples of the rPPG pipeline are checked on.

A real portrait (``skimage.data.astronaut()``, NASA, public domain, shipped inside
scikit-image; the ``simulate`` extra) is filmed by a simulated camera:

- **the heart**: beat times from RR intervals with respiratory sinus arrhythmia,
  Mayer waves (0.1 Hz) and beat-to-beat variability (``rr_intervals``), so the truth's
  RMSSD and SDNN are known; each beat a systolic wave and a diastolic (dicrotic) one
  (``ppg_wave``), its depth following breathing;
- **the skin**: only the face's and neck's skin pulses, through a perfusion map that
  varies over the face, with the blood-volume signature of de Haan & van Leest (2014),
  made shallower by melanin (``melanin_transmission``) and by the light reflected at
  the skin's surface;
- **the head**: rigid motion (a slow random walk and sway in translation, rotation and
  scale), a breathing movement, and an expression that now and then deforms the mouth
  and cheeks;
- **the light**: a gradient across the scene whose direction turns, a slow drift,
  flicker, and a camera whose automatic exposure follows the scene's brightness;
- **the sensor and the codec**: shot and read noise, then Motion JPEG or H.264.

Every random draw is independent of the pulse's amplitude, so ``amplitude=0`` gives the
pulse-free twin of a video: the same frames but for the pulse.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "face.avi"
    >>> truth = write_face_video(path, hr_bpm=72.0, seconds=2.0, size=(160, 120))
    >>> round(truth.mean_hr_bpm / 10)
    7
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from scipy import signal

#: Relative pulse amplitudes of R, G, B in skin (G. de Haan, A. van Leest, "Improved
#: motion robustness of remote-PPG by using the blood volume pulse signature",
#: Physiological Measurement 35(9), 1913-1926, 2014).
PBV_SIGNATURE = np.array([0.33, 0.77, 0.53])  # R, G, B
#: Wavelengths (nm) of the camera's R, G and B, for melanin's absorption.
RGB_WAVELENGTHS_NM = np.array([600.0, 550.0, 470.0])
#: Share of the photographed skin's light reflected at its surface, which carries no
#: pulse: about the Fresnel reflectance of skin (refractive index 1.4-1.5: 3-4 %) and
#: some scattering in the stratum corneum.
SURFACE_SHARE = 0.1
#: The portrait's part that is framed (x0, y0, x1, y1 in the 512 x 512 photograph): head
#: and shoulders with the backdrop, the flag and the model shuttle beside, 4:3.
FRAMING = (28, 0, 428, 300)
#: Where the face and neck are in the photograph (centre, half-axes; pixels): the skin
#: inside pulses, what looks like skin outside (the orange suit) does not.
HEAD_ELLIPSE = ((226, 128), (66, 98))
#: The mouth and cheeks (centre, radius; photograph pixels), which an expression moves.
EXPRESSION_CENTRE, EXPRESSION_RADIUS = (224, 146), 48


@dataclass(frozen=True)
class Truth:
    """What the simulated camera filmed: the mean heart rate (bpm), each beat's time (s,
    its systolic foot), and the video's frame rate (Hz) and length (s)."""

    mean_hr_bpm: float
    beat_times_s: np.ndarray
    fps: float
    seconds: float


def rr_intervals(hr_bpm: float, seconds: float, rng: np.random.Generator, *, hrv: float = 0.04,
                 rr_noise: float = 0.015, breaths_per_min: float = 15.0) -> np.ndarray:
    """Beat times (s) from 0 to ``seconds`` at a mean heart rate of ``hr_bpm``.

    Each interval is the mean one modulated by respiratory sinus arrhythmia (relative
    depth ``hrv``, at the breathing rate) and by Mayer waves (half as deep, 0.1 Hz),
    plus independent beat-to-beat variation (relative standard deviation ``rr_noise``):
    the two oscillations and the white part of the heart period's spectrum (Task Force
    of the ESC and NASPE, Circulation 93(5), 1043-1065, 1996).
    """
    mean_rr = 60.0 / hr_bpm
    phases = rng.uniform(0, 2 * np.pi, 2)
    times, t = [], -rng.uniform(0, mean_rr)
    while t < seconds + mean_rr:
        times.append(t)
        modulation = (hrv * np.sin(2 * np.pi * breaths_per_min / 60.0 * t + phases[0])
                      + 0.5 * hrv * np.sin(2 * np.pi * 0.1 * t + phases[1]))
        t += mean_rr * (1 - modulation + rr_noise * rng.standard_normal())
    return np.array(times)


def ppg_wave(t: np.ndarray, beat_times_s: np.ndarray) -> np.ndarray:
    """The blood-volume pulse at times ``t`` (s), of unit peak-to-peak, for beats whose
    feet are at ``beat_times_s``: each beat the sum of a systolic and a diastolic
    Gaussian wave (at 20 % and 50 % of its interval, the latter 45 % as high), the
    two-Gaussian model of the PPG's shape (M. Elgendi, "On the analysis of fingertip
    photoplethysmogram signals", Current Cardiology Reviews 8(1), 14-25, 2012)."""
    wave = _beat_shape(t, beat_times_s)
    return (wave - wave.min()) / max(float(np.ptp(wave)), 1e-12)


def _beat_shape(t: np.ndarray, beat_times_s: np.ndarray) -> np.ndarray:
    """``ppg_wave`` before it is scaled to unit peak-to-peak over ``t``."""
    index = np.clip(np.searchsorted(beat_times_s, t, side="right") - 1, 0, beat_times_s.size - 2)
    start = beat_times_s[index]
    phase = (t - start) / (beat_times_s[index + 1] - start)
    wave = np.exp(-0.5 * ((phase - 0.2) / 0.09) ** 2) + 0.45 * np.exp(-0.5 * ((phase - 0.5) / 0.12) ** 2)
    wave += np.exp(-0.5 * ((phase - 1.2) / 0.09) ** 2)  # the next systole's rise
    return wave


#: The range of ``_beat_shape`` over a beat, so that a stream scales every block alike.
_SHAPE_MIN, _SHAPE_PTP = (lambda w: (float(w.min()), float(np.ptp(w))))(
    _beat_shape(np.linspace(0.0, 1.0, 10_001)[:-1], np.array([0.0, 1.0])))


def contact_ppg(*, hr_bpm: float, seconds: float, rng: np.random.Generator, fs: float = 100.0,
                amplitude: float = 1.0, noise: float = 0.03, wander: float = 0.4,
                artefacts_per_min: float = 0.0, hrv: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    """A finger PPG as a contact sensor records it at ``fs`` Hz, from the same heart as the
    faces (``rr_intervals``, ``ppg_wave``: a systolic peak and a dicrotic wave): the pulse
    of ``amplitude`` (0: the sensor on no finger, its pulse-free twin), baseline wander
    with breathing and a slow drift (``wander``, relative to a unit pulse), white sensor
    noise (``noise``), and motion artefacts (``artefacts_per_min``: bursts of 1-3 s, a few
    times the pulse). Returns (the signal, in arbitrary units; the systolic peaks' times
    in s)."""
    feet = rr_intervals(hr_bpm, seconds, rng, hrv=hrv)
    t = np.arange(int(seconds * fs)) / fs
    x = amplitude * ppg_wave(t, feet)
    x += wander * (np.sin(2 * np.pi * 0.25 * t + rng.uniform(0, 2 * np.pi)) + _slow_walk(rng, t, 0.05))
    x += noise * rng.standard_normal(t.size)
    for _ in range(rng.poisson(artefacts_per_min * seconds / 60.0)):
        start, length = rng.uniform(0, seconds), rng.uniform(1.0, 3.0)
        inside = (t >= start) & (t < start + length)
        if inside.sum() > 8:
            x[inside] += rng.uniform(2, 5) * band_limited_noise(rng, t[inside], (0.5, 5.0))
    peaks = feet[:-1] + 0.2 * np.diff(feet)  # the systolic wave's centre (``ppg_wave``)
    return x, peaks[(peaks >= 0) & (peaks < seconds)]


class ContactPPGStream:
    """``contact_ppg`` as a sensor delivers it: ``read(n)`` gives the next ``n`` samples,
    for as long as it is read, each block continuing the last (what a simulated pulse
    sensor streams). The same heart (``rr_intervals``, extended a minute at a time) and
    wave (``ppg_wave``'s shape, scaled alike in every block); the wander's slow walk is filtered causally, with its state
    kept between reads, since a stream has no future to filter backwards from. Motion
    artefacts are ``contact_ppg``'s alone.

    >>> stream = ContactPPGStream(hr_bpm=60.0, rng=np.random.default_rng(0))
    >>> first, second = stream.read(250), stream.read(250)
    >>> second.shape, bool(abs(second[0] - first[-1]) < 0.2)
    ((250,), True)
    """

    def __init__(self, *, hr_bpm: float, rng: np.random.Generator, fs: float = 100.0, amplitude: float = 1.0,
                 noise: float = 0.03, wander: float = 0.4, hrv: float = 0.04):
        self.fs, self.hr_bpm, self._rng = float(fs), float(hr_bpm), rng
        self._amplitude, self._noise, self._wander, self._hrv = amplitude, noise, wander, hrv
        self._feet = rr_intervals(hr_bpm, 60.0, rng, hrv=hrv)
        self._breath_phase = rng.uniform(0, 2 * np.pi)
        self._walk_sos = signal.butter(2, (0.02, 0.05), btype="bandpass", output="sos", fs=self.fs)
        self._walk_state = np.zeros((self._walk_sos.shape[0], 2))
        impulse = np.zeros(int(600 * self.fs))
        impulse[0] = 1.0  # the causal filter's own gain, for a walk of unit standard deviation
        self._walk_gain = float(np.sqrt(np.sum(signal.sosfilt(self._walk_sos, impulse) ** 2)))
        self._next = 0
        #: The systolic peaks' times (s) of what has been read: the truth to score against.
        self.peaks_s: list[float] = []

    def read(self, n: int) -> np.ndarray:
        """The next ``n`` samples (arbitrary units, float64)."""
        t = (self._next + np.arange(n)) / self.fs
        self._next += n
        while self._feet[-1] < t[-1] + 2.0:  # a beat's wave reaches into the next interval
            more = rr_intervals(self.hr_bpm, 60.0, self._rng, hrv=self._hrv)
            self._feet = np.concatenate([self._feet, self._feet[-1] + (more[1:] - more[0])])
        self._feet = self._feet[max(np.searchsorted(self._feet, t[0]) - 2, 0):]
        x = self._amplitude * (_beat_shape(t, self._feet) - _SHAPE_MIN) / _SHAPE_PTP
        walk, self._walk_state = signal.sosfilt(self._walk_sos, self._rng.standard_normal(n), zi=self._walk_state)
        x += self._wander * (np.sin(2 * np.pi * 0.25 * t + self._breath_phase) + walk / self._walk_gain)
        x += self._noise * self._rng.standard_normal(n)
        peaks = self._feet[:-1] + 0.2 * np.diff(self._feet)
        self.peaks_s.extend(peaks[(peaks >= t[0]) & (peaks < t[0] + n / self.fs)].tolist())
        return x


def melanin_transmission(optical_density: float) -> np.ndarray:
    """Share of light through the epidermis once, for R, G, B, at a melanin optical
    density ``optical_density`` at 550 nm (0: the photograph's skin as it is).

    Melanin's absorption falls with wavelength as λ^-3.33 (S. L. Jacques, "Optical
    properties of biological tissues: a review", Physics in Medicine and Biology 58(11),
    R37-R61, 2013): darker skin loses more blue and green than red.
    """
    return np.exp(-optical_density * (RGB_WAVELENGTHS_NM / 550.0) ** -3.33)


def band_limited_noise(rng: np.random.Generator, t: np.ndarray, band_hz: tuple[float, float]) -> np.ndarray:
    """Gaussian noise of unit standard deviation with its power in ``band_hz``, at times ``t`` (s)."""
    fs = 1.0 / float(np.median(np.diff(t))) if t.size > 1 else 1.0
    sos = signal.butter(2, (band_hz[0], min(band_hz[1], 0.45 * fs)), btype="bandpass", output="sos", fs=fs)
    noise = signal.sosfiltfilt(sos, rng.normal(size=t.size + int(4 * fs)))[int(2 * fs):int(2 * fs) + t.size]
    if t.size >= 20 * fs:
        return noise / max(float(noise.std()), 1e-12)
    # A few seconds of slow noise say nothing of its scale: use the filter's own gain
    # (the standard deviation it gives unit white noise).
    impulse = np.zeros(int(60 * fs))
    impulse[impulse.size // 2] = 1.0
    return noise / float(np.sqrt(np.sum(signal.sosfiltfilt(sos, impulse) ** 2)))


def _slow_walk(rng: np.random.Generator, t: np.ndarray, cutoff_hz: float = 0.3) -> np.ndarray:
    """A smooth random walk of unit standard deviation, its power below ``cutoff_hz``."""
    return band_limited_noise(rng, t, (0.02, cutoff_hz))


def portrait(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(BGR float32 frame, where the skin pulses 0..1, where an expression moves 0..1):
    the framed portrait at ``size`` (width, height)."""
    from skimage import data

    rgb = data.astronaut()
    x0, y0, x1, y1 = FRAMING
    scale = size[0] / (x1 - x0), size[1] / (y1 - y0)
    bgr = cv2.resize(cv2.cvtColor(rgb[y0:y1, x0:x1], cv2.COLOR_RGB2BGR), size, interpolation=cv2.INTER_AREA)
    ycrcb = cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb)
    skin = cv2.inRange(ycrcb, (40, 133, 77), (255, 173, 127)).astype(np.float32) / 255.0
    head = np.zeros(bgr.shape[:2], np.float32)
    (cx, cy), (ax, ay) = HEAD_ELLIPSE
    cv2.ellipse(head, (int((cx - x0) * scale[0]), int((cy - y0) * scale[1])),
                (int(ax * scale[0]), int(ay * scale[1])), 0, 0, 360, 1.0, -1)
    blur = max(size[0] // 160, 1) * 2 + 1
    pulsing = cv2.GaussianBlur(skin * head, (blur, blur), 0)
    yy, xx = np.mgrid[0:size[1], 0:size[0]].astype(np.float32)
    ex, ey = (EXPRESSION_CENTRE[0] - x0) * scale[0], (EXPRESSION_CENTRE[1] - y0) * scale[1]
    radius = EXPRESSION_RADIUS * scale[0]
    expression = np.exp(-((xx - ex) ** 2 + (yy - ey) ** 2) / (2 * radius**2)).astype(np.float32)
    return bgr.astype(np.float32), pulsing, expression


class PyAVWriter:
    """Frames written through PyAV (``av``, in the ``simulate`` extra), each at its own
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


def write_face_video(path: Path, *, hr_bpm: float, seconds: float = 20.0, fps: float = 30.0,
                     size: tuple[int, int] = (640, 480), amplitude: float = 0.01, hrv: float = 0.04,
                     rr_noise: float = 0.015, breaths_per_min: float = 15.0, melanin: float = 0.0,
                     motion_px: float = 6.0, rotation_deg: float = 1.5, scale: float = 0.01,
                     breathing_px: float = 0.7, expression_px: float = 0.0, drift: float = 0.06,
                     flicker: float = 0.0, gradient: float = 0.15, auto_exposure: bool = True,
                     noise_std: float = 2.0, codec: str = "MJPG", crf: int = 23, seed: int = 0,
                     frame_times_s: np.ndarray | None = None,
                     crop: tuple[int, int, int, int] | None = None) -> Truth:
    """Film the portrait with a pulse of mean ``hr_bpm`` into ``path``; return the truth.

    The pulse: ``amplitude`` is its relative change of the skin's brightness (green,
    peak to peak) in the photographed skin; ``hrv``, ``rr_noise`` and ``breaths_per_min``
    shape the beat intervals (``rr_intervals``); ``melanin`` darkens the skin (0.5 and
    1.0 are about medium and dark brown) and, with the light reflected at the surface
    (SURFACE_SHARE), makes the pulse shallower.

    The head: ``motion_px`` is the standard deviation of its translation (pixels at
    640x480, scaled with the frame), a slow random walk plus a sway; ``rotation_deg``
    and ``scale`` (relative) likewise; ``breathing_px`` a rise and fall at the breathing
    rate; ``expression_px`` how far an expression moves the mouth and cheeks, a few
    times a minute.

    The light and camera: ``drift`` a slow (0.05 Hz) relative change of the light,
    ``flicker`` the relative standard deviation of a fast one (0.1 to 5 Hz, as from a
    screen or a passing shade), ``gradient`` how much brighter one side of the scene is
    than the other (its direction turning slowly); ``auto_exposure`` a camera whose gain
    pulls the scene's mean brightness back (time constant 1 s); ``noise_std`` the
    sensor's noise at mid-grey (0-255; shot noise grows with the square root of the
    light). ``codec``: a FOURCC written by OpenCV (Motion JPEG by default) or ``"h264"``
    (PyAV's libx264 at ``crf``, what phones and webcams write). ``frame_times_s``
    (seconds, increasing, from 0) makes a variable-rate video instead, of nominal rate
    ``fps``, with a frame at each of these times (``PyAVWriter``). ``crop`` (x0, y0, x1,
    y1, pixels of the frame at ``size``) writes only that part of each frame: a video of
    a forehead or a cheek, as some data sets and contact-free sensors give.

    Random draws depend on ``seed`` alone, so ``amplitude=0`` gives the same video
    without a pulse: a pulse-free twin.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * fps))) / fps if frame_times_s is None else np.asarray(frame_times_s, float)
    beats = rr_intervals(hr_bpm, float(t[-1]), rng, hrv=hrv, rr_noise=rr_noise, breaths_per_min=breaths_per_min)
    breathing = np.sin(2 * np.pi * breaths_per_min / 60.0 * t + rng.uniform(0, 2 * np.pi))
    # Breathing changes the pulse's depth a little (respiratory-induced amplitude variation).
    pulse = ppg_wave(t, beats) * (1 + 0.1 * breathing)

    light = 1 + drift * np.sin(2 * np.pi * 0.05 * t + rng.uniform(0, 2 * np.pi))
    flickering = band_limited_noise(rng, t, (0.1, 5.0))
    if flicker:
        light = light + flicker * flickering
    turn = rng.uniform(0, 2 * np.pi) + 0.6 * _slow_walk(rng, t, 0.05)

    pixels = size[0] / 640.0
    sway = rng.uniform(0, 2 * np.pi, 3)
    moves = np.stack([_slow_walk(rng, t) for _ in range(4)])
    shift_x = motion_px * pixels * (0.7 * moves[0] + 0.7 * np.sin(2 * np.pi * 0.2 * t + sway[0]))
    shift_y = motion_px * pixels * (0.35 * moves[1] + 0.35 * np.sin(2 * np.pi * 0.13 * t + sway[1])) \
        + breathing_px * pixels * breathing
    angle = rotation_deg * (0.7 * moves[2] + 0.7 * np.sin(2 * np.pi * 0.11 * t + sway[2]))
    zoom = 1 + scale * moves[3]
    # An expression: a smooth bump of a few seconds, a few times a minute.
    onsets = np.cumsum(rng.exponential(15.0, 16))
    smile = sum(np.exp(-0.5 * ((t - onset) / 1.2) ** 2) for onset in onsets)

    base, pulsing, expression = portrait(size)
    diffuse = (1 - SURFACE_SHARE) * melanin_transmission(melanin)[::-1] ** 2  # B, G, R
    tone = 1 + pulsing[:, :, None] * (SURFACE_SHARE + diffuse - 1)
    depth = amplitude * (diffuse / (SURFACE_SHARE + diffuse)) / (1 - SURFACE_SHARE)
    base = (base * tone).astype(np.float32)
    # The perfusion of the skin varies over the face, smoothly: 0.6 to 1.4 times the mean.
    perfusion = cv2.GaussianBlur(rng.uniform(0.6, 1.4, (8, 8)).astype(np.float32), (3, 3), 0)
    perfusion = cv2.resize(perfusion, size, interpolation=cv2.INTER_CUBIC)
    # Blood absorbs: a beat darkens the skin, most in green.
    blood = -(pulsing * perfusion)[:, :, None] * (depth * PBV_SIGNATURE[::-1] / PBV_SIGNATURE[1]).astype(np.float32)

    yy, xx = np.mgrid[0:size[1], 0:size[0]].astype(np.float32)
    across_x, across_y = (xx - size[0] / 2) / size[0], (yy - size[1] / 2) / size[1]
    centre = np.array([size[0] / 2, size[1] / 2])
    x0, y0, x1, y1 = crop or (0, 0, *size)
    written = (x1 - x0, y1 - y0)
    if codec == "h264" or frame_times_s is not None:
        writer = PyAVWriter(path, t, fps, written, codec="libx264" if codec == "h264" else "mjpeg", crf=crf)
    else:
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, written)
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write {codec} video here")
    cv2.setRNGSeed(seed)
    noise = np.empty_like(base)
    # Shot noise grows with the square root of the light (taken from the still scene),
    # read noise does not.
    spread = cv2.sqrt(np.maximum(base, 1.0) / np.float32(128.0)) * np.float32(noise_std)
    blood_base = base * blood
    gain, target = 1.0, None
    try:
        for i in range(t.size):
            # The scene: the skin's pulse, lit by a gradient that turns.
            scene = cv2.scaleAdd(blood_base, float(pulse[i]), base)
            shade = (np.float32(light[i] * gradient * np.cos(turn[i])) * across_x
                     + np.float32(light[i] * gradient * np.sin(turn[i])) * across_y + np.float32(light[i]))
            scene *= shade[:, :, None]
            # The head's motion: the camera sees the scene through the inverse warp.
            matrix = cv2.getRotationMatrix2D(tuple(centre), float(angle[i]), float(zoom[i]))
            matrix[:, 2] += (shift_x[i], shift_y[i])
            inverse = cv2.invertAffineTransform(matrix).astype(np.float32)
            map_x = inverse[0, 0] * xx + inverse[0, 1] * yy + inverse[0, 2]
            map_y = inverse[1, 0] * xx + inverse[1, 1] * yy + inverse[1, 2]
            if expression_px:
                pull = np.float32(expression_px * pixels * smile[i]) * expression
                map_y -= pull  # the mouth and cheeks rise
                map_x += pull * across_x * 2  # and widen
            frame = cv2.remap(scene, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            # The camera: automatic exposure pulls the mean brightness back to where it began.
            brightness = cv2.mean(frame)[1]
            target = target or brightness
            if auto_exposure:
                gain += (target / max(brightness * gain, 1e-6) - 1) * gain / fps  # time constant 1 s
            frame = cv2.scaleAdd(frame, gain, cv2.multiply(cv2.randn(noise, 0.0, 1.0), spread))
            writer.write(np.clip(frame[y0:y1, x0:x1], 0, 255).astype(np.uint8))
    finally:
        writer.release()
    inside = beats[(beats >= 0) & (beats <= t[-1])]
    return Truth(60.0 / float(np.mean(np.diff(inside))), inside, fps, float(t[-1] + 1.0 / fps))
