"""The pages people open in a browser."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

from worker.kinds import all_kinds

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    return render_template("index.html", kinds=all_kinds(), flower_url=current_app.config["FLOWER_URL"])
