"""The peer of ``bench/queue.py``: the least a platform like vitalq must do per job,
written plainly. A Flask app under gunicorn's gevent worker takes ``POST /jobs``,
inserts one SQLAlchemy row and sends one Celery task; the task marks the row done.
Same Redis (and transport options), same database, same kind of web server and worker
as vitalq; no authentication, validation, progress events, limits or retries.
``POST /jobs?late=1`` sends ``peer.run_late`` instead, on a queue of its own: the same
task delivered as vitalq delivers a job (acknowledged once done, requeued if its
process dies; its worker runs with a prefetch of one and task events).

    gunicorn -k gevent bench.peer:web                  # the web side
    celery -A bench.peer worker -Q peer                # the worker side
    celery -A bench.peer worker -Q peer-late --prefetch-multiplier 1 --task-events
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


@app.task(name="peer.run_late", acks_late=True, reject_on_worker_lost=True)
def run_late(job_id: str) -> None:
    run(job_id)


def _web():
    from flask import Flask, jsonify, request

    web = Flask("peer")

    @web.post("/jobs")
    def submit():
        job_id = uuid.uuid4().hex
        with Session(engine) as session, session.begin():
            session.add(PeerJob(id=job_id, status="queued"))
        if request.args.get("late"):
            app.send_task("peer.run_late", args=[job_id], queue="peer-late")
        else:
            app.send_task("peer.run", args=[job_id], queue="peer")
        return jsonify({"id": job_id}), 201

    return web


if os.environ.get("PEER_ROLE") == "web":
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()
    web = _web()
