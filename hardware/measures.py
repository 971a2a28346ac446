"""Image measures the calibration routine scores settings by. Pure functions of one
8-bit grey frame; no state."""

from __future__ import annotations

import cv2
import numpy as np

#: Gaussian smoothing (px) before the focus measure, which keeps sensor noise from
#: reading as sharpness.
NOISE_SMOOTHING_PX = 1.0


def grey(frame: np.ndarray) -> np.ndarray:
    return frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def clipped_fraction(frame: np.ndarray, low: int = 0, high: int = 255) -> tuple[float, float]:
    """Fractions of pixels at or below ``low`` (crushed) and at or above ``high`` (saturated)."""
    return float(np.mean(frame <= low)), float(np.mean(frame >= high))


def noise_sigma(frame: np.ndarray) -> float:
    """Standard deviation of the sensor noise in DN, from one frame.

    Immerkær, "Fast noise variance estimation", Computer Vision and Image Understanding
    64(2), 1996: the mask [1 -2 1; -2 4 -2; 1 -2 1] cancels smooth image content;
    sqrt(pi/2)/(6(W-2)(H-2)) * sum|I*N| estimates sigma. Edges would pass the mask, so
    only pixels in the flattest 50 % (by Sobel magnitude) are used.
    """
    image = frame.astype(np.float32)
    mask = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
    response = np.abs(cv2.filter2D(image, -1, mask, borderType=cv2.BORDER_REFLECT))[1:-1, 1:-1]
    gradient = cv2.magnitude(cv2.Sobel(image, cv2.CV_32F, 1, 0), cv2.Sobel(image, cv2.CV_32F, 0, 1))[1:-1, 1:-1]
    # Saturated or black pixels carry no noise; leave them out as well.
    usable = (frame[1:-1, 1:-1] > 0) & (frame[1:-1, 1:-1] < 255)
    flat = usable & (gradient <= np.percentile(gradient[usable], 50)) if usable.any() else usable
    if not flat.any():
        return 0.0
    return float(np.sqrt(np.pi / 2) / 6 * response[flat].mean())


def sharpness(frame: np.ndarray, second: np.ndarray) -> float:
    """Focus measure from two frames of the same scene: the variance of the Laplacian
    over the Tenengrad energy, both taken as products *across* the frames, so that the
    sensor noise, independent from frame to frame, drops out; about 1 / (2 w^2) for edges
    of Gaussian width w (px), whatever their length and contrast.

    Pech-Pacheco et al., "Diatom autofocusing in brightfield microscopy: a comparative
    study", ICPR 2000 (variance of the Laplacian); Krotkov, "Focusing", IJCV 1(3), 1987
    (Tenengrad). Either alone grows with how much edge is in view and how bright it is;
    their ratio does not, so settings compare fairly while the target moves. Within one
    frame, noise has far more Laplacian than gradient energy and reads as sharpness; the
    frames are smoothed by ``NOISE_SMOOTHING_PX`` as well to keep the estimate steady.
    """
    def derivatives(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        smooth = cv2.GaussianBlur(image.astype(np.float32), (0, 0), NOISE_SMOOTHING_PX)
        laplacian = cv2.Laplacian(smooth, cv2.CV_32F, ksize=1)
        return laplacian - laplacian.mean(), cv2.Sobel(smooth, cv2.CV_32F, 1, 0), cv2.Sobel(smooth, cv2.CV_32F, 0, 1)

    l1, x1, y1 = derivatives(frame)
    l2, x2, y2 = derivatives(second)
    tenengrad = float(np.mean(x1 * x2 + y1 * y2))
    if tenengrad <= 1e-6:
        return 0.0  # no edges above the noise: nothing to focus on
    return 64.0 * max(float(np.mean(l1 * l2)), 0.0) / tenengrad  # a 3x3 Sobel estimates 8x the derivative


def same_scene(frame: np.ndarray, second: np.ndarray, threshold: float = 0.98) -> bool:
    """Whether two frames show the scene unmoved: their coarse content (blurred well
    beyond the noise) correlates above ``threshold``."""
    a, b = (cv2.resize(f, (0, 0), fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
            for f in (frame, second))
    a, b = a - a.mean(), b - b.mean()
    denominator = float(np.sqrt((a @ a) * (b @ b)))
    return denominator > 0 and float(a @ b) / denominator >= threshold


def laplacian_variance(frame: np.ndarray) -> float:
    """The plain variance of the Laplacian, reported beside ``sharpness`` for reference."""
    return float(cv2.Laplacian(frame, cv2.CV_64F, ksize=1).var())
