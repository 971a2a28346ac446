"""Calibrating a camera: exposure, gain, focus, then intrinsics and distortion.

``calibrate(camera, plan, progress)`` runs the whole routine on an open camera and
returns a :class:`CalibrationResult`; each step reports ``progress(fraction, message,
stage)``. It knows nothing of jobs or queues: a notebook can call it on a camera.

1. **Exposure** (ms): a geometric sweep at the lowest gain, each setting scored by its
   contrast-to-noise ratio ((p99 - p1) / noise sigma), among the settings that saturate
   at most ``max_clipped`` of the pixels: the longest exposure short of clipping, as
   "expose to the right" asks.
2. **Gain** (linear): at the brightness the exposure reached (or the target level, when
   even the longest exposure stays dim), each gain with the exposure that keeps that
   brightness; the one with the best signal-to-noise ratio wins, which is the lowest
   gain that reaches the brightness: gain amplifies the noise before it.
3. **Focus** (motor steps): coarse-to-fine: ``focus_coarse_points`` across the range,
   then every step within one coarse interval of the best, on the noise-corrected
   Laplacian/Tenengrad measure (``hardware.measures.sharpness``).
4. **Intrinsics**: checkerboard views (``cv2.findChessboardCorners`` refined with
   ``cv2.cornerSubPix``), kept when the board has moved since the last view kept, then
   ``cv2.calibrateCameraExtended`` (Zhang, "A flexible new technique for camera
   calibration", IEEE TPAMI 22(11), 2000) with Brown-Conrady distortion (k1, k2, p1, p2,
   k3): camera matrix (px), distortion, RMS reprojection error (px), and the standard
   deviation of each intrinsic.
5. **Verdict**: every check with its value and limit; the profile passes when all do.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import cv2
import numpy as np

from . import measures
from .camera import Camera, ControlRange
from .errors import CalibrationError

Progress = Callable[[float, str, str], None]

# Share of the progress bar each step takes.
_SPANS = {"exposure": (0.0, 0.2), "gain": (0.2, 0.3), "focus": (0.3, 0.55), "views": (0.55, 0.95),
          "intrinsics": (0.95, 1.0)}


@dataclass(frozen=True)
class CalibrationPlan:
    """How to calibrate: the target and the thresholds of the verdict."""

    #: Inner corners of the checkerboard, across and down, and its square size in metres.
    board_cols: int = 9
    board_rows: int = 6
    square_m: float = 0.025
    exposure_steps: int = 16
    gain_candidates: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
    focus_coarse_points: int = 9
    #: Frames measured per setting, after ``settle_frames`` read and dropped while the
    #: device applies the setting.
    frames_per_setting: int = 2
    settle_frames: int = 1
    views: int = 15
    min_views: int = 8
    #: Frames, and seconds, to look through for views before giving up.
    max_view_frames: int = 600
    max_view_seconds: float = 60.0
    #: Mean corner movement (px) for a view to count as new.
    min_view_motion_px: float = 20.0
    max_clipped: float = 0.001
    target_level: float = 0.85
    max_reprojection_px: float = 0.5
    min_coverage: float = 0.4
    min_focus_contrast: float = 1.5

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "CalibrationPlan":
        known = cls.__dataclass_fields__
        values = {name: value for name, value in params.items() if name in known}
        if "gain_candidates" in values:
            values["gain_candidates"] = tuple(values["gain_candidates"])
        return cls(**values)


@dataclass
class SweepPoint:
    value: float
    score: float
    metrics: dict[str, float]


@dataclass
class CalibrationResult:
    #: The chosen controls, ready to apply: exposure (ms), gain (x), focus (steps).
    settings: dict[str, float]
    #: camera_matrix (3x3, px), dist_coeffs (k1 k2 p1 p2 k3), image_size [w, h],
    #: reprojection_error_px (RMS), per_view_error_px, std_intrinsics (fx fy cx cy, px), views.
    intrinsics: dict[str, Any] | None
    sweeps: dict[str, list[dict[str, Any]]]
    passed: bool
    reasons: list[str]
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibrate(camera: Camera, plan: CalibrationPlan, progress: Progress | None = None) -> CalibrationResult:
    """Run the whole routine on an open camera and leave the chosen settings applied.

    Raises CalibrationError when the target is never in view, DeviceError subclasses
    when the device fails, and ControlUnsupported for nothing: steps for controls the
    camera lacks are skipped and said so in the sweeps.
    """
    report = progress or (lambda fraction, message, stage: None)
    controls = camera.capabilities().controls
    sweeps: dict[str, list[dict[str, Any]]] = {}
    settings: dict[str, float] = {}

    if "gain" in controls:
        settings["gain"] = camera.set_control("gain", controls["gain"].minimum)
    if "exposure" in controls:
        points = sweep_exposure(camera, controls["exposure"], plan, _span(report, "exposure"))
        sweeps["exposure"] = [asdict(p) for p in points]
        best = _best_exposure(points, plan)
        settings["exposure"] = camera.set_control("exposure", best.value)
        if "gain" in controls:
            gain_points = sweep_gain(camera, controls["exposure"], controls["gain"], best, plan, _span(report, "gain"))
            sweeps["gain"] = [asdict(p) for p in gain_points]
            chosen = max((p for p in gain_points if p.metrics["usable"]), key=lambda p: p.score,
                         default=gain_points[0])
            settings["gain"] = camera.set_control("gain", chosen.value)
            settings["exposure"] = camera.set_control("exposure", chosen.metrics["exposure"])
    if "focus" in controls:
        points = sweep_focus(camera, controls["focus"], plan, _span(report, "focus"))
        sweeps["focus"] = [asdict(p) for p in points]
        settings["focus"] = camera.set_control("focus", max(points, key=lambda p: p.score).value)

    views = collect_views(camera, plan, _span(report, "views"))
    intrinsics = None
    if len(views.image_points) >= 3:
        report(_SPANS["intrinsics"][0], f"solving intrinsics from {len(views.image_points)} views", "intrinsics")
        intrinsics = solve_intrinsics(views, plan)
    elif not views.image_points:
        raise CalibrationError(
            f"no {plan.board_cols}x{plan.board_rows} checkerboard seen in {views.frames_read} frames",
            frames_read=views.frames_read)
    checks = _checks(plan, sweeps, settings, intrinsics, views)
    reasons = [check["reason"] for check in checks.values() if not check["passed"]]
    report(1.0, "passed" if not reasons else "failed: " + "; ".join(reasons), "verdict")
    return CalibrationResult(settings=settings, intrinsics=intrinsics, sweeps=sweeps, passed=not reasons,
                             reasons=reasons, checks=checks)


# --- the steps -------------------------------------------------------------------------


def _measure(camera: Camera, plan: CalibrationPlan) -> list[np.ndarray]:
    for _ in range(plan.settle_frames):
        camera.read()
    return [measures.grey(camera.read()) for _ in range(plan.frames_per_setting)]


def _exposure_metrics(frames: list[np.ndarray]) -> dict[str, float]:
    rows = []
    for frame in frames:
        crushed, saturated = measures.clipped_fraction(frame)
        p1, p99 = np.percentile(frame, [1, 99])
        rows.append((crushed, saturated, p1, p99, measures.noise_sigma(frame)))
    crushed, saturated, p1, p99, sigma = np.mean(rows, axis=0)
    return {"crushed": float(crushed), "saturated": float(saturated), "p1": float(p1), "p99": float(p99),
            "noise_dn": float(sigma), "cnr": float((p99 - p1) / max(sigma, 0.1))}


def exposure_values(control: ControlRange, steps: int) -> np.ndarray:
    """A geometric sweep over the control's range (from 0.25 ms up when it allows)."""
    low = max(control.minimum, min(0.25, control.maximum))
    values = np.geomspace(low, control.maximum, steps)
    return np.unique([control.clamp(v) for v in values])


