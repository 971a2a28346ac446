"""Finding the skin: a face detector every few frames, optical-flow tracking between,
and the mean colour of the face's skin pixels.

The detector is OpenCV's Viola-Jones frontal-face cascade, which ships inside the
``opencv-python-headless`` 4.x wheel (``cv2.data.haarcascades``): nothing is downloaded
at run time. (OpenCV 5 dropped ``CascadeClassifier``; the dependency is pinned below 5.)

P. Viola, M. Jones, "Rapid object detection using a boosted cascade of simple
features", CVPR 2001. Skin colour: D. Chai, K. N. Ngan, "Face segmentation using
skin-color map in videophone applications", IEEE Transactions on Circuits and Systems
for Video Technology 9(4), 551-564, 1999 (Cr in [133, 173], Cb in [77, 127]).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .defaults import DETECT_EVERY

CASCADE = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"

#: The face's skin is sought in an ellipse inside the detected box: centre (x, y) and
#: half-axes as fractions of the box's width and height. The cascade's box runs from the
#: eyebrows to the chin; the ellipse keeps the forehead and cheeks and leaves out the
#: hair, ears and background at its corners.
FACE_ELLIPSE = ((0.5, 0.55), (0.42, 0.5))
CR_RANGE = (133, 173)
CB_RANGE = (77, 127)


class FaceTracker:
    """The face box in each frame: detected on a downscaled grey frame every
    ``detect_every`` frames, moved in between by the median Lucas-Kanade optical flow
    of corner points inside it."""

    def __init__(self, detect_every: int = DETECT_EVERY, detect_width: int = 256):
        self.cascade = cv2.CascadeClassifier(str(CASCADE))
        if self.cascade.empty():
            raise RuntimeError(f"face cascade not found at {CASCADE}")
        self.detect_every = detect_every
        self.detect_width = detect_width
        self.box: np.ndarray | None = None  # x0, y0, x1, y1 as floats
        self._previous: np.ndarray | None = None
        self._points: np.ndarray | None = None
        self._count = 0
        self._misses = 0
        # What the last detection said the tracked box is off by, paid back a share each frame.
        self._correction = np.zeros(4)
        #: The frame downscaled as the detector sees it (BGR), and its scale.
        self.small: np.ndarray | None = None
        self.scale = 1.0

    def update(self, frame_bgr: np.ndarray) -> np.ndarray | None:
        """The face box (x0, y0, x1, y1) in this frame, or None."""
        # Halved while it stays near detect_width: OpenCV's area average is fast at an
        # exact factor of 2 (0.14 ms at 640x480), ten times slower at others.
        small, scale = frame_bgr, 1.0
        while small.shape[1] // 2 >= 0.75 * self.detect_width:
            small = cv2.resize(small, (small.shape[1] // 2, small.shape[0] // 2), interpolation=cv2.INTER_AREA)
            scale /= 2
        self.small, self.scale = small, scale
        gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        if self._count % self.detect_every == 0 or self.box is None:
            self._detect(gray, scale)
        else:
            self._track(gray, scale)
        if self.box is not None:
            step = self._correction / self.detect_every
            self.box = self.box + step
            self._correction = self._correction - step
        self._previous = gray
        self._count += 1
        return None if self.box is None else self.box.copy()

    def _detect(self, gray: np.ndarray, scale: float) -> None:
        offset = np.zeros(2, dtype=int)
        search = gray
        min_side, max_side = max(gray.shape[1] // 10, 24), 0  # 0: no largest size
        if self.box is not None and self._misses < 3:
            # Look around the tracked face only: a fraction of the frame, at the face's scale.
            x0, y0, x1, y1 = self.box * scale
            w, h = x1 - x0, y1 - y0
            offset = np.array([max(int(x0 - 0.5 * w), 0), max(int(y0 - 0.5 * h), 0)])
            search = gray[offset[1]:int(y1 + 0.5 * h), offset[0]:int(x1 + 0.5 * w)]
            # Sizes near the face's only: the cascade's scales up from min_side are the
            # same, the larger ones (most of its time) are not tried.
            min_side, max_side = max(int(0.6 * min(w, h)), 24), int(1.6 * max(w, h)) + 1
        if min(search.shape) < min_side:
            search, offset = gray, np.zeros(2, dtype=int)
            min_side, max_side = max(gray.shape[1] // 10, 24), 0
        faces, _levels, weights = self.cascade.detectMultiScale3(
            search, scaleFactor=1.15, minNeighbors=5, minSize=(min_side, min_side), maxSize=(max_side, max_side),
            outputRejectLevels=True)
        # Most confident first: the cascade's final-stage weight, not the size, tells a face.
        order = np.argsort(-np.ravel(weights)) if len(faces) else []
        candidates = []
        for i in order:
            x, y, w, h = faces[i]
            x, y = x + offset[0], y + offset[1]
            candidates.append(np.array([x, y, x + w, y + h], dtype=float) / scale)
        if self.box is not None:
            same = [c for c in candidates if _overlap(self.box, c) > 0.3]
            if same:
                # The tracked face, found again: its drift is corrected over the frames up to
                # the next detection. A region that moved in one step would put a jump of
                # colour in the trace every ``detect_every`` frames: a periodic artefact at
                # fps / detect_every, inside the pulse band (1.5 Hz at 15 fps).
                found = max(same, key=lambda c: _overlap(self.box, c))
                self._correction = 0.15 * (found - self.box)
                self._misses = 0
                self._seed_points(gray, scale)
                return
            self._misses += 1
            if self._misses < 3 or not candidates:  # a face elsewhere must persist to be believed
                self._track(gray, scale)
                return
        if not candidates:
            return
        self.box = candidates[0]
        self._correction = np.zeros(4)
        self._misses = 0
        self._seed_points(gray, scale)

    def _seed_points(self, gray: np.ndarray, scale: float) -> None:
        x0, y0, x1, y1 = (self.box * scale).astype(int)
        mask = np.zeros_like(gray)
        mask[max(y0, 0):y1, max(x0, 0):x1] = 255
        self._points = cv2.goodFeaturesToTrack(gray, maxCorners=40, qualityLevel=0.01, minDistance=4, mask=mask)

    def _track(self, gray: np.ndarray, scale: float) -> None:
        if self.box is None or self._previous is None or self._points is None or len(self._points) < 4:
            return
        moved, status, _ = cv2.calcOpticalFlowPyrLK(self._previous, gray, self._points, None,
                                                    winSize=(15, 15), maxLevel=2)
        good = status.ravel() == 1
        if good.sum() < 4:
            self._points = None
            return
        shift = np.median((moved[good] - self._points[good]).reshape(-1, 2), axis=0) / scale
        self.box = self.box + np.array([shift[0], shift[1], shift[0], shift[1]])
        self._points = moved[good].reshape(-1, 1, 2)


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union if union > 0 else 0.0


def face_skin_rgb(frame_bgr: np.ndarray, face_box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean R, G, B of the left and of the right half ``[2, 3]``, their pixel counts
    ``[2]``) of the skin pixels (YCrCb skin map) of the face's ellipse (FACE_ELLIPSE in
    ``face_box``), or of all its pixels if too few look like skin. The halves' means
    weighted by their counts are the face's mean; two halves are two independent
    looks at one pulse, which tells how precisely its beats are timed.

    One mean over the whole facial skin, not a few boxes of it: the pulse is the same in
    every pixel while the noise of the sensor and of the codec's quantisation is not,
    so the more skin averaged the less noise. H.264 quantises each block's small colour
    changes, the chroma most; measured on synthetic faces at CRF 23 and a 0.5 % pulse
    (640x480), POS found the pulse in 1 of 8 videos from three boxes (forehead and
    cheeks), in 6 of 8 from the whole face.
    """
    height, width = frame_bgr.shape[:2]
    x0, y0, x1, y1 = face_box
    left, top = int(min(max(x0, 0), width - 1)), int(min(max(y0, 0), height - 1))
    crop = frame_bgr[top:int(min(max(y1, top + 1), height)), left:int(min(max(x1, left + 1), width))]
    w, h = x1 - x0, y1 - y0
    (cx, cy), (ax, ay) = FACE_ELLIPSE
    centre = (int(x0 + cx * w) - left, int(y0 + cy * h) - top)
    ellipse = np.zeros(crop.shape[:2], np.uint8)
    cv2.ellipse(ellipse, centre, (max(int(ax * w), 1), max(int(ay * h), 1)), 0, 0, 360, 255, -1)
    split = min(max(centre[0], 1), max(crop.shape[1] - 1, 1))  # the halves meet at the centre, a column each at least
    mask = cv2.bitwise_and(skin_mask(crop), ellipse)
    if cv2.countNonZero(mask) < 0.1 * max(cv2.countNonZero(ellipse), 1):
        mask = ellipse
    means, counts = np.full((2, 3), np.nan), np.zeros(2)
    for side, columns in enumerate((slice(0, split), slice(split, None))):
        half = mask[:, columns]
        counts[side] = cv2.countNonZero(half)
        if counts[side]:
            b, g, r, _ = cv2.mean(crop[:, columns], mask=half)
            means[side] = r, g, b
    return means, counts


