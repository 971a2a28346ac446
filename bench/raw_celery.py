"""A bare Celery app on the same Redis as vitalq, the baseline of ``bench/queue.py``:
``noop`` with Celery's defaults (early acknowledgement, a prefetch of four a process,
no task events), and ``noop_late`` as vitalq delivers a job (acknowledged once done,
requeued if its process dies; its worker runs with a prefetch of one and task events),
on a queue of its own."""

import os

from celery import Celery

import celeryconfig

app = Celery("raw", broker=os.environ["REDIS_URL"], backend=os.environ["REDIS_URL"])
# The same transport as vitalq's (priority lists, separator): a like-for-like baseline,
# and the two apps can share one Redis database.
app.conf.broker_transport_options = celeryconfig.broker_transport_options
app.conf.task_default_queue = "raw"


@app.task
def noop():
    return None


@app.task(acks_late=True, reject_on_worker_lost=True, queue="raw-late")
def noop_late():
    return None
