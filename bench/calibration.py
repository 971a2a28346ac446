"""Calibration accuracy and speed on the simulated camera, against its known truth.

Prints, in one run, for several simulated cameras (an OV9281-like 1280x800 sensor with
three lens/rig draws, and a 640x400 one): the intrinsics recovered beside the true ones
(relative error, %), the RMS reprojection error, the exposure and focus chosen beside
the sweep's true optimum (in steps), the gain, and the time of each stage and of the
whole routine. Goals: fx, fy, cx, cy within 0.5 %, reprojection under 0.3 px, exposure
and focus within one step, the whole routine under 30 s.

    python bench/calibration.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from hardware import CalibrationPlan, calibrate  # noqa: E402
from hardware.calibration import exposure_values  # noqa: E402
from hardware.simulated import SimulatedCamera  # noqa: E402

CAMERAS = {
    "ov9281 seed 0": dict(width=1280, height=800, seed=0),
    "ov9281 seed 1": dict(width=1280, height=800, seed=1, fx=910.0, fy=905.0, cx=633.0, cy=407.5,
                          dist=(-0.25, 0.09, -0.0008, 0.0004, -0.01), best_focus=90.0),
    "ov9281 seed 2": dict(width=1280, height=800, seed=2, fx=1100.0, fy=1100.0, dist=(0.05, -0.02, 0, 0, 0),
                          best_focus=200.0, electrons_per_ms=40.0),
    "vga seed 3": dict(width=640, height=400, seed=3, best_focus=45.0),
}


def run(name: str, options: dict) -> dict:
    plan = CalibrationPlan()
    camera = SimulatedCamera(**options)
    stage_started: dict[str, float] = {}

    def progress(_fraction: float, _message: str, stage: str) -> None:
        stage_started.setdefault(stage, time.perf_counter())

    started = time.perf_counter()
    with camera:
        result = calibrate(camera, plan, progress)
    total = time.perf_counter() - started
    truth = camera.truth()
    controls = camera.capabilities().controls
    found, true_matrix = np.array(result.intrinsics["camera_matrix"]), np.array(truth["camera_matrix"])
    errors = {key: 100 * (found[i] - true_matrix[i]) / true_matrix[i]
              for key, i in (("fx", (0, 0)), ("fy", (1, 1)), ("cx", (0, 2)), ("cy", (1, 2)))}
    sweep = exposure_values(controls["exposure"], plan.exposure_steps)
    # The true optimum at the chosen gain: the longest sweep exposure short of saturating the whites.
    saturation = truth["saturation_exposure_ms"] / result.settings["gain"]
    optimum = max(int(np.searchsorted(sweep, saturation)) - 1, 0)
    chosen = int(np.argmin(np.abs(sweep - result.settings["exposure"])))
    marks = sorted(stage_started.items(), key=lambda item: item[1]) + [("end", started + total)]
    stages = {stage: marks[i + 1][1] - at for i, (stage, at) in enumerate(marks[:-1])}
    return {"name": name, "errors": errors, "rms": result.intrinsics["reprojection_error_px"],
            "views": result.intrinsics["views"], "exposure": result.settings["exposure"],
            "exposure_steps_off": chosen - optimum if result.settings["gain"] == 1.0 else None,
            "focus": result.settings["focus"], "true_focus": truth["best_focus"],
            "focus_steps_off": (result.settings["focus"] - truth["best_focus"]) / controls["focus"].step,
            "gain": result.settings["gain"], "passed": result.passed, "total": total, "stages": stages}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the first camera only")
    cameras = list(CAMERAS.items())[:1] if parser.parse_args().quick else CAMERAS.items()
    rows = [run(name, options) for name, options in cameras]
    print("Intrinsics against the truth (relative error, %) and reprojection error")
    print(f"{'camera':<15}{'fx %':>8}{'fy %':>8}{'cx %':>8}{'cy %':>8}{'RMS px':>9}{'views':>7}{'verdict':>9}")
    for row in rows:
        e = row["errors"]
        print(f"{row['name']:<15}{e['fx']:>8.3f}{e['fy']:>8.3f}{e['cx']:>8.3f}{e['cy']:>8.3f}{row['rms']:>9.3f}"
              f"{row['views']:>7}{'pass' if row['passed'] else 'FAIL':>9}")
    print("\nSettings chosen against the truth")
    print(f"{'camera':<15}{'exposure ms':>12}{'steps off':>10}{'gain':>6}{'focus':>7}{'true':>6}{'steps off':>10}")
    for row in rows:
        off = "n/a" if row["exposure_steps_off"] is None else f"{row['exposure_steps_off']:+d}"
        print(f"{row['name']:<15}{row['exposure']:>12.2f}{off:>10}{row['gain']:>6.2f}{row['focus']:>7.0f}"
              f"{row['true_focus']:>6.0f}{row['focus_steps_off']:>+10.0f}")
    stages = ["exposure", "gain", "focus", "views", "intrinsics", "verdict"]
    print("\nTime per stage (s)")
    print(f"{'camera':<15}" + "".join(f"{s:>11}" for s in stages) + f"{'total':>9}")
    for row in rows:
        print(f"{row['name']:<15}" + "".join(f"{row['stages'].get(s, 0.0):>11.2f}" for s in stages)
              + f"{row['total']:>9.2f}")
    print("\n(seed 2 is a dim scene: the longest exposure is not enough and the gain makes up the rest;"
          " exposure 'steps off' is measured at gain 1)")


if __name__ == "__main__":
    main()
