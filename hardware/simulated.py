"""A physically modelled camera, so that calibration is tested against known truth.

What it models, in the order light meets it:

- **Scene**: a planar checkerboard (``cols`` x ``rows`` inner corners, ``square_m``
  metres, printed with a white margin) on a rig that shows it at a series of known
  poses, each held for ``frames_per_pose`` frames, in front of a textured grey wall.
- **Lens**: pinhole intrinsics ``fx, fy, cx, cy`` (pixels) with Brown-Conrady
  distortion ``k1, k2, p1, p2, k3`` (OpenCV's model), relative illumination falling
  to ``1 - vignetting`` in the corners, and defocus: a Gaussian blur whose width grows
  linearly with the focus motor's distance from ``best_focus``.
- **Sensor** (after EMVA 1288's linear model): electrons = albedo x illumination x
  ``electrons_per_ms`` x exposure, clipped at ``full_well_e``; shot noise (Poisson, in
  its Gaussian limit) and ``read_noise_e`` before the gain, ``adc_noise_dn`` after it;
  8-bit output clipped to [0, 255]. Raising the gain amplifies the signal and the noise
  before it alike, so at equal brightness more gain means more noise.

Each pixel's checker value is the pixel's footprint box-filtered analytically (the
square wave's integral is a triangle wave), so corners are rendered without aliasing
bias and sub-pixel corner positions are meaningful. Rays are traced back through the
distortion with ``cv2.undistortPointsIter`` run to convergence.

Faults, for the job layer's tests: ``unplugged`` (opening fails), ``disconnect_after``
(the device drops out after that many frames) and the lock: a second opener of the
same ``serial`` is refused as busy, as a V4L2 device is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .camera import Camera, Capabilities, ControlRange
from .errors import DeviceUnavailableError
from .lock import DeviceLock

EXPOSURE = ControlRange(minimum=0.05, maximum=33.0, step=0.05, default=10.0)  # ms
GAIN = ControlRange(minimum=1.0, maximum=16.0, step=0.25, default=1.0)  # linear
FOCUS = ControlRange(minimum=0.0, maximum=255.0, step=5.0, default=60.0)  # motor steps

WHITE_ALBEDO = 0.85
BLACK_ALBEDO = 0.04
WALL_ALBEDO = 0.30


@dataclass(frozen=True)
class BoardPose:
    """The board's pose in the camera frame: Rodrigues rotation and translation (metres)."""

    rvec: tuple[float, float, float]
    tvec: tuple[float, float, float]


def rig_poses(count: int, cols: int, rows: int, square_m: float, f_px: float, width: int, height: int,
              seed: int = 0) -> list[BoardPose]:
    """Poses a calibration rig steps through: tilted up to 35 degrees about both axes,
    rolled up to 15, at distances where the board fills 35-75 % of the frame's width."""
    rng = np.random.default_rng(seed)
    board_w, board_h = (cols + 1) * square_m, (rows + 1) * square_m
    poses = []
    for k in range(count):
        fill = rng.uniform(0.35, 0.75)
        z = f_px * board_w / (fill * width)
        # The first pose faces the camera: exposure and focus sweeps start on a clear view.
        angles = np.zeros(3) if k == 0 else np.deg2rad([rng.uniform(-35, 35), rng.uniform(-35, 35), rng.uniform(-15, 15)])
        rotation = cv2.Rodrigues(angles)[0]
        centre = np.array([(cols - 1) * square_m / 2, (rows - 1) * square_m / 2, 0.0])
        # Keep the board's centre well inside the frame.
        slack_x = max(0.0, (width - fill * width) / 2 * 0.6) * z / f_px
        slack_y = max(0.0, (height - fill * width * board_h / board_w) / 2 * 0.6) * z / f_px
        offset = np.array([rng.uniform(-slack_x, slack_x), rng.uniform(-slack_y, slack_y), z])
        tvec = offset - rotation @ centre
        poses.append(BoardPose(tuple(cv2.Rodrigues(rotation)[0].ravel()), tuple(tvec)))
    return poses


def _triangle(u: np.ndarray) -> np.ndarray:
    """Integral of the unit square wave sign(sin(pi u)): a triangle wave of period 2."""
    return 1.0 - np.abs(np.mod(u, 2.0) - 1.0)


