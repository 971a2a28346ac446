"""The risk-model registry of this deployment, under the data folder."""

from __future__ import annotations

from ml.risk import ModelRegistry

from .settings import get_settings


def registry() -> ModelRegistry:
    return ModelRegistry(get_settings().data_dir / "models")
