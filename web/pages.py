"""The pages people open in a browser: submit a job, the job list, one job, the devices.

Each page is a small HTML shell; its script (``static/js/``) talks to the same HTTP API
and websocket as any other client, so the pages can do nothing the API cannot.
Everything is served from here (no CDN, no web font): the pages work offline.
"""

from __future__ import annotations

from flask import Blueprint, render_template

import hardware.errors  # noqa: F401  (light: their codes join the catalogue the job page reads)
import ml.errors  # noqa: F401
from vitalq.errors import catalogue
from worker import store
from worker.settings import get_settings

from .auth import visible

bp = Blueprint("pages", __name__)


@bp.app_context_processor
def _links():
    return {"flower_url": get_settings().flower_url}


@bp.get("/")
def submit():
    return render_template("submit.html", page="submit")


@bp.get("/jobs")
def jobs():
    return render_template("jobs.html", page="jobs")


@bp.get("/jobs/<job_id>")
def job(job_id: str):
    visible(store.get(job_id))  # an unknown (or another's) job is a 404 page, not a page that fails later
    return render_template("job.html", page="jobs", job_id=job_id, error_catalogue=catalogue())


@bp.get("/devices")
def devices():
    return render_template("devices.html", page="devices")
