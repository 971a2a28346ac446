"""The Celery application: ``celery -A worker.celery_app worker -Q cpu``.

Configuration comes from ``celeryconfig.py``; tasks are declared with ``@shared_task``
in ``tasks/`` and bind to this app when a worker imports them.
"""

from __future__ import annotations

import logging
import os
import time

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger, worker_init, worker_process_init
from threadpoolctl import threadpool_limits

from . import db
from .broker import get_redis
from .logs import use_structured_logs
from .settings import get_settings

log = logging.getLogger(__name__)

app = Celery("vitalq")
app.config_from_object("celeryconfig")


_pool_processes = 1


@worker_init.connect
def _remember_pool_size(sender=None, **_kwargs) -> None:
    global _pool_processes
    concurrency = getattr(sender, "concurrency", None)
    _pool_processes = concurrency if isinstance(concurrency, int) and concurrency > 0 else os.cpu_count() or 1


@worker_init.connect
def _remove_what_killed_jobs_left(**_kwargs) -> None:
    """With an object store, this machine's data folder is no one else's to sweep: what a
    worker killed here left (a job's folder, its input's scratch copy) goes as the next
    one starts."""
    from . import retention
    from .objects import get_store

    if get_store().is_local:
        return
    try:
        retention.remove_local_leftovers(time.time() - retention.SWEEP_GRACE_S)
    except Exception as exc:  # the database away: the next start, or beat, sweeps
        log.warning("leftovers of earlier jobs not swept: %s", exc)


def compute_threads(pool_processes: int) -> int:
    """BLAS/OpenMP threads for each of ``pool_processes`` pool processes (``VITALQ_COMPUTE_THREADS``)."""
    return get_settings().compute_threads or max(1, (os.cpu_count() or 1) // pool_processes)


@worker_process_init.connect
def _prepare_pool_process(**_kwargs) -> None:
    # A pool child is forked from the main worker process: never share its sockets.
    db.forget_inherited_connections()
    db.keep_autocommit_connection()
    os.nice(get_settings().pool_nice)
    # NumPy's BLAS and scikit-learn's OpenMP would each start a thread per core in every
    # child: on a busy machine they fight over the cores and a 1 s fit takes 16 s.
    threadpool_limits(compute_threads(_pool_processes))


@after_setup_logger.connect
@after_setup_task_logger.connect
def _structured_logs(logger=None, **_kwargs) -> None:
    use_structured_logs(*logger.handlers)
    # vitalq logs each job's start and end itself, with the job's id and outcome;
    # Celery's "Task received" and "succeeded in" lines would double them (and their CPU).
    for per_task in ("celery.worker.strategy", "celery.app.trace"):
        logging.getLogger(per_task).setLevel(logging.WARNING)


def queue_depths(queues: tuple[str, ...]) -> dict[str, int]:
    """Messages waiting in each queue, over all its priority levels."""
    options = app.conf.broker_transport_options
    sep, steps = options["sep"], options["priority_steps"]
    # Plain reads, no MULTI: a Redis refusing writes (full, MISCONF) refuses a transaction
    # too, while it still answers LLEN, and the count need not be atomic.
    pipe = get_redis().pipeline(transaction=False)
    for queue in queues:
        for step in steps:
            pipe.llen(queue if step == 0 else f"{queue}{sep}{step}")
    lengths = pipe.execute()
    return {queue: sum(lengths[i * len(steps):(i + 1) * len(steps)]) for i, queue in enumerate(queues)}
