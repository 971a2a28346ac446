"""The HRV feature schema risk models take: what the rPPG job produces, checked row by row."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from ..errors import HrvWithheld, InvalidFeature


@dataclass(frozen=True)
class Feature:
    name: str
    unit: str
    low: float  # plausible range, inclusive
    high: float
    required: bool = True  # optional ones may be missing (short recordings have no LF/HF)


FEATURES = (
    Feature("mean_hr_bpm", "bpm", 25, 250),
    Feature("sdnn_ms", "ms", 0, 500),
    Feature("rmssd_ms", "ms", 0, 500),
    Feature("pnn50_pct", "%", 0, 100),
    Feature("lf_ms2", "ms²", 0, 1e6, required=False),
    Feature("hf_ms2", "ms²", 0, 1e6, required=False),
    Feature("lf_hf", "", 0, 100, required=False),
    Feature("quality", "", 0, 1),
)
NAMES = tuple(f.name for f in FEATURES)


def feature_matrix(rows: Iterable[dict[str, Any]]) -> np.ndarray:
    """Rows of features as a float64 matrix ``[rows, len(FEATURES)]``, NaN where an
    optional feature is missing. Raises InvalidFeature naming the first bad value."""
    matrix = []
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InvalidFeature(f"row {index} is not an object of features", row=index)
        values = []
        for feature in FEATURES:
            value = row.get(feature.name)
            if value is None or value == "":
                if feature.required:
                    raise InvalidFeature(f"row {index}: {feature.name} is missing", row=index, feature=feature.name)
                values.append(np.nan)
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise InvalidFeature(f"row {index}: {feature.name} is not a number: {value!r}", row=index,
                                     feature=feature.name) from None
            if not (feature.low <= number <= feature.high):
                raise InvalidFeature(f"row {index}: {feature.name} = {number:g} is outside "
                                     f"[{feature.low:g}, {feature.high:g}] {feature.unit}".rstrip(),
                                     row=index, feature=feature.name)
            values.append(number)
        matrix.append(values)
    if not matrix:
        raise InvalidFeature("no rows of features")
    return np.array(matrix, dtype=np.float64)


def from_rppg_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """The feature row of a ``video.rppg`` result; raises HrvWithheld when it has no HRV to trust."""
    return _from_hrv(summary.get("hrv") or {}, summary.get("quality"), "video")


def from_beats_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """The feature row of a ``signal.beats`` result (its quality: the share of the
    recording clean enough to count); raises HrvWithheld when it has no HRV."""
    return _from_hrv(summary.get("hrv") or {}, summary.get("confidence"), "recording")


def _from_hrv(hrv: dict[str, Any], quality: float | None, source: str) -> dict[str, Any]:
    if hrv.get("withheld"):
        raise HrvWithheld(f"no risk is predicted from this {source}: its HRV was withheld ({hrv['withheld']})",
                          reason=hrv["withheld"])
    return {**{name: hrv.get(name) for name in NAMES if name != "quality"}, "quality": quality}
