"""The model registry: versioned risk models in a folder, each with its metrics, feature
schema, training data sha256, creation time and serving runtime; one version active.

    registry = ModelRegistry(data_dir / "models")
    record = registry.register(trained, name="hrv-risk", training_sha256=digest)
    probabilities, record = registry.predict(rows)  # the active version

Reading the registry (versions, metadata, which is active) needs neither scikit-learn
nor OpenVINO: the web process lists models without importing them.

Layout: ``<root>/<version>/{model.joblib, model.xml, model.bin, meta.json}`` and
``<root>/active.json``. Versions are claimed by creating their folder, which is atomic,
so workers on several machines sharing the folder never reuse a number.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelNotFound
from .features import FEATURES

DEMO_NOTICE = ("demonstration model trained on generated data; not clinically validated, not for any "
               "medical decision")


@dataclass
class ModelRecord:
    version: int
    name: str
    model_type: str
    classes: list
    metrics: dict[str, Any]
    class_balance: dict[str, int]
    features: list[dict[str, Any]]
    training_sha256: str
    created_at: str
    runtime: str  # "openvino" or "sklearn"
    openvino: dict[str, Any] = field(default_factory=dict)  # parity, or why not
    demo: bool = False
    notice: str | None = None
    active: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ModelRegistry:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _claim_version(self) -> tuple[int, Path]:
        existing = [int(p.name) for p in self.root.iterdir() if p.name.isdigit()]
        version = max(existing, default=0) + 1
        while True:
            try:
                (self.root / str(version)).mkdir()
                return version, self.root / str(version)
            except FileExistsError:
                version += 1

    def register(self, trained, *, name: str, training_sha256: str, demo: bool = False,
                 activate: bool = True) -> ModelRecord:
        """Store a trained model as the next version, with its OpenVINO form when it
        converts and matches scikit-learn to PARITY_TOLERANCE on the held-out rows."""
        import joblib

        from ._openvino import ov
        from .serving import PARITY_TOLERANCE, NotConvertible, parity, to_openvino

        version, folder = self._claim_version()
        joblib.dump(trained.pipeline, folder / "model.joblib")
        runtime, openvino_info = "sklearn", {}
        try:
            ov.save_model(to_openvino(trained.pipeline), str(folder / "model.xml"), compress_to_fp16=False)
            difference = parity(trained.pipeline, folder / "model.xml", trained.holdout)
            openvino_info = {"parity_max_abs_diff": difference, "tolerance": PARITY_TOLERANCE,
                             "rows_checked": int(trained.holdout.shape[0])}
            if difference <= PARITY_TOLERANCE:
                runtime = "openvino"
            else:
                openvino_info["refused"] = "probabilities differ from scikit-learn's beyond the tolerance"
        except NotConvertible as exc:
            openvino_info = {"refused": str(exc)}
        record = ModelRecord(
            version=version, name=name, model_type=trained.model_type, classes=trained.classes,
            metrics=trained.metrics, class_balance=trained.class_balance,
            features=[{"name": f.name, "unit": f.unit, "range": [f.low, f.high], "required": f.required}
                      for f in FEATURES],
            training_sha256=training_sha256, created_at=datetime.now(timezone.utc).isoformat(),
            runtime=runtime, openvino=openvino_info, demo=demo, notice=DEMO_NOTICE if demo else None)
        _write_json(folder / "meta.json", record.to_dict())
        if activate:
            self.activate(version)
        return self.get(version)

    def versions(self) -> list[ModelRecord]:
        return [self.get(int(p.name)) for p in sorted(self.root.iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else 0)
                if p.name.isdigit() and (p / "meta.json").exists()]

    def active_version(self) -> int | None:
        path = self.root / "active.json"
        return json.loads(path.read_text())["version"] if path.exists() else None

    def get(self, version: int) -> ModelRecord:
        path = self.root / str(version) / "meta.json"
        if not path.exists():
            raise ModelNotFound(f"no model version {version}", version=version)
        record = ModelRecord(**{k: v for k, v in json.loads(path.read_text()).items() if k != "active"})
        record.active = record.version == self.active_version()
        return record

    def activate(self, version: int) -> ModelRecord:
        self.get(version)
        _write_json(self.root / "active.json", {"version": version, "since": time.time()})
        return self.get(version)

    def predict(self, features: np.ndarray, version: int | None = None) -> tuple[np.ndarray, ModelRecord]:
        """Class probabilities ``[rows, classes]`` from the given or active version."""
        version = version or self.active_version()
        if version is None:
            raise ModelNotFound("no model is registered yet")
        record = self.get(version)
        folder = self.root / str(version)
        if record.runtime == "openvino":
            from .serving import compiled, openvino_proba

            return openvino_proba(compiled(str(folder / "model.xml")), features), record
        path = folder / "model.joblib"
        return _sklearn(str(path), path.stat().st_mtime_ns).predict_proba(features), record


@lru_cache(maxsize=32)
def _sklearn(path: str, _mtime_ns: int):
    import joblib

    return joblib.load(path)


def _write_json(path: Path, data: dict) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=2))
    os.replace(temporary, path)  # readers see the old file or the new one, never half


def ensure_default_model(registry: ModelRegistry) -> ModelRecord:
    """The active model, training the demonstration model first if none is registered.

    Reproducible: a seeded generated data set and a seeded logistic regression."""
    import hashlib

    from .training import demo_dataset, train

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
