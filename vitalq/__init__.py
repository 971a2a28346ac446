"""vitalq's command line: ``vitalq up``, ``vitalq submit``, ``vitalq jobs``, ..."""

__version__ = "0.1.0"