def _box_filtered_square_wave(u: np.ndarray, width: np.ndarray) -> np.ndarray:
    """sign(sin(pi u)) averaged over [u - width/2, u + width/2]: exact anti-aliasing."""
    width = np.maximum(width, 1e-6)
    return (_triangle(u + width / 2) - _triangle(u - width / 2)) / width


class SimulatedCamera(Camera):
    def __init__(self, width: int = 1280, height: int = 800, fps: float = 30.0, serial: str = "sim0",
                 fx: float | None = None, fy: float | None = None, cx: float | None = None, cy: float | None = None,
                 dist: tuple[float, ...] = (-0.18, 0.06, 0.0005, -0.0003, 0.0), vignetting: float = 0.15,
                 best_focus: float = 135.0, blur_px_per_step: float = 0.06, base_blur_px: float = 0.5,
                 electrons_per_ms: float = 1200.0, full_well_e: float = 10_000.0, read_noise_e: float = 6.0,
                 adc_noise_dn: float = 0.5, cols: int = 9, rows: int = 6, square_m: float = 0.025,
                 poses: int = 24, frames_per_pose: int = 4, seed: int = 0, unplugged: bool = False,
                 disconnect_after: int | None = None, lock_dir: str | Path | None = None):
        self.width, self.height, self.fps, self.serial = int(width), int(height), float(fps), str(serial)
        self.camera_matrix = np.array([[fx or 0.7 * width, 0, cx or width / 2 + 2.3],
                                       [0, fy or 0.7 * width, cy or height / 2 - 1.3], [0, 0, 1]])
        self.dist = np.array(dist, dtype=float)
        self.vignetting, self.best_focus = vignetting, best_focus
        self.blur_px_per_step, self.base_blur_px = blur_px_per_step, base_blur_px
        self.electrons_per_ms, self.full_well_e = electrons_per_ms, full_well_e
        self.read_noise_e, self.adc_noise_dn = read_noise_e, adc_noise_dn
        self.cols, self.rows, self.square_m = cols, rows, square_m
        self.poses = rig_poses(poses, cols, rows, square_m, self.camera_matrix[0, 0], self.width, self.height, seed)
        self.frames_per_pose = max(1, int(frames_per_pose))
        self.unplugged, self.disconnect_after = unplugged, disconnect_after
        self._rng = np.random.default_rng(seed + 1)
        self._controls = {"exposure": EXPOSURE.default, "gain": GAIN.default, "focus": FOCUS.default}
        self._frames = 0
        self._open = False
        self._lock = DeviceLock(lock_dir, self.serial, "simulated camera") if lock_dir else None
        self._rays: np.ndarray | None = None
        self._relative_illumination: np.ndarray | None = None
        self._albedo: tuple[int, np.ndarray] | None = None

    # --- the device ------------------------------------------------------------------

    def open(self) -> None:
        if self._open:
            return
        if self.unplugged:
            raise DeviceUnavailableError(f"simulated camera {self.serial} is unplugged", serial=self.serial)
        if self._lock is not None:
            self._lock.take()
        if self._rays is None:
            self._prepare_optics()
        self._open = True

    def close(self) -> None:
        self._open = False
        if self._lock is not None:
            self._lock.release()

    def capabilities(self) -> Capabilities:
        return Capabilities(width=self.width, height=self.height, fps=self.fps, channels=1,
                            controls={"exposure": EXPOSURE, "gain": GAIN, "focus": FOCUS})

    def _set(self, name: str, value: float) -> None:
        self._controls[name] = value

    def _get(self, name: str) -> float:
        return self._controls[name]

    def read(self) -> np.ndarray:
        if not self._open:
            raise DeviceUnavailableError(f"simulated camera {self.serial} is not open", serial=self.serial)
        if self.disconnect_after is not None and self._frames >= self.disconnect_after:
            raise DeviceUnavailableError(f"simulated camera {self.serial} disconnected", serial=self.serial)
        index = (self._frames // self.frames_per_pose) % len(self.poses)
        self._frames += 1
        if self._albedo is None or self._albedo[0] != index:  # the rig holds a pose for several frames
            self._albedo = (index, self.render_albedo(self.poses[index]))
        return self.expose(self._albedo[1], noise=True)

    # --- the physics -----------------------------------------------------------------

    def _prepare_optics(self) -> None:
        """Each pixel's undistorted ray (normalised image coordinates) and its relative illumination."""
        v, u = np.mgrid[0 : self.height, 0 : self.width].astype(np.float64)
        pixels = np.stack([u.ravel(), v.ravel()], axis=1).reshape(-1, 1, 2)
        criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)
        rays = cv2.undistortPointsIter(pixels, self.camera_matrix, self.dist, None, None, criteria)
        self._rays = rays.reshape(self.height, self.width, 2).astype(np.float32)
        r2 = ((u - self.width / 2) ** 2 + (v - self.height / 2) ** 2) / ((self.width / 2) ** 2 + (self.height / 2) ** 2)
        self._relative_illumination = (1.0 - self.vignetting * r2).astype(np.float32)

    def render_albedo(self, pose: BoardPose) -> np.ndarray:
        """The scene's reflectance seen by each pixel (no light, blur or noise), float32."""
        rotation = cv2.Rodrigues(np.array(pose.rvec))[0]
        # Board plane Z = 0: a normalised image point x ~ [r1 r2 t] [X Y 1]; invert it per pixel.
        to_board = np.linalg.inv(np.column_stack([rotation[:, 0], rotation[:, 1], pose.tvec]))
        x, y = self._rays[..., 0], self._rays[..., 1]
        w = to_board[2, 0] * x + to_board[2, 1] * y + to_board[2, 2]
        bx = (to_board[0, 0] * x + to_board[0, 1] * y + to_board[0, 2]) / w
        by = (to_board[1, 0] * x + to_board[1, 1] * y + to_board[1, 2]) / w
        s = self.square_m
        # Squares in board units, shifted so that inner corners sit on integers of u.
        ux, uy = bx / s, by / s
        # The pixel's footprint on the board, in squares (from the map's local derivatives).
        dux_dv, dux_du = np.gradient(ux)
        duy_dv, duy_du = np.gradient(uy)
        checker = (_box_filtered_square_wave(ux, np.abs(dux_du) + np.abs(dux_dv))
                   * _box_filtered_square_wave(uy, np.abs(duy_du) + np.abs(duy_dv)))
        albedo = (WHITE_ALBEDO + BLACK_ALBEDO) / 2 + (WHITE_ALBEDO - BLACK_ALBEDO) / 2 * checker
        inside = (ux > -1) & (ux < self.cols) & (uy > -1) & (uy < self.rows)
        margin = (ux > -2) & (ux < self.cols + 1) & (uy > -2) & (uy < self.rows + 1)
        wall = WALL_ALBEDO * (1 + 0.3 * np.sin(bx * 9.0) * np.cos(by * 7.0))
        out = np.where(inside, albedo, np.where(margin, WHITE_ALBEDO, wall))
        out[w <= 0] = WALL_ALBEDO  # behind the board's plane
        return out.astype(np.float32)

    def blur_sigma_px(self, focus: float) -> float:
        """Width of the defocus blur at a focus setting, in pixels."""
        return self.base_blur_px + self.blur_px_per_step * abs(focus - self.best_focus)

    def expose(self, albedo: np.ndarray, noise: bool = True) -> np.ndarray:
        """An 8-bit frame of ``albedo`` at the current exposure, gain and focus."""
        exposure, gain, focus = (self._controls[name] for name in ("exposure", "gain", "focus"))
        sigma = self.blur_sigma_px(focus)
        image = cv2.GaussianBlur(albedo, (0, 0), sigma) if sigma > 0.05 else albedo
        electrons = image * self._relative_illumination * (self.electrons_per_ms * exposure)
        if noise:
            shot = np.sqrt(np.maximum(electrons, 0.0) + self.read_noise_e**2)
            electrons = electrons + self._rng.standard_normal(electrons.shape, dtype=np.float32) * shot
        electrons = np.clip(electrons, 0.0, self.full_well_e)
        dn = electrons * (gain * 255.0 / self.full_well_e)
        if noise:
            dn += self._rng.standard_normal(dn.shape, dtype=np.float32) * self.adc_noise_dn
        return np.clip(np.rint(dn), 0, 255).astype(np.uint8)

    def truth(self) -> dict[str, Any]:
        """What calibration should recover: intrinsics, distortion, the sharpest focus and
        the exposure (at gain 1) that brings the brightest white to full scale."""
        return {
            "camera_matrix": self.camera_matrix.tolist(),
            "dist_coeffs": self.dist.tolist(),
            "best_focus": self.best_focus,
            "saturation_exposure_ms": self.full_well_e / (WHITE_ALBEDO * self.electrons_per_ms),
        }
