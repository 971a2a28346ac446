"""The camera layer on its own: the simulated camera's physics, the image measures, the
calibration routine against the simulator's known truth, and the OpenCV driver on a
video file standing in for a capture device. No worker, no database."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hardware import (CalibrationPlan, ControlUnsupported, DeviceBusyError, DeviceUnavailableError, calibrate,
                      open_camera)
from hardware import measures
from hardware.calibration import exposure_values
from hardware.simulated import SimulatedCamera

SMALL = dict(width=640, height=400)


@pytest.fixture
def camera(tmp_path):
    with SimulatedCamera(**SMALL, lock_dir=tmp_path) as cam:
        yield cam


def test_sensor_is_linear_in_exposure_until_it_clips(camera):
    albedo = camera.render_albedo(camera.poses[0])
    camera.set_control("focus", camera.best_focus)
    levels = []
    for exposure in (2.0, 4.0):
        camera.set_control("exposure", exposure)
        levels.append(camera.expose(albedo, noise=False).astype(float).mean())
    assert levels[1] / levels[0] == pytest.approx(2.0, rel=0.02)
    camera.set_control("exposure", 2 * camera.truth()["saturation_exposure_ms"])
    assert measures.clipped_fraction(camera.expose(albedo))[1] > 0.1


def test_at_equal_brightness_more_gain_means_more_noise(camera):
    flat = np.full((camera.height, camera.width), 0.5, np.float32)
    sigmas = []
    for gain in (1.0, 4.0):
        camera.set_control("gain", gain)
        camera.set_control("exposure", 8.0 / gain)
        frame, again = camera.expose(flat).astype(float), camera.expose(flat).astype(float)
        sigmas.append((frame - again).std() / np.sqrt(2))  # temporal noise, without the vignetting
        assert frame.mean() == pytest.approx(0.5 * 1200 * 8 * 255 / 10_000 * _vignetting_mean(camera), rel=0.05)
    assert sigmas[1] > 1.6 * sigmas[0]


def _vignetting_mean(camera) -> float:
    return float(camera._relative_illumination.mean())


def test_defocus_blurs_more_away_from_the_best_focus(camera):
    albedo = camera.render_albedo(camera.poses[0])
    camera.set_control("exposure", 8.0)
    scores = {}
    for focus in (camera.best_focus - 40, camera.best_focus, camera.best_focus + 20):
        camera.set_control("focus", focus)
        scores[focus] = measures.sharpness(camera.expose(albedo), camera.expose(albedo))
    assert scores[camera.best_focus] > scores[camera.best_focus + 20] > scores[camera.best_focus - 40]


def test_noise_estimate_matches_known_noise():
    rng = np.random.default_rng(0)
    image = np.tile(np.linspace(60, 190, 400, dtype=np.float32), (300, 1))  # a smooth ramp
    noisy = np.clip(image + rng.normal(0, 4.0, image.shape), 0, 255).round().astype(np.uint8)
    assert measures.noise_sigma(noisy) == pytest.approx(4.0, rel=0.1)


def test_a_second_opener_is_refused_as_busy_and_an_unplugged_camera_as_unavailable(tmp_path):
    with SimulatedCamera(**SMALL, serial="bench", lock_dir=tmp_path):
        with pytest.raises(DeviceBusyError):
            SimulatedCamera(**SMALL, serial="bench", lock_dir=tmp_path).open()
    SimulatedCamera(**SMALL, serial="bench", lock_dir=tmp_path).open()  # free again once closed
    with pytest.raises(DeviceUnavailableError):
        SimulatedCamera(**SMALL, unplugged=True).open()
    with SimulatedCamera(**SMALL, disconnect_after=3) as cam:
        [cam.read() for _ in range(3)]
        with pytest.raises(DeviceUnavailableError):
            cam.read()


def test_controls_are_clamped_to_their_range_and_step(camera):
    assert camera.set_control("focus", 1000) == 255
    assert camera.set_control("focus", 137) == 135
    assert camera.set_control("exposure", 0.0) == pytest.approx(0.05)
    with pytest.raises(ControlUnsupported):
        camera.set_control("white_balance", 1)


def test_calibration_recovers_the_simulated_truth(camera):
    result = calibrate(camera, CalibrationPlan(views=12))
    truth = camera.truth()
    assert result.passed, result.reasons
    # Each check says why it passed, in passing words ("within", not "above").
    assert set(result.checks) >= {"views", "reprojection_error_px", "coverage", "saturated", "brightness",
                                  "focus_contrast"}
    for name, check in result.checks.items():
        assert check["passed"] and not any(word in check["reason"] for word in ("above", "fewer", "less", "only",
                                                                                 "no clear")), (name, check)
    matrix, true_matrix = np.array(result.intrinsics["camera_matrix"]), np.array(truth["camera_matrix"])
    for index in [(0, 0), (1, 1), (0, 2), (1, 2)]:
        assert matrix[index] == pytest.approx(true_matrix[index], rel=0.005)
    assert result.intrinsics["reprojection_error_px"] < 0.3
    assert np.allclose(result.intrinsics["dist_coeffs"][:2], truth["dist_coeffs"][:2], atol=0.02)
    focus_step = camera.capabilities().controls["focus"].step
    assert abs(result.settings["focus"] - truth["best_focus"]) <= focus_step
    # Exposure: the longest sweep setting short of saturating the whites, give or take one step.
    sweep = exposure_values(camera.capabilities().controls["exposure"], CalibrationPlan().exposure_steps)
    optimum = int(np.searchsorted(sweep, truth["saturation_exposure_ms"]) - 1)
    chosen = int(np.argmin(np.abs(sweep - result.settings["exposure"])))
    assert abs(chosen - optimum) <= 1
    assert result.settings["gain"] == 1.0  # a bright scene needs no gain
    assert camera.settings()["focus"] == result.settings["focus"]


def test_a_dim_scene_gets_gain_and_a_hidden_board_fails_clearly(tmp_path):
    with SimulatedCamera(**SMALL, electrons_per_ms=60.0) as dim:  # 20x darker: 33 ms is not enough
        result = calibrate(dim, CalibrationPlan(views=8, min_views=6))
    # The whites reach the target level only with about 5x gain at the longest exposure.
    assert result.settings["exposure"] == pytest.approx(33.0)
    assert result.settings["gain"] == pytest.approx(5.0, abs=0.5)
    chosen = next(p for p in result.sweeps["gain"] if p["value"] == result.settings["gain"])
    assert chosen["metrics"]["p99"] >= 0.8 * 255 * CalibrationPlan().target_level

    from hardware import CalibrationError

    with SimulatedCamera(**SMALL) as cam, pytest.raises(CalibrationError) as caught:
        calibrate(cam, CalibrationPlan(board_cols=12, board_rows=9, max_view_frames=20))
    assert caught.value.code == "CALIBRATION_FAILED"


@pytest.fixture
def board_video(tmp_path):
    """A video file of the simulated rig, standing in for a capture device."""
    path = tmp_path / "board.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (640, 400), isColor=True)
    with SimulatedCamera(**SMALL, frames_per_pose=2) as cam:
        cam.set_control("focus", cam.best_focus)
        cam.set_control("exposure", 8.0)
        for _ in range(40):
            writer.write(cv2.cvtColor(cam.read(), cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def test_opencv_driver_reads_a_video_file_as_a_camera(board_video, tmp_path):
    camera = open_camera("opencv", {"source": str(board_video), "controls": {
        "exposure": {"minimum": 0.1, "maximum": 30, "step": 0.1, "default": 8, "scale": 10}}})
    with camera:
        caps = camera.capabilities()
        assert (caps.width, caps.height, caps.channels) == (640, 400, 3)
        assert caps.fps == pytest.approx(30)
        assert caps.controls == {}  # a file refuses the exposure control declared for it
        with pytest.raises(ControlUnsupported):
            camera.set_control("exposure", 5)
        # Intrinsics from the file's views; the sweeps are skipped for want of controls.
        result = calibrate(camera, CalibrationPlan(views=8, min_views=6, min_view_motion_px=10))
        assert set(result.sweeps) == set()
        assert result.intrinsics["views"] >= 6
        assert result.intrinsics["camera_matrix"][0][0] == pytest.approx(448.0, rel=0.02)
        # The file ends: the "device" stops delivering.
        with pytest.raises(DeviceUnavailableError):
            for _ in range(100):
                camera.read()
    with open_camera("opencv", {"source": str(board_video), "loop": True}) as looping:
        assert all(looping.read().shape == (400, 640, 3) for _ in range(60))
    with pytest.raises(DeviceUnavailableError):
        open_camera("opencv", {"source": str(tmp_path / "unplugged.avi")}).open()


def test_schedules_are_parsed_or_refused_with_the_field_named():
    from datetime import timedelta

    from vitalq.errors import InvalidInput
    from worker.schedules import parse_schedule

    assert parse_schedule("@every 6h").run_every == timedelta(hours=6)
    assert parse_schedule("30 2 * * 1-5").hour == {2}
    assert parse_schedule("@daily").minute == {0}
    for bad in ("every day", "61 * * * *", "* * * *", "@every 0s"):
        with pytest.raises(InvalidInput) as caught:
            parse_schedule(bad)
        assert "schedule" in caught.value.details["fields"]
