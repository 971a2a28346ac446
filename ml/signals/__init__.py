"""Filtering physiological signals of any length: designs, readers and the chunked filter.

Pure functions and classes over arrays and files; nothing here knows of Celery or HTTP.
"""

from .chunked import NAN_POLICIES, FilterReport, default_padlen, fill_non_finite, filter_source
from .design import BAND_TYPES, FAMILIES, FilterDesignError, FilterSpec, design_sos
from .readers import FORMATS, RAW_DTYPES, SignalProbe, open_signal, probe_signal, sniff

__all__ = [
    "BAND_TYPES", "FAMILIES", "FORMATS", "NAN_POLICIES", "RAW_DTYPES", "FilterDesignError", "FilterReport",
    "FilterSpec", "SignalProbe", "default_padlen", "design_sos", "fill_non_finite", "filter_source", "open_signal",
    "probe_signal", "sniff",
]
