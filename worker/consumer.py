"""The worker's consumer (``celeryconfig.worker_consumer``): Celery's, sending its task
events in batches.

Celery holds a worker's task events and publishes what it holds at the next turn of its
event loop, which under load is one Redis PUBLISH for almost every event: three a job,
a third of a worker main process's CPU for a short job. This consumer publishes them
every ``EVENT_FLUSH_S`` seconds instead (sooner once Celery's buffer of 24 is full), each
batch as one ``task.multi`` message: Celery's own grouping, which Flower and every
event receiver read. Flower sees a task's state change at most that much later.
"""

from __future__ import annotations

from celery.worker.consumer import Consumer as CeleryConsumer

#: Seconds a task event may wait to be published with others.
EVENT_FLUSH_S = 0.1


class Consumer(CeleryConsumer):
    _flush_scheduled = False

    def on_send_event_buffered(self) -> None:
        if self.hub is None:  # no event loop (a gevent or threads pool): Celery's way
            return super().on_send_event_buffered()
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.hub.call_later(EVENT_FLUSH_S, self._flush_held_events)

    def _flush_held_events(self) -> None:
        self._flush_scheduled = False
        self._flush_events()

    def on_close(self) -> None:
        # Before a reconnect replaces the dispatcher and its buffer; a flush scheduled on
        # the old connection may never run, so the next event schedules its own.
        self._flush_events()
        self._flush_scheduled = False
        super().on_close()

    def shutdown(self) -> None:
        self._flush_events()  # the last jobs' events, before the dispatcher closes
        super().shutdown()
