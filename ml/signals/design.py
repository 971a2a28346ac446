"""IIR filter design as second-order sections, checked against the sample rate.

Frequencies are in Hz and the sample rate ``fs`` in Hz, as in ``scipy.signal``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import signal

from ..errors import FilterDesignError
from . import defaults
from .defaults import BAND_TYPES, FAMILIES, MAX_ORDER, MAX_RIPPLE_DB, MIN_RIPPLE_DB

__all__ = ["BAND_TYPES", "FAMILIES", "MAX_ORDER", "FilterDesignError", "FilterSpec", "design_sos"]


@dataclass(frozen=True)
class FilterSpec:
    """What to filter with.

    Parameters
    ----------
    family : {"butter", "cheby1", "cheby2", "bessel", "ellip"}, optional
        IIR design; None for a notch filter alone.
    btype : {"lowpass", "highpass", "bandpass", "bandstop"}
    cutoff_hz : tuple of float
        One edge (lowpass, highpass) or two (bandpass, bandstop), in Hz.
    order : int
        Filter order, 1 to 12 (band filters have twice as many poles).
    ripple_db : float
        Passband ripple in dB (cheby1, ellip).
    attenuation_db : float
        Stopband attenuation in dB (cheby2, ellip).
    notch_hz : float, optional
        Mains frequency to remove (50 or 60 Hz), with ``notch_harmonics`` multiples
        below Nyquist, each an ``iirnotch`` of quality factor ``notch_q``.
    """

    family: str | None = defaults.FAMILY
    btype: str = defaults.BTYPE
    cutoff_hz: tuple[float, ...] = defaults.CUTOFF_HZ
    order: int = defaults.ORDER
    ripple_db: float = defaults.RIPPLE_DB
    attenuation_db: float = defaults.ATTENUATION_DB
    notch_hz: float | None = defaults.NOTCH_HZ
    notch_harmonics: int = defaults.NOTCH_HARMONICS
    notch_q: float = defaults.NOTCH_Q

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "FilterSpec":
        """The spec of a ``signal.filter`` job's params (``family`` "none": the notch
        alone; ``cutoff_hz`` one number or a list, as SciPy takes ``Wn``); what they
        leave out is the default."""
        def given(name: str, cast=lambda value: value):
            value = params.get(name)
            return getattr(cls, name) if value is None else cast(value)

        family, cutoff = given("family"), given("cutoff_hz")
        return cls(family=None if family == "none" else family, btype=given("btype"),
                   cutoff_hz=tuple(float(c) for c in (cutoff if isinstance(cutoff, (list, tuple)) else [cutoff])),
                   order=given("order", int), ripple_db=given("ripple_db", float),
                   attenuation_db=given("attenuation_db", float), notch_hz=given("notch_hz", float),
                   notch_harmonics=given("notch_harmonics", int), notch_q=given("notch_q", float))


def design_sos(spec: FilterSpec, fs: float) -> np.ndarray:
    """Second-order sections for ``spec`` at sample rate ``fs`` (Hz).

    Examples
    --------
    The default, a PPG's band, is SciPy's Butterworth design:

    >>> from scipy import signal
    >>> sos = design_sos(FilterSpec(), fs=100.0)
    >>> bool(np.allclose(sos, signal.butter(4, (0.5, 8.0), btype="bandpass", output="sos", fs=100.0)))
    True

    Returns
    -------
    sos : ndarray, shape (n_sections, 6)

    Raises
    ------
    FilterDesignError
        If a cutoff is not strictly inside (0, fs/2), the order is out of range, two
        band edges are not increasing, or the resulting filter is not stable.
    """
    if not np.isfinite(fs) or fs <= 0:
        raise FilterDesignError(f"sample rate must be a positive number of Hz, not {fs}", field="fs")
    nyquist = fs / 2
    sections = []
    if spec.family is not None:
        sections.append(_design_band(spec, fs, nyquist))
    if spec.notch_hz is not None:
        sections.extend(_design_notches(spec, fs, nyquist))
    if not sections:
        raise FilterDesignError("nothing to filter with: give a filter family, a notch, or both", field="family")
    sos = np.vstack(sections)
    poles = np.concatenate([np.roots([1.0, a1, a2]) for a1, a2 in sos[:, 4:6]])
    if not np.all(np.isfinite(sos)) or np.any(np.abs(poles) >= 1.0):
        raise FilterDesignError("the designed filter is not stable at this sample rate; lower the order or "
                                "move the cutoffs away from 0 and fs/2", field="order")
    return sos


def _design_band(spec: FilterSpec, fs: float, nyquist: float) -> np.ndarray:
    if spec.family not in FAMILIES:
        raise FilterDesignError(f"unknown filter family {spec.family!r}; one of {', '.join(FAMILIES)}", field="family")
    if spec.btype not in BAND_TYPES:
        raise FilterDesignError(f"unknown band type {spec.btype!r}; one of {', '.join(BAND_TYPES)}", field="btype")
    if not 1 <= spec.order <= MAX_ORDER:
        raise FilterDesignError(f"order must be from 1 to {MAX_ORDER}", field="order")
    edges = 2 if spec.btype in ("bandpass", "bandstop") else 1
    if len(spec.cutoff_hz) != edges:
        raise FilterDesignError(f"a {spec.btype} filter takes {edges} cutoff frequenc{'ies' if edges == 2 else 'y'}",
                                field="cutoff_hz")
    for cutoff in spec.cutoff_hz:
        if not 0 < cutoff < nyquist:
            raise FilterDesignError(f"cutoff {cutoff:g} Hz must be strictly between 0 and fs/2 = {nyquist:g} Hz",
                                    field="cutoff_hz", fs=fs)
    if edges == 2 and not spec.cutoff_hz[0] < spec.cutoff_hz[1]:
        raise FilterDesignError("band edges must be increasing", field="cutoff_hz")
    if spec.family in ("cheby1", "ellip") and not MIN_RIPPLE_DB <= spec.ripple_db <= MAX_RIPPLE_DB:
        raise FilterDesignError(f"ripple_db must be from {MIN_RIPPLE_DB:g} to {MAX_RIPPLE_DB:g} dB", field="ripple_db")
    if spec.family == "ellip" and not spec.ripple_db < spec.attenuation_db:
        raise FilterDesignError("an elliptic filter's passband ripple must be below its stopband attenuation",
                                field="ripple_db")
    wn = spec.cutoff_hz[0] if edges == 1 else list(spec.cutoff_hz)
    common = dict(btype=spec.btype, output="sos", fs=fs)
    try:
        with np.errstate(all="ignore"):  # a degenerate design comes out non-finite: refused by design_sos
            if spec.family == "butter":
                return signal.butter(spec.order, wn, **common)
            if spec.family == "bessel":
                return signal.bessel(spec.order, wn, norm="phase", **common)
            if spec.family == "cheby1":
                return signal.cheby1(spec.order, spec.ripple_db, wn, **common)
            if spec.family == "cheby2":
                return signal.cheby2(spec.order, spec.attenuation_db, wn, **common)
            return signal.ellip(spec.order, spec.ripple_db, spec.attenuation_db, wn, **common)
    except (ValueError, ArithmeticError) as exc:  # SciPy's own refusals of extreme parameters
        raise FilterDesignError(f"SciPy cannot design this {spec.family} filter: {exc}", field="family") from None


def _design_notches(spec: FilterSpec, fs: float, nyquist: float) -> list[np.ndarray]:
    if not 0 < spec.notch_hz < nyquist:
        raise FilterDesignError(f"notch {spec.notch_hz:g} Hz must be strictly between 0 and fs/2 = {nyquist:g} Hz",
                                field="notch_hz", fs=fs)
    notches = []
    for harmonic in range(1, spec.notch_harmonics + 1):
        frequency = spec.notch_hz * harmonic
        if frequency >= nyquist:
            break
        b, a = signal.iirnotch(frequency, spec.notch_q, fs=fs)
        notches.append(signal.tf2sos(b, a))
    return notches
