"""``risk.train`` and ``risk.predict``: the HRV risk models."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from vitalq.errors import InvalidInput

from .base import JobKind, Upload, register


def _check_training(params: dict[str, Any], upload: Path | None) -> None:
    if upload is not None:
        from ml.risk.training import read_header

        read_header(upload)  # its first line: the worker reads the rows, naming a bad one's line


def _check_prediction(params: dict[str, Any], upload: Path | None) -> None:
    from ml.risk import feature_matrix

    if (params.get("rows") is None) == (upload is None):
        raise InvalidInput("give the features either as rows or as a CSV file, not both or neither",
                           {"fields": {"rows": "rows or a file"}})
    if params.get("rows") is not None:
        feature_matrix(params["rows"])
    else:
        from ml.risk.training import read_header

        read_header(upload, labelled=False)
    check_model_version(params)


def check_model_version(params: dict[str, Any]) -> None:
    """A chosen risk model must exist (NOT_FOUND otherwise)."""
    if params.get("model_version") is not None:
        from ..risk_models import registry

        registry().get(params["model_version"])


def chained_into_risk(kind: JobKind) -> tuple[dict[str, Any], Callable[[dict[str, Any], Path | None], None]]:
    """The params schema and check of a kind that runs ``kind`` and then predicts risk from
    its HRV (``video.analyze``, ``signal.analyze``): ``kind``'s, and a risk model version."""
    schema = {**kind.params_schema, "properties": {
        **kind.params_schema["properties"],
        "model_version": {"type": "integer", "minimum": 1, "description": "Risk model version (default: the active one)."},
    }}

    def check(params: dict[str, Any], upload: Path | None) -> None:
        if kind.check is not None:
            kind.check(params, upload)
        check_model_version(params)

    return schema, check


RISK_TRAIN = register(
    JobKind(
        name="risk.train",
        title="Train a risk model",
        description=("Trains a scikit-learn pipeline (imputation, scaling, a classifier) on a labelled CSV of HRV "
                     "features (mean_hr_bpm, sdnn_ms, rmssd_ms, pnn50_pct, lf_ms2, hf_ms2, lf_hf, quality, label), "
                     "with cross-validated ROC AUC, balanced accuracy and Brier score, and registers it as a new "
                     "version, served through OpenVINO when it converts and matches."),
        params_schema={
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "model_type": {"enum": ["logistic", "gradient_boosting", "mlp"], "default": "logistic"},
                "name": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9._-]+$",
                         "default": "hrv-risk"},
                "activate": {"type": "boolean", "default": True, "description": "Make it the active version."},
                "seed": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1, "default": 0},
            },
        },
        soft_time_limit_s=600,
        time_limit_s=900,
        upload=Upload(required=True, formats=(".csv",), max_bytes=256 * 1024**2),
        check=_check_training,
    )
)

_FEATURE_ROW = {"type": "object", "maxProperties": 32,
                "additionalProperties": {"type": ["number", "null", "string", "integer"]}}

RISK_PREDICT = register(
    JobKind(
        name="risk.predict",
        title="Predict risk",
        description=("Class probabilities from HRV features, one row or thousands, with the active (or a chosen) "
                     "model version, and which runtime served it. The shipped default is a demonstration model, "
                     "not clinically validated."),
        params_schema={
            "type": "object",
            "additionalProperties": False,
            "properties": {
                # Checked in the web process: a larger batch comes as a CSV, read by the worker.
                "rows": {"type": "array", "minItems": 1, "maxItems": 1000, "items": _FEATURE_ROW,
                         "description": "Up to 1000 rows of features; upload a CSV for more."},
                "model_version": {"type": "integer", "minimum": 1, "description": "Default: the active version."},
            },
        },
        soft_time_limit_s=300,
        time_limit_s=420,
        upload=Upload(required=False, formats=(".csv",), max_bytes=256 * 1024**2),
        check=_check_prediction,
    )
)
