"""Celery settings for vitalq, read from the environment through ``worker.settings``.

The choices that make jobs safe to lose a worker over:
- late acknowledgement, and a message put back when its worker process dies, so a job
  is redelivered instead of dropped; ``worker.store.start`` makes a redelivery of a
  finished job a no-op and bounds how often a job may lose its worker;
- a prefetch of one, so a busy worker holds no queued job hostage and a higher-priority
  job submitted later still goes first;
- a visibility timeout longer than any hard time limit, or a long job would be handed
  to a second worker while the first still runs it.
"""

from worker.settings import get_settings

_settings = get_settings()

broker_url = _settings.redis_url
# Kombu's Redis transport, without a new client per command (see worker.broker).
broker_transport = "worker.broker:Transport"
broker_connection_retry_on_startup = True
broker_transport_options = {
    # Ten priority levels, each its own Redis list, the most urgent served first.
    "priority_steps": list(range(10)),
    "sep": ":",
    "queue_order_strategy": "priority",
    "visibility_timeout": _settings.visibility_timeout_s,
    "unacked_restore_interval": _settings.unacked_restore_interval_s,
    "unacked_restore_throttle": 1,
}

# Results live in the job table; Celery's result backend is not used.
task_ignore_result = True
task_serializer = "json"
accept_content = ["json"]
task_default_queue = "cpu"
task_create_missing_queues = True
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
worker_cancel_long_running_tasks_on_connection_loss = True
# Events for Flower (the worker's; "task-sent" events would cost every submission a second publish),
# published in batches every 0.1 s (see worker.consumer).
worker_send_task_events = True
worker_consumer = "worker.consumer:Consumer"


imports = ("tasks.diagnostics", "tasks.filtering", "tasks.beats", "tasks.rppg", "tasks.risk", "tasks.calibration",
           "tasks.sensor")

# Beat reads each device's calibration schedule from the database (worker.beat), and
# looks again every few seconds, so a changed schedule needs no restart.
beat_scheduler = "worker.beat:DeviceScheduler"
beat_max_loop_interval = _settings.registry_refresh_s
beat_schedule: dict = {}
