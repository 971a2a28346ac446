"""The peer of ``bench/queue.py``: the least a platform like vitalq must do per job,
written plainly. A Flask app under gunicorn's gevent worker takes ``POST /jobs``,
inserts one SQLAlchemy row and sends one Celery task; the task marks the row done.
Same Redis (and transport options), same database, same kind of web server and worker
as vitalq; no authentication, validation, progress events, limits or retries.

    gunicorn -k gevent bench.peer:web        # the web side
    celery -A bench.peer worker -Q peer      # the worker side
"""

from __future__ import annotations

import os
import uuid

from celery import Celery
from sqlalchemy import Column, String, create_engine
from sqlalchemy.orm import Session, declarative_base

import celeryconfig

Base = declarative_base()


class PeerJob(Base):
    __tablename__ = "bench_peer_jobs"
    id = Column(String(32), primary_key=True)
    status = Column(String(16), nullable=False)


engine = create_engine(os.environ["DATABASE_URL"])
app = Celery("peer", broker=os.environ["REDIS_URL"])
app.conf.broker_transport_options = celeryconfig.broker_transport_options
app.conf.task_default_queue = "peer"
app.conf.task_ignore_result = True


@app.task(name="peer.run")
def run(job_id: str) -> None:
    with Session(engine) as session, session.begin():
        session.get(PeerJob, job_id).status = "done"


def _web():
    from flask import Flask, jsonify

    web = Flask("peer")

    @web.post("/jobs")
    def submit():
        job_id = uuid.uuid4().hex
        with Session(engine) as session, session.begin():
            session.add(PeerJob(id=job_id, status="queued"))
        app.send_task("peer.run", args=[job_id], queue="peer")
        return jsonify({"id": job_id}), 201

    return web


if os.environ.get("PEER_ROLE") == "web":
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()
    web = _web()
