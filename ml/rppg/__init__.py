"""Remote photoplethysmography: heart rate, pulse and HRV from face video.

Pure functions over arrays and files; nothing here knows of Celery or HTTP.
"""

from .heart_rate import HeartRate, TooShort, bandpass, estimate_heart_rate, pulse_spectrum, spectral_peak
from .hrv import hrv_metrics, pulse_peaks
from .methods import METHODS, apply_method
from .pipeline import FrameRateTooLow, NoFaceFound, RppgResult, analyze_video
from .video import UnreadableVideo, VideoFrames

__all__ = [
    "METHODS", "FrameRateTooLow", "HeartRate", "NoFaceFound", "RppgResult", "TooShort", "UnreadableVideo",
    "VideoFrames", "analyze_video", "apply_method", "bandpass", "estimate_heart_rate", "hrv_metrics",
    "pulse_peaks", "pulse_spectrum", "spectral_peak",
]
