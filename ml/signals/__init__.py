"""Filtering physiological signals of any length: designs, readers and the chunked filter.

Pure functions and classes over arrays and files; nothing here knows of Celery or HTTP.
Each name is imported from its module on first use (``lazy_loader``).
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "chunked": ["NAN_POLICIES", "FilterReport", "MemorySource", "default_padlen", "fill_non_finite", "filter_source"],
    "beats": ["SIGNAL_TYPES", "Beats", "NoBeats", "detect_beats", "find_beats", "summarize"],
    "files": ["filter_file"],
    "design": ["BAND_TYPES", "FAMILIES", "FilterDesignError", "FilterSpec", "design_sos"],
    "readers": ["FORMATS", "RAW_DTYPES", "SignalProbe", "open_signal", "probe_signal", "sniff"],
})
