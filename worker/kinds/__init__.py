"""The job kinds vitalq runs: their params schema, queue, time limits and uploads.

One declaration per kind serves every door: ``GET /api/v1/kinds`` publishes it, the web
form and the command line are built from it, and submission validates against it, so
an invalid job is refused before anything is queued. The Celery task that runs a kind
carries the kind's name (``tasks/<module>.py``); the web tier sends it by that name and
never imports the computation.

``base`` is the framework and the registry; each other module declares its kinds (a
module per family of jobs), registered when this package is imported.
"""

from . import calibration, diagnostics, risk, sensor, signals, video  # noqa: F401 (each registers its kinds)
from .base import JobKind, Upload, all_kinds, find_kind, get_kind, register
from .diagnostics import SELFTEST

__all__ = ["SELFTEST", "JobKind", "Upload", "all_kinds", "find_kind", "get_kind", "register"]
