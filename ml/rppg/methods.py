"""rPPG methods: from skin-colour traces to a blood-volume pulse (BVP).

Every method takes ``rgb`` of shape ``[estimators, 3, frames]`` (mean R, G, B of each
skin region in each frame, linear 0-255 or any positive scale) and returns the pulse
``[estimators, frames]``, vectorised over estimators, with pyVHR's convention and
definitions (Boccignone et al., "pyVHR: a Python framework for remote
photoplethysmography", PeerJ Computer Science 8:e929, 2022). pyVHR itself is not a
dependency (see the README). ``fs`` is the frame rate in Hz where a method needs it.

The pulse is a relative signal: its sign and scale carry no meaning, only its shape.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.decomposition import FastICA
from sklearn.exceptions import ConvergenceWarning

from ..errors import InvalidInput
from .defaults import BAND_HZ


def _check(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb, dtype=np.float64)
    if rgb.ndim != 3 or rgb.shape[1] != 3:
        raise InvalidInput(f"rgb traces must have shape [estimators, 3, frames], not {rgb.shape}")
    if rgb.shape[2] < 2:
        raise InvalidInput("rgb traces need at least two frames")
    return rgb


def _normalised(rgb: np.ndarray) -> np.ndarray:
    """Each channel divided by its temporal mean: the pulse as a relative change."""
    mean = rgb.mean(axis=2, keepdims=True)
    return rgb / np.where(mean == 0, 1.0, mean)


def green(rgb: np.ndarray) -> np.ndarray:
    """GREEN: the green channel, which carries the strongest pulsatile component.

    W. Verkruysse, L. O. Svaasand, J. S. Nelson, "Remote plethysmographic imaging using
    ambient light", Optics Express 16(26), 21434-21445, 2008.
    """
    return _check(rgb)[:, 1, :].copy()


def chrom(rgb: np.ndarray) -> np.ndarray:
    """CHROM: two chrominance signals combined to cancel specular (white) reflections.

    X = 3R - 2G, Y = 1.5R + G - 1.5B on mean-normalised channels,
    S = X - (std X / std Y) Y.

    G. de Haan, V. Jeanne, "Robust pulse rate from chrominance-based rPPG", IEEE
    Transactions on Biomedical Engineering 60(10), 2878-2886, 2013.
    """
    c = _normalised(_check(rgb))
    x = 3 * c[:, 0] - 2 * c[:, 1]
    y = 1.5 * c[:, 0] + c[:, 1] - 1.5 * c[:, 2]
    alpha = x.std(axis=1, keepdims=True) / np.maximum(y.std(axis=1, keepdims=True), 1e-12)
    return x - alpha * y


def pos(rgb: np.ndarray, fs: float, window_s: float = 1.6) -> np.ndarray:
    """POS: projection on the plane orthogonal to the skin tone, over sliding windows
    of ``window_s`` seconds, overlap-added.

    In each window: C_n = C / mean(C); S = P C_n with P = [[0, 1, -1], [-2, 1, 1]];
    h = S_1 + (std S_1 / std S_2) S_2, zero-mean, added into the output.

    W. Wang, A. C. den Brinker, S. Stuijk, G. de Haan, "Algorithmic principles of remote
    PPG", IEEE Transactions on Biomedical Engineering 64(7), 1479-1491, 2017.
    """
    rgb = _check(rgb)
    estimators, _, frames = rgb.shape
    length = max(int(np.ceil(window_s * fs)), 2)
    projection = np.array([[0.0, 1.0, -1.0], [-2.0, 1.0, 1.0]])
    bvp = np.zeros((estimators, frames))
    if frames < length:
        length = frames
    for end in range(length, frames + 1):
        start = end - length
        window = _normalised(rgb[:, :, start:end])
        s = np.einsum("pc,ect->ept", projection, window)
        alpha = s[:, 0].std(axis=1, keepdims=True) / np.maximum(s[:, 1].std(axis=1, keepdims=True), 1e-12)
        h = s[:, 0] + alpha * s[:, 1]
        bvp[:, start:end] += h - h.mean(axis=1, keepdims=True)
    return bvp


def lgi(rgb: np.ndarray) -> np.ndarray:
    """LGI: the signal projected away from the main (illumination) direction of the
    RGB covariance, read on the green axis.

    C. S. Pilz, S. Zaunseder, J. Krajewski, V. Blazek, "Local group invariance for heart
    rate estimation from face videos in the wild", CVPR Workshops, 1254-1262, 2018.
    """
    rgb = _check(rgb)
    u, _, _ = np.linalg.svd(rgb @ rgb.transpose(0, 2, 1))
    s = u[:, :, :1]
    projector = np.eye(3) - s @ s.transpose(0, 2, 1)
    return (projector @ rgb)[:, 1, :]


def pbv(rgb: np.ndarray) -> np.ndarray:
    """PBV: the pulse as the projection on the blood-volume signature of the skin,
    estimated from the normalised channels' standard deviations.

    G. de Haan, A. van Leest, "Improved motion robustness of remote-PPG by using the
    blood volume pulse signature", Physiological Measurement 35(9), 1913-1926, 2014.
    """
    c = _normalised(_check(rgb))
    signature = c.std(axis=2) / np.maximum(np.sqrt(c.var(axis=2).sum(axis=1, keepdims=True)), 1e-12)  # [E, 3]
    q = c @ c.transpose(0, 2, 1)  # [E, 3, 3]
    w = np.linalg.solve(q, signature[:, :, None])  # [E, 3, 1]
    a = c.transpose(0, 2, 1) @ w  # [E, T, 1]
    b = signature[:, None, :] @ w  # [E, 1, 1]
    return (a / b)[:, :, 0]


def omit(rgb: np.ndarray) -> np.ndarray:
    """OMIT: like LGI, with the main direction from a QR decomposition of the traces.

    C. Álvarez Casado, M. Bordallo López, "Face2PPG: an unsupervised pipeline for
    blood volume pulse extraction from faces", IEEE Journal of Biomedical and Health
    Informatics 27(11), 5530-5541, 2023.
    """
    rgb = _check(rgb)
    q, _ = np.linalg.qr(rgb)  # reduced QR of each [3, T] trace: q is [E, 3, 3]
    s = q[:, :, :1]
    projector = np.eye(3) - s @ s.transpose(0, 2, 1)
    return (projector @ rgb)[:, 1, :]


def ica(rgb: np.ndarray, fs: float, seed: int = 0) -> np.ndarray:
    """ICA: blind source separation of the normalised traces; the source with the
    strongest spectral peak in the pulse band is the pulse. FastICA (scikit-learn)
    stands in for the JADE algorithm of the paper and of pyVHR.

    M.-Z. Poh, D. J. McDuff, R. W. Picard, "Advancements in noncontact, multiparameter
    physiological measurements using a webcam", IEEE Transactions on Biomedical
    Engineering 58(1), 7-11, 2011.
    """
    c = _normalised(_check(rgb))
    c = (c - c.mean(axis=2, keepdims=True)) / np.maximum(c.std(axis=2, keepdims=True), 1e-12)
    out = np.zeros((c.shape[0], c.shape[2]))
    freqs = np.fft.rfftfreq(c.shape[2], 1.0 / fs)
    band = (freqs >= BAND_HZ[0]) & (freqs <= BAND_HZ[1])
    for e in range(c.shape[0]):
        with warnings.catch_warnings():
            # An unmixing that has not fully converged still ranks its sources by their
            # spectra, which is all that is asked of it here.
            warnings.simplefilter("ignore", ConvergenceWarning)
            sources = FastICA(n_components=3, whiten="unit-variance", random_state=seed, max_iter=500,
                              tol=1e-4).fit_transform(c[e].T).T  # [3, T]
        power = np.abs(np.fft.rfft(sources, axis=1)) ** 2
        share = power[:, band].max(axis=1) / np.maximum(power[:, 1:].sum(axis=1), 1e-12)
        out[e] = sources[int(np.argmax(share))]
    return out


METHODS = {"GREEN": green, "CHROM": chrom, "POS": pos, "LGI": lgi, "PBV": pbv, "OMIT": omit, "ICA": ica}
#: Methods that take the frame rate.
NEEDS_FS = {"POS", "ICA"}
#: ``method="AUTO"`` reads the video with each of these and gives the result of one
#: method's own windows, or of the windows where both agree (``estimate_heart_rate``).
#: GREEN keeps the pulse where a codec quantises the chroma away (H.264 at ordinary
#: rates, MPEG-4 part 2); POS cancels what changes all three channels alike (light,
#: shading), which GREEN cannot. Chosen on ``bench/rppg.py``: adding CHROM let more
#: wrong peaks through than right ones it found.
AUTO_METHODS = ("GREEN", "POS")


def apply_method(name: str, rgb: np.ndarray, fs: float) -> np.ndarray:
    """The pulse ``[estimators, frames]`` by the method called ``name`` (see METHODS)."""
    try:
        method = METHODS[name.upper()]
    except KeyError:
        raise InvalidInput(f"unknown rPPG method {name!r}; one of {', '.join(METHODS)}", field="method") from None
    return method(rgb, fs) if name.upper() in NEEDS_FS else method(rgb)
