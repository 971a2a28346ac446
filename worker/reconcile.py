"""The reconciler: the database is the record of truth, and the broker is made to agree.

Run by celery beat (``worker.beat``) every ``VITALQ_RECONCILE_INTERVAL_S`` seconds:

- a job recorded as **queued or retrying** for longer than ``min_age_s`` whose message
  is nowhere in the broker (not in its queue, not held unacknowledged by a worker), as
  after Redis restarted without persistence, is queued again;
- a job recorded as **running** for longer than ``min_age_s`` that no live worker is
  running (its worker no longer answers, or answers but dropped the task, as a worker
  does when its broker connection breaks under a late-acknowledged task) is queued again
  at once rather than after the broker's visibility timeout (hours): its
  unacknowledged message is dropped, and a new one sent. When it starts, it counts as a
  redelivery, as any job whose worker died (``VITALQ_MAX_REDELIVERIES``, then
  ``WORKER_LOST``);
- a job recorded as **running with a cancel requested** whose row has not moved for
  ``VITALQ_CANCEL_GRACE_S`` (a job reaching a progress point would have stopped) is
  stopped by force, as the web process that took the cancel would have done had it
  lived (its timer dies with it).

Either way a job runs to one finish: every status change is conditional (``worker.store``).
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any, Iterable

from sqlalchemy import select

from . import devices
from .broker import get_redis
from .celery_app import app
from .db import session_scope
from .dispatch import enqueue, kill_if_still_running
from .models import Job, JobStatus, utcnow
from .settings import get_settings

log = logging.getLogger(__name__)

UNACKED_KEY = "unacked"
UNACKED_INDEX_KEY = "unacked_index"


def _message_id(raw: Any) -> str | None:
    try:
        message = json.loads(raw)
        if isinstance(message, list):  # unacknowledged: [message, exchange, routing key]
            message = message[0]
        return message["headers"]["id"]
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def _queue_lists(queues: Iterable[str]) -> list[str]:
    options = app.conf.broker_transport_options
    return [queue if step == 0 else f"{queue}{options['sep']}{step}" for queue in queues
            for step in options["priority_steps"]]


def messages_in_broker(queues: Iterable[str]) -> tuple[set[str], dict[str, bytes]]:
    """Job ids with a message waiting in ``queues``, and the delivery tag of each job id
    held unacknowledged by a worker."""
    redis = get_redis()
    pipe = redis.pipeline()
    lists = _queue_lists(queues)
    for name in lists:
        pipe.lrange(name, 0, -1)
    waiting = {_message_id(raw) for items in pipe.execute() for raw in items}
    held = {}
    for tag, raw in redis.hgetall(UNACKED_KEY).items():
        job_id = _message_id(raw)
        if job_id is not None:
            held[job_id] = tag
    return waiting - {None}, held


def active_tasks(timeout_s: float = 2.0) -> tuple[set[str], set[str]]:
    """(host names of the workers that answered, ids of the tasks they are running)."""
    replies = app.control.inspect(timeout=timeout_s).active() or {}
    return set(replies), {task["id"] for tasks in replies.values() for task in tasks}


def _force_stuck_cancels() -> list[str]:
    """Kill the jobs asked to cancel that have ignored it for longer than the grace period."""
    stuck_since = utcnow() - timedelta(seconds=get_settings().cancel_grace_s)
    with session_scope() as session:
        stuck = list(session.scalars(select(Job.id).where(
            Job.status == JobStatus.RUNNING.value, Job.cancel_requested.is_(True), Job.updated_at < stuck_since)))
    for job_id in stuck:
        kill_if_still_running(job_id)
    return stuck


def reconcile(min_age_s: float = 60.0) -> dict[str, list[str]]:
    """Queue again what the broker lost and what dead workers held; returns the job ids
    acted on, by reason."""
    # First: a job stopped here is no longer running, and is not queued again below.
    cancel_forced = _force_stuck_cancels()
    cutoff = utcnow() - timedelta(seconds=min_age_s)
    with session_scope() as session:
        waiting_jobs = list(session.scalars(select(Job).where(
            Job.status.in_([JobStatus.QUEUED.value, JobStatus.RETRYING.value]), Job.updated_at < cutoff)))
        running_jobs = list(session.scalars(select(Job).where(
            Job.status == JobStatus.RUNNING.value, Job.started_at < cutoff)))
    report: dict[str, list[str]] = {"lost_message": [], "dead_worker": [], "dropped_by_worker": [],
                                    "cancel_forced": cancel_forced}
    if not waiting_jobs and not running_jobs:
        return report
    queues = set(devices.queues()) | {job.queue for job in waiting_jobs + running_jobs}
    waiting, held = messages_in_broker(queues)
    for job in waiting_jobs:
        if job.id not in waiting and job.id not in held:
            log.warning("job %s is %s but has no message in the broker; queueing it again", job.id, job.status)
            enqueue(job)
            report["lost_message"].append(job.id)
    if running_jobs:
        alive, running_now = active_tasks()
        for job in running_jobs:
            if job.id in running_now:
                continue
            hostname = (job.worker or "").split("/")[0]
            reason = "dropped_by_worker" if hostname in alive else "dead_worker"
            log.warning("job %s is recorded as running on %s, which %s; queueing it again", job.id, hostname or "?",
                        "no longer runs it" if hostname in alive else "no longer answers")
            tag = held.get(job.id)
            if tag is not None:  # the message would come back only after the visibility timeout
                get_redis().pipeline().hdel(UNACKED_KEY, tag).zrem(UNACKED_INDEX_KEY, tag).execute()
            enqueue(job)
            report[reason].append(job.id)
    return report
