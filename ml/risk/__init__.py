"""Risk prediction from HRV features: the feature schema, training, a versioned model
registry, and serving through OpenVINO. Nothing here knows of Celery or HTTP."""

import importlib as _importlib
import os as _os


def _import_openvino_without_telemetry() -> None:
    """Import OpenVINO with its telemetry off. On import it sends a usage event to Google
    Analytics from a forked process unless the machine's user has opted out
    (``opt_in_out --opt_out``); it stays quiet in CI builds, and its choice holds for the
    process. vitalq handles health data and sends nothing anywhere, so OpenVINO is
    first imported as in CI."""
    previous = _os.environ.get("CI")
    _os.environ["CI"] = "true"
    try:
        _importlib.import_module("openvino")
    finally:
        if previous is None:
            del _os.environ["CI"]
        else:
            _os.environ["CI"] = previous


_import_openvino_without_telemetry()

from .features import FEATURES, NAMES, InvalidFeature, feature_matrix, from_rppg_summary  # noqa: E402
from .registry import DEMO_NOTICE, ModelNotFound, ModelRecord, ModelRegistry  # noqa: E402
from .training import MODEL_TYPES, TrainedModel, demo_dataset, read_header, read_labelled_csv, train  # noqa: E402

__all__ = [
    "DEMO_NOTICE", "FEATURES", "MODEL_TYPES", "NAMES", "InvalidFeature", "ModelNotFound", "ModelRecord",
    "ModelRegistry", "TrainedModel", "demo_dataset", "ensure_default_model", "feature_matrix", "from_rppg_summary",
    "predict_rows", "read_header", "read_labelled_csv", "train",
]


def ensure_default_model(registry: ModelRegistry) -> ModelRecord:
    """The active model, training the demonstration model first if none is registered.

    Reproducible: a seeded generated data set and a seeded logistic regression."""
    import hashlib

    active = registry.active_version()
    if active is not None:
        return registry.get(active)
    features, labels = demo_dataset()
    digest = hashlib.sha256(features.tobytes() + labels.tobytes()).hexdigest()
    return registry.register(train(features, labels, "logistic"), name="demo-hrv-risk", training_sha256=digest,
                             demo=True)


def predict_rows(registry: ModelRegistry, features, version: int | None = None) -> dict:
    """Probabilities, predicted class, model version and runtime for each row of features."""
    probabilities, record = registry.predict(features, version)
    classes = record.classes
    return {
        "model": {"version": record.version, "name": record.name, "type": record.model_type,
                  "runtime": record.runtime, "demo": record.demo, "notice": record.notice,
                  **({"openvino_refused": record.openvino["refused"]} if "refused" in record.openvino else {})},
        "classes": classes,
        "predictions": [{"probabilities": {str(c): float(p) for c, p in zip(classes, row)},
                         "predicted": classes[int(row.argmax())]} for row in probabilities],
    }
