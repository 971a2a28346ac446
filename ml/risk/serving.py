"""Serving risk models through OpenVINO: each fitted pipeline is rebuilt as an OpenVINO
graph with OpenVINO's own operations, compiled once per process, and checked against
scikit-learn's ``predict_proba``.

The graph is built with OpenVINO's opset API rather than converted through ONNX:
skl2onnx expresses imputation and scaling with ONNX-ML operators (``Imputer``,
``Scaler``) that OpenVINO's ONNX reader does not run. Tree ensembles (gradient boosting)
have no OpenVINO operation at all; such models are served by scikit-learn, and every
prediction says which runtime served it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from ._openvino import ov  # noqa: I001 (first: OpenVINO without its telemetry)
import openvino.opset13 as ops  # noqa: E402
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline

#: Largest difference of a probability between OpenVINO and scikit-learn accepted.
PARITY_TOLERANCE = 1e-5


class NotConvertible(Exception):
    """The model has no OpenVINO equivalent here; the reason says why."""


def _f32(values) -> ov.Node:
    return ops.constant(np.asarray(values, dtype=np.float32))


def _activation(node, name: str):
    if name == "relu":
        return ops.relu(node)
    if name == "tanh":
        return ops.tanh(node)
    if name == "logistic":
        return ops.sigmoid(node)
    if name == "identity":
        return node
    raise NotConvertible(f"MLP activation {name!r} is not supported")


def _probabilities(scores, binary: bool):
    if binary:  # scikit-learn: P(class 1) = sigmoid(score), P(class 0) = 1 - that
        positive = ops.sigmoid(scores)
        return ops.concat([ops.subtract(_f32([[1.0]]), positive), positive], axis=1)
    return ops.softmax(scores, axis=1)


def to_openvino(pipeline: Pipeline) -> ov.Model:
    """The pipeline (imputer, scaler, logistic regression or MLP) as an OpenVINO model
    taking ``features`` ``[rows, n_features]`` float32 and giving class probabilities."""
    impute, scale, model = pipeline["impute"], pipeline["scale"], pipeline["model"]
    n_features = impute.statistics_.size
    features = ops.parameter([-1, n_features], np.float32, name="features")
    x = ops.select(ops.is_nan(features), _f32(impute.statistics_[None, :]), features)
    x = ops.divide(ops.subtract(x, _f32(scale.mean_[None, :])), _f32(scale.scale_[None, :]))
    if isinstance(model, LogisticRegression):
        scores = ops.add(ops.matmul(x, _f32(model.coef_.T), False, False), _f32(model.intercept_[None, :]))
        output = _probabilities(scores, binary=model.classes_.size == 2)
    elif isinstance(model, MLPClassifier):
        h = x
        for layer, (weights, bias) in enumerate(zip(model.coefs_, model.intercepts_)):
            h = ops.add(ops.matmul(h, _f32(weights), False, False), _f32(bias[None, :]))
            if layer < len(model.coefs_) - 1:
                h = _activation(h, model.activation)
        output = _probabilities(h, binary=model.out_activation_ == "logistic")
    else:
        raise NotConvertible(f"{type(model).__name__} has no OpenVINO equivalent (no tree-ensemble operation)")
    output.get_output_tensor(0).set_names({"probabilities"})
    return ov.Model([output], [features], "risk")


def compiled(xml_path: str) -> ov.CompiledModel:
    """The OpenVINO model at ``xml_path``, compiled once per process (and again if the
    file is replaced)."""
    return _compile(xml_path, Path(xml_path).stat().st_mtime_ns)


@lru_cache(maxsize=32)
def _compile(xml_path: str, _mtime_ns: int) -> ov.CompiledModel:
    core = ov.Core()
    return core.compile_model(core.read_model(xml_path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})


def openvino_proba(model: ov.CompiledModel, features: np.ndarray) -> np.ndarray:
    return np.asarray(model(np.ascontiguousarray(features, dtype=np.float32))[0], dtype=np.float64)


def parity(pipeline: Pipeline, xml_path: Path, rows: np.ndarray) -> float:
    """Largest absolute difference of any probability between OpenVINO and scikit-learn."""
    return float(np.max(np.abs(openvino_proba(compiled(str(xml_path)), rows) - pipeline.predict_proba(rows))))