def sweep_exposure(camera: Camera, control: ControlRange, plan: CalibrationPlan, report) -> list[SweepPoint]:
    values = exposure_values(control, plan.exposure_steps)
    points = []
    for i, value in enumerate(values):
        applied = camera.set_control("exposure", value)
        metrics = _exposure_metrics(_measure(camera, plan))
        score = metrics["cnr"] if metrics["saturated"] <= plan.max_clipped else 0.0
        points.append(SweepPoint(applied, score, metrics))
        report((i + 1) / len(values), f"exposure {applied:g} ms: p99 {metrics['p99']:.0f} DN, "
               f"saturated {100 * metrics['saturated']:.2f} %, CNR {metrics['cnr']:.1f}")
    return points


def _best_exposure(points: list[SweepPoint], plan: CalibrationPlan) -> SweepPoint:
    usable = [p for p in points if p.metrics["saturated"] <= plan.max_clipped]
    return max(usable, key=lambda p: p.score) if usable else points[0]


def sweep_gain(camera: Camera, exposure: ControlRange, gain: ControlRange, base: SweepPoint,
               plan: CalibrationPlan, report) -> list[SweepPoint]:
    """Each gain with the exposure that keeps the brightness of ``base`` (or reaches the
    target level if ``base`` is dim), scored by its signal-to-noise ratio p99 / sigma.
    Stops once two usable gains in a row score below the best: SNR only falls from there."""
    target = 255 * plan.target_level
    candidates = {gain.clamp(g) for g in plan.gain_candidates}
    if base.metrics["p99"] >= 0.8 * target:
        target = base.metrics["p99"]
    else:  # dim even at this exposure: also try the gain that reaches the target at the longest exposure
        candidates.add(gain.clamp(target / max(base.metrics["p99"], 1.0) * base.value / exposure.maximum))
    candidates = sorted(candidates)
    points: list[SweepPoint] = []
    worse_in_a_row = 0
    for i, value in enumerate(candidates):
        applied = camera.set_control("gain", value)
        exposure_ms = camera.set_control("exposure", base.value * target / max(base.metrics["p99"], 1.0) / applied)
        metrics = _exposure_metrics(_measure(camera, plan))
        snr = metrics["p99"] / max(metrics["noise_dn"], 0.1)
        usable = metrics["p99"] >= 0.8 * target and metrics["saturated"] <= plan.max_clipped
        metrics.update(exposure=exposure_ms, snr=snr, usable=float(usable))
        best = max((p.score for p in points if p.metrics["usable"]), default=-1.0)
        points.append(SweepPoint(applied, snr, metrics))
        report((i + 1) / len(candidates), f"gain {applied:g}x at {exposure_ms:g} ms: p99 {metrics['p99']:.0f} DN, "
               f"SNR {snr:.1f}{'' if usable else ' (not usable)'}")
        worse_in_a_row = worse_in_a_row + 1 if usable and best > snr else 0
        if worse_in_a_row >= 2:
            break
    return points


