"""Risk prediction from HRV features: the feature schema, training, a versioned model
registry, and serving through OpenVINO. Nothing here knows of Celery or HTTP.

Each name is imported from its module on first use (``lazy_loader``): reading model
metadata or a CSV header needs neither scikit-learn nor OpenVINO.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "features": ["FEATURES", "NAMES", "InvalidFeature", "feature_matrix", "from_beats_summary", "from_rppg_summary"],
    "registry": ["DEMO_NOTICE", "ModelNotFound", "ModelRecord", "ModelRegistry", "ensure_default_model",
                 "predict_rows"],
    "training": ["MODEL_TYPES", "TrainedModel", "demo_dataset", "read_header", "read_labelled_csv", "train"],
})
