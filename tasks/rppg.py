"""``video.rppg``: heart rate, pulse and HRV from a face video."""

from __future__ import annotations

import numpy as np
from celery import shared_task

from ml.rppg import analyze_video
from ml.rppg.plot import plot_result
from worker.jobtask import JobContext, JobTask


@shared_task(base=JobTask, name="video.rppg")
def extract_rppg(job: JobContext) -> dict:
    return run_rppg(job)


def run_rppg(job: JobContext) -> dict:
    """The rPPG analysis of the job's video, its artifacts written; returns the summary."""
    params = job.params
    result = analyze_video(
        job.input_path, method=params["method"], roi=params["roi"], window_s=params["window_s"],
        step_s=params["step_s"], band_hz=(params["min_hz"], params["max_hz"]), min_quality=params["min_quality"],
        detect_every=params["detect_every"], fps=params.get("fps"),
        progress=lambda fraction, message: job.progress(fraction, message, stage="rppg"),
    )
    np.savetxt(job.artifact("pulse.csv"), np.column_stack([result.times_s - result.times_s[0], result.pulse]),
               delimiter=",", header="t_s,pulse", comments="", fmt="%.6f")
    hr = result.heart_rate
    np.savetxt(job.artifact("heart_rate.csv"), np.column_stack([hr.times_s, hr.bpm, hr.quality]),
               delimiter=",", header="t_s,bpm,quality", comments="", fmt="%.4f")
    plot_result(result, job.artifact("plot.png"))
    return result.summary()
