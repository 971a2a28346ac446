"""The rPPG analysis's settings and their defaults, each written once: the pipeline's
signatures, the ``video.rppg`` job's parameter schema (built in the web process, which
loads no decoder nor scikit-learn) and the form all read them here.

Frequencies are in Hz, times in seconds.
"""

#: What a job may ask for: AUTO (the default) or one method of ``ml.rppg.methods``.
METHOD_NAMES = ("AUTO", "GREEN", "CHROM", "POS", "LGI", "PBV", "OMIT", "ICA")
METHOD = "AUTO"
#: ``face``: the tracked face's skin (a crop of skin is read whole); ``full``: every pixel.
ROI_NAMES = ("face", "full")
ROI = "face"
#: Heart-rate windows and the step between them.
WINDOW_S = 10.0
STEP_S = 1.0
#: Where the heart rate is sought: 39 to 240 bpm.
BAND_HZ = (0.65, 4.0)
#: A window's pulse counts when at least this share of the power is at its peak and
#: harmonic (``ml.rppg.heart_rate.spectral_peak``). With the background and the face's
#: box regressed out (``ml.rppg.pipeline.without_witnessed``) and a result standing on one
#: method's own windows, 0.35 accepted 15 of 20 animated faces (H.264 CRF 23, 0.5 %,
#: 45-180 bpm, none wrong) and none of their 20 pulse-free twins; 0.4 accepted 13, 0.3 let
#: a twin through (with half the windows required; see MIN_ACCEPTED_SHARE there).
MIN_QUALITY = 0.35
#: The face detector runs every this many frames; the face is tracked between.
DETECT_EVERY = 10
