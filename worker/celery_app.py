"""The Celery application: ``celery -A worker.celery_app worker -Q cpu``.

Configuration comes from ``celeryconfig.py``; tasks are declared with ``@shared_task``
in ``tasks/`` and bind to this app when a worker imports them.
"""

from __future__ import annotations

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger, worker_process_init

from . import db
from .broker import get_redis
from .logs import use_structured_logs

app = Celery("vitalq")
app.config_from_object("celeryconfig")


@worker_process_init.connect
def _drop_inherited_connections(**_kwargs) -> None:
    # A pool child is forked from the main worker process: never share its sockets.
    db.forget_inherited_connections()


@after_setup_logger.connect
@after_setup_task_logger.connect
def _structured_logs(logger=None, **_kwargs) -> None:
    use_structured_logs(*logger.handlers)


def queue_depths(queues: tuple[str, ...]) -> dict[str, int]:
    """Messages waiting in each queue, over all its priority levels."""
    options = app.conf.broker_transport_options
    sep, steps = options["sep"], options["priority_steps"]
    pipe = get_redis().pipeline()
    for queue in queues:
        for step in steps:
            pipe.llen(queue if step == 0 else f"{queue}{sep}{step}")
    lengths = pipe.execute()
    return {queue: sum(lengths[i * len(steps):(i + 1) * len(steps)]) for i, queue in enumerate(queues)}
