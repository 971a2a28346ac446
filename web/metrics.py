"""Prometheus metrics: job counts and run times from the job table, queue depths from
Redis, disk use of the data folder, and this web process's own request latencies.

Job figures are read from the database at scrape time, so they are the same whichever
web process answers and whichever worker ran the job.
"""

from __future__ import annotations

import time

from flask import Flask, g, request
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

from worker import devices, retention, store
from worker.celery_app import queue_depths

from . import feeds

RUN_SECONDS_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
#: Seconds a reading of disk use is served: it walks the data folder's every file.
DISK_READING_S = 60.0
_disk_reading: list = [float("-inf"), {}]


def _disk_usage() -> dict[str, int]:
    if time.monotonic() - _disk_reading[0] > DISK_READING_S:
        _disk_reading[:] = [time.monotonic(), retention.disk_usage()]
    return _disk_reading[1]


class JobCollector:
    def collect(self):
        jobs = GaugeMetricFamily("vitalq_jobs", "Jobs in the job table by kind and status", labels=["kind", "status"])
        for kind, status, count in store.counts_by_kind_and_status():
            jobs.add_metric([kind, status], count)
        yield jobs

        depth = GaugeMetricFamily("vitalq_queue_depth", "Messages waiting in each queue", labels=["queue"])
        for queue, count in queue_depths(devices.queues()).items():
            depth.add_metric([queue], count)
        yield depth

        runs = HistogramMetricFamily("vitalq_job_run_seconds", "Run time of finished jobs, in seconds",
                                     labels=["kind"])
        for kind, (cumulative, count, total) in store.run_seconds_histogram(RUN_SECONDS_BUCKETS).items():
            buckets = [(str(bound), n) for bound, n in zip(RUN_SECONDS_BUCKETS, cumulative)]
            runs.add_metric([kind], buckets + [("+Inf", count)], total)
        yield runs

        disk = _disk_usage()
        usage = GaugeMetricFamily("vitalq_data_bytes", "Bytes held in the data folder, by what holds them",
                                  labels=["area"])
        for area in ("uploads", "jobs"):
            usage.add_metric([area], disk[f"{area}_bytes"])
        yield usage
        yield GaugeMetricFamily("vitalq_data_disk_free_bytes", "Free bytes on the data folder's disk",
                                value=disk["free_bytes"])
        yield GaugeMetricFamily("vitalq_data_disk_size_bytes", "Size of the data folder's disk, in bytes",
                                value=disk["total_bytes"])

        # This web process's own: the live websockets, and the Redis readers they share.
        yield GaugeMetricFamily("vitalq_websockets", "Job websockets open in this web process",
                                value=feeds.watchers())
        yield GaugeMetricFamily("vitalq_websocket_feeds", "Jobs this web process reads events for, "
                                "one Redis reader each, shared by their websockets", value=feeds.feed_count())


def init_app(app: Flask) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(JobCollector())
    latency = Histogram("vitalq_http_request_seconds", "HTTP request latency, in seconds",
                        ["method", "endpoint", "status"], registry=registry,
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

    @app.after_request  # the clock starts in web.errors, before authentication
    def _observe(response):
        if "request_started" in g:
            latency.labels(request.method, request.endpoint or "unmatched", str(response.status_code)).observe(
                time.perf_counter() - g.request_started)
        return response

    return registry
