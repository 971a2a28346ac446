"""Structured logs: JSON lines that carry the web request's id and the job's id, from
the web tier through the worker process."""

from __future__ import annotations

import io
import json
import logging

from support import wait_until


def json_lines(text: str) -> list[dict]:
    records = []
    for line in text.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # Celery's banner and other plain lines
    return records


def test_a_jobs_log_lines_carry_its_request_id_through_the_worker(http, jobs, worker):
    response = http.post("/api/v1/jobs", json={"kind": "diagnostics.selftest", "params": {"duration_s": 0.1}},
                         headers={"X-Request-ID": "trace-4f2a"})
    assert response.headers["X-Request-ID"] == "trace-4f2a"
    job_id = response.json()["id"]
    assert jobs.wait_finished(job_id)["status"] == "succeeded"
    def job_records() -> list[dict]:
        return [r for r in json_lines(worker.log_path.read_text()) if r.get("job_id") == job_id]

    records = wait_until(lambda: (found := job_records()) and any(r["message"].startswith("job succeeded")
                                                                  for r in found) and found,
                         30, lambda: f"the job's last log line: {job_records()}")
    messages = [r["message"] for r in records]
    assert any(m.startswith("job started: diagnostics.selftest") for m in messages), messages
    started = next(r for r in records if r["message"].startswith("job started"))
    assert started["request_id"] == "trace-4f2a"
    assert {"time", "level", "logger", "process"} <= set(started)


def test_each_web_request_is_logged_as_json_with_its_request_id(client):
    from worker.logs import use_structured_logs

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    use_structured_logs(handler)
    access = logging.getLogger("vitalq.access")
    access.addHandler(handler)
    try:
        client.get("/api/v1/jobs/nope", headers={"X-Request-ID": "trace-77"})
    finally:
        access.removeHandler(handler)
    record = json_lines(stream.getvalue())[-1]
    assert record["request_id"] == "trace-77" and record["status"] == 404
    assert record["path"] == "/api/v1/jobs/nope" and record["method"] == "GET" and record["job_id"] is None


def test_an_expected_failure_is_logged_as_an_outcome_not_a_crash(http, jobs, worker):
    """A job ending with a stable code (bad input, declined, withheld) was logged at ERROR
    with a traceback (``UnpickleableExceptionWrapper ... JobFailed``): its exception did
    not survive the trip from the pool process to the worker. Now its one line is INFO."""
    failing = http.post("/api/v1/jobs", json={"kind": "diagnostics.selftest",
                                              "params": {"allocate_bytes": 3 * 1024**3}}).json()["id"]
    assert jobs.wait_finished(failing)["error"]["code"] == "MEMORY_LIMIT"
    # The worker handles each job's outcome in turn: once the next job's is logged, the
    # failed one's has been, whatever it was.
    after = http.post("/api/v1/jobs", json={"kind": "diagnostics.selftest", "params": {"duration_s": 0}}).json()["id"]
    assert jobs.wait_finished(after)["status"] == "succeeded"
    wait_until(lambda: any(r.get("job_id") == after and r["message"].startswith("job succeeded")
                           for r in json_lines(worker.log_path.read_text())), 30, "the next job logged")
    # The session's worker logged other modules' tests before (a hard time limit's
    # traceback among them): only what came after this job's start counts.
    log = worker.log_path.read_text()
    log = log[log.index(f'"job_id": "{failing}"'):]
    assert "Unpickleable" not in log and "Traceback" not in log, log[-3000:]
    records = [r for r in json_lines(log) if r.get("job_id") == failing or failing in r["message"]]
    assert [(r["level"], r["message"]) for r in records if r["level"] != "INFO"] == []
    assert any(r["message"] == "job failed: MEMORY_LIMIT" for r in records), records
