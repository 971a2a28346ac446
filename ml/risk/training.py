"""Training risk models on labelled HRV features, with cross-validated metrics.

Every model is a scikit-learn pipeline: median imputation (optional features may be
missing), standard scaling, then the classifier.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInput, ParseError, TooLarge
from ..text import bounded_lines, head
from .features import NAMES, feature_matrix

MODEL_TYPES = ("logistic", "gradient_boosting", "mlp")
LABEL = "label"
MAX_ROWS = 1_000_000
MAX_COLUMNS = 64
#: The most read of a CSV to check its header before queueing: 64 names fit in far less.
HEADER_BYTES = 64 * 1024
MIN_PER_CLASS = 10


def make_pipeline(model_type: str, seed: int = 0):
    """A scikit-learn pipeline: median imputation, scaling, then the model."""
    # scikit-learn is imported here, not with the module: reading a CSV's header (the
    # web process's check) needs none of it.
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if model_type == "logistic":
        model = LogisticRegression(max_iter=2000, class_weight="balanced")
    elif model_type == "gradient_boosting":
        model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, random_state=seed)
    elif model_type == "mlp":
        model = MLPClassifier(hidden_layer_sizes=(16, 8), max_iter=3000, early_stopping=False, random_state=seed)
    else:
        raise InvalidInput(f"unknown model type {model_type!r}; one of {', '.join(MODEL_TYPES)}", field="model_type")
    return Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                     ("scale", StandardScaler()), ("model", model)])


def read_header(path: Path, labelled: bool = True) -> list[str]:
    """The column names of a feature CSV, checked, from its first line alone (at most
    ``HEADER_BYTES`` are read: the check before a job is queued). Raises ParseError,
    TooLarge or UnsupportedFormat."""
    text, _complete = head(path, HEADER_BYTES, "the CSV file")
    return _checked_header(text.splitlines()[0] if text else "", labelled)


def _checked_header(line: str, labelled: bool) -> list[str]:
    header = next(csv.reader(io.StringIO(line)), [])
    if len(header) > MAX_COLUMNS:
        raise TooLarge(f"the CSV has {len(header)} columns; at most {MAX_COLUMNS} are read", columns=len(header))
    header = [name.strip() for name in header]
    if labelled and LABEL not in header:
        raise ParseError(f"the CSV header must name a {LABEL!r} column beside the features", line=1)
    missing = [name for name in NAMES if name not in header]
    if any(name in missing for name in ("mean_hr_bpm", "sdnn_ms", "rmssd_ms", "pnn50_pct", "quality")):
        raise ParseError(f"the CSV header lacks {', '.join(missing)}", line=1, missing=missing)
    return header


def read_labelled_csv(path: Path, labelled: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """(features ``[rows, len(NAMES)]``, labels) from a CSV with a header naming the
    features and, if ``labelled``, a ``label`` column. Raises ParseError, InvalidFeature
    (naming the line and feature) or TooLarge (too many rows, or a line too long)."""
    with open(path, newline="", encoding="utf-8", errors="strict") as file:
        lines = bounded_lines(file)
        try:
            header = _checked_header(next(lines, ""), labelled)
        except UnicodeDecodeError:
            raise ParseError("the CSV file is not UTF-8 text", line=1) from None
        rows, labels = [], []
        line_number = 1
        try:
            for line_number, cells in enumerate(csv.reader(lines), start=2):
                if not cells or all(not c.strip() for c in cells):
                    continue
                if len(cells) != len(header):
                    raise ParseError(f"line {line_number} has {len(cells)} fields, the header {len(header)}",
                                     line=line_number)
                if len(rows) >= MAX_ROWS:
                    raise TooLarge(f"more than {MAX_ROWS} rows", rows=MAX_ROWS)
                record = dict(zip(header, (c.strip() for c in cells)))
                labels.append(record.pop(LABEL, None))
                rows.append(record)
        except (UnicodeDecodeError, csv.Error) as exc:
            reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(exc)
            raise ParseError(f"line {line_number + 1}: {reason}", line=line_number + 1) from None
    if not rows:
        raise ParseError("the CSV has no rows", line=2)
    try:
        features = feature_matrix(rows)
    except InvalidInput as exc:  # rows are numbered from the first data line: name the file line
        row = exc.details.get("row", 0)
        raise type(exc)(f"line {row + 2}: {exc.message.split(': ', 1)[-1]}", **{**exc.details, "line": row + 2}) from None
    if not labelled:
        return features, None
    try:  # numeric labels stay numbers, so that "1" is the positive class of 0/1 data
        return features, np.array([int(label) for label in labels])
    except ValueError:
        return features, np.array(labels)


@dataclass
class TrainedModel:
    pipeline: Any  # a fitted sklearn.pipeline.Pipeline
    model_type: str
    classes: list
    metrics: dict[str, Any]
    class_balance: dict[str, int]
    holdout: np.ndarray  # rows kept out of training, for the OpenVINO parity check


def train(features: np.ndarray, labels: np.ndarray, model_type: str = "logistic", seed: int = 0) -> TrainedModel:
    """Fit a pipeline on 80% of the rows (stratified), with 5-fold cross-validated
    ROC AUC, balanced accuracy and Brier score (calibration) on them, and the same on
    the 20% held out."""
    from sklearn.model_selection import StratifiedKFold, cross_validate, train_test_split

    classes, counts = np.unique(labels, return_counts=True)
    if classes.size < 2:
        raise InvalidInput("the labels hold a single class; a classifier needs two or more", field="label")
    if counts.min() < MIN_PER_CLASS:
        raise InvalidInput(f"class {classes[np.argmin(counts)]!r} has {counts.min()} rows; at least "
                         f"{MIN_PER_CLASS} per class are needed", field="label")
    train_x, test_x, train_y, test_y = train_test_split(features, labels, test_size=0.2, stratify=labels,
                                                        random_state=seed)
    binary = classes.size == 2
    scoring = {"roc_auc": "roc_auc" if binary else "roc_auc_ovr", "balanced_accuracy": "balanced_accuracy"}
    if binary:
        scoring["brier"] = "neg_brier_score"
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    scores = cross_validate(make_pipeline(model_type, seed), train_x, train_y, cv=folds, scoring=scoring)
    pipeline = make_pipeline(model_type, seed).fit(train_x, train_y)
    metrics: dict[str, Any] = {"cv_folds": 5}
    for name in scoring:
        values = scores[f"test_{name}"] * (-1 if name == "brier" else 1)
        metrics[f"cv_{name}"] = {"mean": float(values.mean()), "std": float(values.std())}
    probabilities = pipeline.predict_proba(test_x)
    from sklearn.metrics import balanced_accuracy_score, brier_score_loss, roc_auc_score

    metrics["holdout_rows"] = int(test_x.shape[0])
    metrics["holdout_roc_auc"] = float(roc_auc_score(test_y, probabilities[:, 1]) if binary else
                                       roc_auc_score(test_y, probabilities, multi_class="ovr"))
    metrics["holdout_balanced_accuracy"] = float(balanced_accuracy_score(test_y, pipeline.predict(test_x)))
    if binary:
        metrics["holdout_brier"] = float(brier_score_loss(test_y == classes[1], probabilities[:, 1]))
    return TrainedModel(pipeline, model_type, [c.item() if hasattr(c, "item") else c for c in classes], metrics,
                        {str(c): int(n) for c, n in zip(classes, counts)}, test_x)


def demo_dataset(rows: int = 2000, seed: int = 20261123) -> tuple[np.ndarray, np.ndarray]:
    """A generated population for the demonstration model: label 1 ("elevated") is more
    likely with a high heart rate and low variability. Not clinical data: the relation
    is invented to exercise the platform, and the model trained on it says so."""
    rng = np.random.default_rng(seed)
    age_factor = rng.uniform(0, 1, rows)
    mean_hr = rng.normal(72 + 12 * age_factor, 9, rows).clip(40, 160)
    sdnn = rng.lognormal(np.log(55 - 25 * age_factor), 0.35, rows).clip(5, 300)
    rmssd = (sdnn * rng.uniform(0.6, 1.2, rows)).clip(3, 300)
    pnn50 = (100 / (1 + np.exp(-(rmssd - 35) / 10)) * rng.uniform(0.7, 1.0, rows)).clip(0, 100)
    hf = (rmssd**2 * rng.uniform(1.5, 3.0, rows)).clip(1, 9e5)
    lf = (hf * rng.lognormal(np.log(1.5 + 2 * age_factor), 0.4, rows)).clip(1, 9e5)
    quality = rng.uniform(0.4, 1.0, rows)
    score = 0.06 * (mean_hr - 75) - 0.05 * (sdnn - 45) + 1.2 * (age_factor - 0.5) + rng.normal(0, 0.8, rows)
    labels = (score > 0.4).astype(int)
    features = np.column_stack([mean_hr, sdnn, rmssd, pnn50, lf, hf, lf / hf, quality])
    short = rng.uniform(0, 1, rows) < 0.2  # recordings too short for LF/HF
    features[short, 4:7] = np.nan
    return features, labels
