"""The filter's settings and their defaults, each written once: ``FilterSpec``, its
``from_params`` and the ``signal.filter`` job's parameter schema (built in the web
process, which loads neither NumPy nor SciPy) read them here.

Frequencies are in Hz.
"""

FAMILIES = ("butter", "cheby1", "cheby2", "bessel", "ellip")
BAND_TYPES = ("lowpass", "highpass", "bandpass", "bandstop")
FAMILY = "butter"
BTYPE = "bandpass"
#: A PPG's band: the pulse and its first harmonics, without the breathing's wander.
CUTOFF_HZ = (0.5, 8.0)
ORDER = 4
MAX_ORDER = 12
#: Passband ripple (cheby1, ellip) and stopband attenuation (cheby2, ellip), dB. Below
#: 0.01 dB of ripple SciPy's design divides by zero.
RIPPLE_DB = 1.0
MIN_RIPPLE_DB, MAX_RIPPLE_DB = 0.01, 20.0
ATTENUATION_DB = 40.0
#: Mains frequency to remove (None: no notch), how many of its harmonics, and each
#: notch's quality factor.
NOTCH_HZ = None
NOTCH_HARMONICS = 1
NOTCH_Q = 30.0
