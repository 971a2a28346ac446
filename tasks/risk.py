"""``risk.train`` and ``risk.predict``; ``video.analyze`` and ``signal.analyze``: the HRV of a
face video, or of an ECG or PPG, chained into risk prediction."""

from __future__ import annotations

from typing import Callable

from celery import shared_task

from ml.risk import (ensure_default_model, feature_matrix, from_beats_summary, from_rppg_summary, predict_rows,
                     read_labelled_csv, train)
from tasks.beats import run_beats
from tasks.rppg import run_rppg
from worker.jobtask import JobContext, JobTask
from worker.risk_models import registry


@shared_task(base=JobTask, name="risk.train")
def train_model(job: JobContext) -> dict:
    params = job.params
    job.progress(0.05, "reading the labelled rows", stage="train")
    features, labels = read_labelled_csv(job.input_path)
    job.progress(0.2, f"cross-validating a {params['model_type']} model on {labels.size:,} rows")
    trained = train(features, labels, params["model_type"], seed=params["seed"])
    job.progress(0.8, "registering, converting to OpenVINO and checking parity", stage="register")
    record = registry().register(trained, name=params["name"], training_sha256=job.input["sha256"],
                                 activate=params["activate"])
    return {"model": record.to_dict()}


@shared_task(base=JobTask, name="risk.predict")
def predict(job: JobContext) -> dict:
    params = job.params
    rows = params.get("rows")
    if job.input_path is not None:
        features, _ = read_labelled_csv(job.input_path, labelled=False)
    else:
        features = feature_matrix(rows)
    job.progress(0.3, f"predicting {features.shape[0]:,} rows", stage="predict")
    return _predict(features, params.get("model_version"))


@shared_task(base=JobTask, name="video.analyze.rppg", final_stage=False, progress_span=(0.0, 0.9))
def analyze_rppg(job: JobContext) -> dict:
    return {"rppg": run_rppg(job)}


@shared_task(base=JobTask, name="video.analyze.risk", progress_span=(0.9, 1.0))
def analyze_risk(job: JobContext) -> dict:
    return _risk_from(job, "rppg", from_rppg_summary)


@shared_task(base=JobTask, name="signal.analyze.beats", final_stage=False, progress_span=(0.0, 0.9))
def analyze_beats(job: JobContext) -> dict:
    return {"beats": run_beats(job, job.input_path, job.params)}


@shared_task(base=JobTask, name="signal.analyze.risk", progress_span=(0.9, 1.0))
def analyze_beats_risk(job: JobContext) -> dict:
    return _risk_from(job, "beats", from_beats_summary)


def _risk_from(job: JobContext, part: str, features_of: Callable[[dict], dict]) -> dict:
    """The last stage of an analysis: risk predicted from the HRV of the earlier stage's
    ``part`` of the result, which the job keeps beside it."""
    summary = job.previous_result[part]
    job.progress(0.0, "predicting risk from the HRV features", stage="risk")
    features = features_of(summary)
    prediction = _predict(feature_matrix([features]), job.params.get("model_version"))
    return {part: summary, "risk": {**prediction, "features": features}}


def _predict(features, version: int | None) -> dict:
    """Predictions by ``version``, or by the active model (the demonstration one if none is registered)."""
    models = registry()
    if version is None:
        ensure_default_model(models)
    return predict_rows(models, features, version)
