"""Remote photoplethysmography: heart rate, pulse and HRV from face video.

Pure functions over arrays and files; nothing here knows of Celery or HTTP. Each name is
imported from its module on first use (``lazy_loader``): checking a video's container
(``containers``, the web process's check) loads no decoder.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "heart_rate": ["HeartRate", "TooShort", "bandpass", "estimate_heart_rate", "pulse_spectrum", "spectral_peak"],
    "hrv": ["hrv_metrics", "pulse_peaks"],
    "defaults": ["METHOD_NAMES"],
    "methods": ["AUTO_METHODS", "METHODS", "apply_method"],
    "pipeline": ["FrameRateTooLow", "NoFaceFound", "RppgResult", "analyze_video"],
    "video": ["UnreadableVideo", "VideoFrames"],
})