def _sharpness(camera: Camera, plan: CalibrationPlan) -> tuple[float, float]:
    """Sharpness from ``frames_per_setting`` pairs of consecutive frames showing the
    same scene (a pair spanning a move of the target is skipped, up to a few times)."""
    for _ in range(plan.settle_frames):
        camera.read()
    scores, laplacians = [], []
    previous = measures.grey(camera.read())
    for _ in range(4 * plan.frames_per_setting + 4):
        frame = measures.grey(camera.read())
        if measures.same_scene(previous, frame):
            scores.append(measures.sharpness(previous, frame))
            laplacians.append(measures.laplacian_variance(frame))
            if len(scores) == plan.frames_per_setting:
                break
        previous = frame
    if not scores:
        raise CalibrationError("the scene never held still for two frames: cannot measure focus")
    return float(np.mean(scores)), float(np.mean(laplacians))


def sweep_focus(camera: Camera, control: ControlRange, plan: CalibrationPlan, report) -> list[SweepPoint]:
    """Coarse over the whole range, then every step around the best coarse setting."""
    coarse = np.unique([control.clamp(v) for v in np.linspace(control.minimum, control.maximum,
                                                                plan.focus_coarse_points)])
    interval = float(np.max(np.diff(coarse))) if len(coarse) > 1 else control.step
    measured: dict[float, SweepPoint] = {}

    def measure(value: float, fraction: float, phase: str) -> None:
        applied = camera.set_control("focus", value)
        if applied in measured:
            return
        score, laplacian = _sharpness(camera, plan)
        measured[applied] = SweepPoint(applied, score, {"laplacian_variance": laplacian, "phase": phase})
        report(fraction, f"focus {applied:g} ({phase}): sharpness {score:.4f}")

    for i, value in enumerate(coarse):
        measure(value, 0.4 * (i + 1) / len(coarse), "coarse")
    peak = max(measured.values(), key=lambda p: p.score).value
    fine = [v for v in control.values() if abs(v - peak) <= interval]
    for i, value in enumerate(fine):
        measure(value, 0.4 + 0.6 * (i + 1) / len(fine), "fine")
    return sorted(measured.values(), key=lambda p: p.value)