def skin_mask(frame_bgr: np.ndarray) -> np.ndarray:
    """255 where a pixel's colour is skin's (Chai & Ngan's YCrCb map), else 0."""
    ycrcb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2YCrCb)
    return cv2.inRange(ycrcb, (0, CR_RANGE[0], CB_RANGE[0]), (255, CR_RANGE[1], CB_RANGE[1]))


def frame_skin_rgb(frame_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(mean R, G, B of the skin of the frame's left and right halves ``[2, 3]``, their
    pixel counts ``[2]``, the share of the frame that is skin): for a video that is all
    a crop of skin (a face or forehead filling the frame, a finger on a lens), where no
    face is to be found. All pixels count where too few look like skin."""
    mask = skin_mask(frame_bgr)
    share = cv2.countNonZero(mask) / mask.size
    if share < 0.1:
        mask = np.full_like(mask, 255)
    split = frame_bgr.shape[1] // 2
    means, counts = np.full((2, 3), np.nan), np.zeros(2)
    for side, columns in enumerate((slice(0, split), slice(split, None))):
        counts[side] = cv2.countNonZero(mask[:, columns])
        if counts[side]:
            b, g, r, _ = cv2.mean(frame_bgr[:, columns], mask=mask[:, columns])
            means[side] = r, g, b
    return means, counts, share


#: What is not background around a face's box (x0, y0, x1, y1), as shares of its width
#: and height: the hair above, the ears beside, the neck and shoulders below.
AROUND_FACE = (0.4, 0.6, 0.4, 1.2)


def background_rgb(small_bgr: np.ndarray, face_box: np.ndarray) -> np.ndarray:
    """Mean R, G, B ``[3]`` of what is not the head in a (downscaled) frame with the face
    at ``face_box`` (in that frame's pixels), or NaN if nothing is left.

    The background is lit by the light that lights the face and seen through the same
    camera gain, but carries no pulse: a rhythm the skin shares with it is the light's or
    the camera's (G. Li, X. Chen, X. Wang, J. Zhang, "Remote heart rate measurement from
    face videos under realistic situations", CVPR 2014, 4264-4271)."""
    height, width = small_bgr.shape[:2]
    x0, y0, x1, y1 = face_box
    w, h = x1 - x0, y1 - y0
    left, top, right, bottom = AROUND_FACE
    mask = np.full((height, width), 255, np.uint8)
    rows = slice(max(int(y0 - top * h), 0), max(int(y1 + bottom * h), 0))
    mask[rows, max(int(x0 - left * w), 0):max(int(x1 + right * w), 0)] = 0
    if cv2.countNonZero(mask) < 0.05 * mask.size:
        return np.full(3, np.nan)
    b, g, r, _ = cv2.mean(small_bgr, mask=mask)
    return np.array([r, g, b])
