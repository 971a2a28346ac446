"""A bare Celery app on the same Redis as vitalq, the baseline of ``bench/queue.py``."""

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