@dataclass
class Views:
    object_points: list[np.ndarray]
    image_points: list[np.ndarray]
    image_size: tuple[int, int]
    frames_read: int


def board_points(plan: CalibrationPlan) -> np.ndarray:
    """The inner corners in the board's own frame, metres, row by row."""
    grid = np.zeros((plan.board_rows * plan.board_cols, 3), np.float32)
    grid[:, :2] = np.mgrid[0 : plan.board_cols, 0 : plan.board_rows].T.reshape(-1, 2) * plan.square_m
    return grid


def find_board(frame: np.ndarray, plan: CalibrationPlan) -> np.ndarray | None:
    """Sub-pixel inner corners of the board, or None when it is not (wholly) in view."""
    pattern = (plan.board_cols, plan.board_rows)
    found, corners = cv2.findChessboardCorners(
        frame, pattern, flags=cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_FAST_CHECK)
    if not found:
        return None
    # The refinement window: most of the smallest square's half-width, at least 3 px.
    spacing = np.linalg.norm(np.diff(corners.reshape(plan.board_rows, plan.board_cols, 2), axis=1), axis=2).min()
    half = int(max(3, min(11, spacing * 0.4)))
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-3)
    return cv2.cornerSubPix(frame, corners, (half, half), (-1, -1), criteria)


def collect_views(camera: Camera, plan: CalibrationPlan, report) -> Views:
    objects = board_points(plan)
    kept: list[np.ndarray] = []
    size = (0, 0)
    frames = 0
    deadline = time.monotonic() + plan.max_view_seconds
    while len(kept) < plan.views and frames < plan.max_view_frames and time.monotonic() < deadline:
        frame = measures.grey(camera.read())
        frames += 1
        size = (frame.shape[1], frame.shape[0])
        corners = find_board(frame, plan)
        if corners is None:
            continue
        # A view counts when the board has moved since every view kept (corner order is
        # fixed by the pattern, so corners compare one to one).
        if all(np.mean(np.linalg.norm(corners - seen, axis=2)) >= plan.min_view_motion_px for seen in kept):
            kept.append(corners)
            report(len(kept) / plan.views, f"view {len(kept)} of {plan.views} (frame {frames})")
    return Views([objects] * len(kept), kept, size, frames)


def solve_intrinsics(views: Views, plan: CalibrationPlan) -> dict[str, Any]:
    rms, matrix, dist, _r, _t, std_intrinsics, _std_extrinsics, per_view = cv2.calibrateCameraExtended(
        views.object_points, views.image_points, views.image_size, None, None)
    width, height = views.image_size
    cells = np.zeros((8, 8), bool)
    for corners in views.image_points:
        xy = corners.reshape(-1, 2)
        cells[np.clip((xy[:, 1] / height * 8).astype(int), 0, 7), np.clip((xy[:, 0] / width * 8).astype(int), 0, 7)] = True
    return {
        "camera_matrix": matrix.tolist(),
        "dist_coeffs": dist.ravel().tolist(),
        "image_size": [width, height],
        "reprojection_error_px": float(rms),
        "per_view_error_px": per_view.ravel().tolist(),
        "std_intrinsics": dict(zip(("fx", "fy", "cx", "cy"), std_intrinsics.ravel()[:4].tolist())),
        "views": len(views.image_points),
        "coverage": float(cells.mean()),
    }


def _checks(plan: CalibrationPlan, sweeps, settings, intrinsics, views: Views) -> dict[str, dict[str, Any]]:
    checks: dict[str, dict[str, Any]] = {}

    def check(name: str, value: float, limit: float, passed: bool, why_passed: str, why_failed: str) -> None:
        checks[name] = {"value": value, "limit": limit, "passed": bool(passed),
                        "reason": why_passed if passed else why_failed}

    n = len(views.image_points)
    check("views", n, plan.min_views, n >= plan.min_views,
          f"the board was seen in {n} distinct views, at least {plan.min_views} as needed",
          f"the board was seen in {n} distinct views, fewer than {plan.min_views}")
    if intrinsics is not None:
        rms = intrinsics["reprojection_error_px"]
        check("reprojection_error_px", rms, plan.max_reprojection_px, rms <= plan.max_reprojection_px,
              f"reprojection error {rms:.3f} px is within {plan.max_reprojection_px} px",
              f"reprojection error {rms:.3f} px is above {plan.max_reprojection_px} px")
        coverage = intrinsics["coverage"]
        check("coverage", coverage, plan.min_coverage, coverage >= plan.min_coverage,
              f"the views cover {100 * coverage:.0f} % of the frame, at least {100 * plan.min_coverage:.0f} %",
              f"the views cover {100 * coverage:.0f} % of the frame, less than {100 * plan.min_coverage:.0f} %")
    if "exposure" in sweeps:
        chosen = next(p for p in sweeps["gain" if "gain" in sweeps else "exposure"]
                      if np.isclose(p["value"], settings["gain" if "gain" in sweeps else "exposure"]))
        saturated = chosen["metrics"]["saturated"]
        check("saturated", saturated, plan.max_clipped, saturated <= plan.max_clipped,
              f"{100 * saturated:.2f} % of the pixels saturate, at most {100 * plan.max_clipped:.2f} %",
              f"{100 * saturated:.2f} % of the pixels saturate even at the shortest exposure")
        level = chosen["metrics"]["p99"] / 255
        check("brightness", level, 0.5, level >= 0.5,
              f"the brightest pixels reach {100 * level:.0f} % of full scale, at least 50 %",
              f"the brightest pixels reach only {100 * level:.0f} % of full scale at the longest exposure and gain")
    if "focus" in sweeps:
        scores = [p["score"] for p in sweeps["focus"]]
        contrast = max(scores) / max(min(scores), 1e-9)
        check("focus_contrast", contrast, plan.min_focus_contrast, contrast >= plan.min_focus_contrast,
              f"sharpness varies {contrast:.2f}x across the focus range: a clear focus peak",
              f"sharpness varies only {contrast:.2f}x across the focus range: no clear focus peak")
    return checks


def _span(report: Progress, stage: str):
    low, high = _SPANS[stage]
    return lambda fraction, message: report(low + (high - low) * fraction, message, stage)
