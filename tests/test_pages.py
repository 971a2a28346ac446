"""The pages, in a real headless browser (Debian's Chromium driven by Playwright),
against the live app and a real worker. Each test saves screenshots to look at
(see ``support.shot``)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from support import shot, sign_in


def test_upload_a_signal_watch_it_finish_and_see_the_chart(page, worker, tmp_path):
    fs = 250.0
    t = np.arange(int(60 * fs)) / fs
    signal = np.sin(2 * np.pi * 1.2 * t) + 0.5 * np.sin(2 * np.pi * 50 * t) + 0.2 * t / t[-1]
    upload = tmp_path / "ppg.npy"
    np.save(upload, signal.astype(np.float32))

    page.goto("/")
    page.wait_for_selector("form[data-ready=true]")
    page.select_option("#kind", "signal.filter")
    # The params most set come first, the other 15 folded away ("fs" had been buried among 22).
    labels = page.locator("#params > .field label").all_inner_texts()
    assert labels[:3] == ["fs", "btype", "cutoff hz"], labels
    assert not page.is_visible("#param-chunk_size") and page.is_visible("#param-fs")
    assert "Above 0, at most 1000000." in page.inner_text("#param-fs-help")  # "Range: 0 to ..." read as if 0 could be
    page.set_input_files("#file", str(upload))
    page.fill("#param-fs", "250")
    page.fill("#param-cutoff_hz", "0.5, 8")
    page.select_option("#priority", "7")
    shot(page, "pages-submit-filled")
    page.click("#submit")

    page.wait_for_url("**/jobs/*")
    page.wait_for_selector("#job[data-status=succeeded]", timeout=60_000)
    assert page.eval_on_selector("#progress", "p => p.value") == 1
    assert page.inner_text("#percent") == "100 %"
    page.wait_for_selector("#job[data-rendered=true]")
    assert page.locator(".chart canvas").count() >= 1  # the before/after preview, drawn
    assert "filtered.npy" in page.inner_text("#artifacts")
    assert "✓ succeeded" in page.inner_text("#status")
    shot(page, "pages-job-succeeded")

    page.click("text=Jobs")
    page.wait_for_selector("#job-table[data-loaded=true]")
    row = page.locator("#job-table tbody tr").first
    assert "signal.filter" in row.inner_text() and "succeeded" in row.inner_text()
    assert row.locator("td[data-label=File]").inner_text() == "ppg.npy"  # which upload it was
    page.select_option("#filter-status", "failed")
    page.wait_for_selector("text=No jobs match.")
    shot(page, "pages-job-list")


def test_a_job_its_input_failed_says_why_in_plain_words_and_offers_no_run_again(page, worker, jobs, http):
    quiet = "\n".join("0.0" for _ in range(30_000)).encode()  # a flat line: no heartbeat at all
    answer = http.post("/api/v1/jobs", data={"kind": "signal.beats", "params": '{"fs": 250}'},
                       files={"file": ("quiet.csv", quiet)})
    assert jobs.wait_finished(answer.json()["id"], timeout_s=60)["error"]["code"] == "NO_BEATS"
    page.goto(f"/jobs/{answer.json()['id']}")
    page.wait_for_selector("#failure", state="visible", timeout=10_000)
    from ml.errors import NoBeats

    assert page.inner_text("#failure-plain") == NoBeats.plain and page.inner_text("#failure-code") == "NO_BEATS"
    assert not page.is_visible("#retry") and page.is_visible("#delete")  # the same file would fail the same way


def test_cancel_a_running_job_from_its_page(page, worker, jobs):
    job = jobs.submit({"duration_s": 60, "steps": 600})
    page.goto(f"/jobs/{job['id']}")
    page.wait_for_selector("#job[data-status=running]", timeout=30_000)
    page.wait_for_function("() => document.querySelector('#progress').value > 0")
    shot(page, "pages-job-running")
    assert not page.is_visible("#delete")  # a live job is cancelled, not deleted
    page.click("#cancel")
    page.wait_for_selector("#job[data-status=cancelled]", timeout=30_000)
    assert "cancelled" in page.inner_text("#status")
    # The status event comes first; the error panel is filled by the final event just after.
    page.wait_for_selector("#failure", state="visible", timeout=10_000)
    assert page.is_visible("#failure") and "cancelled" in page.inner_text("#failure-plain")
    assert page.inner_text("#failure-title") == "Why it stopped"  # not "Why it failed"
    assert page.is_visible("#retry") and not page.is_visible("#cancel")
    shot(page, "pages-job-cancelled")
    page.click("#retry")  # runs it again as a new job
    page.wait_for_url(lambda url: job["id"] not in url)
    page.wait_for_selector("#job[data-status]")
    again = page.url.rsplit("/", 1)[1]
    assert jobs.get(again)["params"] == job["params"]
    jobs.http.delete(f"/api/v1/jobs/{again}")
    assert jobs.wait_finished(again)["status"] == "cancelled"  # the worker is free for the next test
    page.goto("/jobs")
    page.wait_for_selector("#job-table[data-loaded=true]")
    assert "CANCELLED" in page.inner_text(f"tr[data-job-id='{job['id']}'] td[data-label=Error]")
    # A finished job can be deleted from its page, once its user confirms.
    page.goto(f"/jobs/{again}")
    page.wait_for_selector("#delete", state="visible")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete")
    page.wait_for_url("**/jobs")
    assert jobs.http.get(f"/api/v1/jobs/{again}").status_code == 404


def test_the_job_page_reconnects_without_losing_events(page, worker, jobs):
    job = jobs.submit({"duration_s": 6, "steps": 60})
    page.goto(f"/jobs/{job['id']}")
    page.wait_for_function("() => Number(document.querySelector('#job').dataset.events || 0) >= 5", timeout=30_000)
    for _ in range(2):  # the connection drops twice while the job runs
        page.evaluate("window.vitalqSocket.close()")
        page.wait_for_selector("#connection:has-text('reconnecting')")
        page.wait_for_selector("#connection:has-text('live')")
        page.wait_for_timeout(800)
    page.wait_for_selector("#job[data-status=succeeded]", timeout=30_000)
    root = page.locator("#job")
    first, last, received = (int(root.get_attribute(name)) for name in ("data-first-seq", "data-last-seq", "data-events"))
    # Events before the page's first snapshot are in that snapshot, not in the stream; seq
    # counts from 1 per job, so the stream from first to last holds the rest of them.
    assert received == last - first  # every event once: none lost, none twice
    assert last >= 60  # the job published its 60 progress points
    assert page.inner_text("#percent") == "100 %"


def submit_from_the_page(page, kind: str, upload: Path, **params: str) -> None:
    """Submit a job of ``kind`` with ``upload`` from the form, and wait on its page until
    its results are drawn."""
    page.goto(f"/?kind={kind}")
    page.wait_for_selector("form[data-ready=true]")
    page.set_input_files("#file", str(upload))
    for name, value in params.items():
        page.fill(f"#param-{name}", value)
    page.click("#submit")
    page.wait_for_url("**/jobs/*")
    page.wait_for_selector("#job[data-rendered=true]", timeout=90_000)


def test_a_video_analysis_refused_at_its_risk_step_still_shows_its_heart_rate(page, worker, tmp_path):
    """It showed "failed" beside nothing: the heart rate found was thrown away."""
    from ml.rppg.simulate import write_face_video

    video = tmp_path / "faint.avi"
    write_face_video(video, hr_bpm=72.0, seconds=20.0, size=(320, 240), amplitude=0.005, seed=5)
    submit_from_the_page(page, "video.analyze", video)
    assert page.get_attribute("#job", "data-status") == "failed"
    assert "What could not be done (the rppg part finished: below)" in page.inner_text("#failure")
    assert "HRV_WITHHELD" in page.inner_text("#failure")
    assert page.locator("figure.chart:has-text('Heart rate over time')").count() == 1
    assert {"plot.png", "pulse.csv"} <= set(page.inner_text("#artifacts").split())
    shot(page, "pages-analysis-partly-done")


def test_an_ecg_uploaded_from_the_page_shows_its_heart_rate_and_trend(page, worker, tmp_path):
    from test_beats import wfdb_zip

    record = tmp_path / "100.zip"
    record.write_bytes(wfdb_zip())
    submit_from_the_page(page, "signal.beats", record, channel="0")  # an index, typed as digits
    assert page.get_attribute("#job", "data-status") == "succeeded"
    summary = page.inner_text("table.kv >> nth=0")
    assert "channel MLII" in summary and "75." in summary and "100 %" in summary
    assert "RMSSD" in page.inner_text("table.kv >> nth=1")
    assert page.locator("figure.chart:has-text('Heart rate over the recording') canvas").count() >= 1
    assert {"beats.csv", "heart_rate.csv"} <= set(page.inner_text("#artifacts").split())
    shot(page, "pages-beats")

    # The signal around a chosen time, with its beats marked, read by its byte range alone.
    stretches = []
    page.on("response", lambda answer: stretches.append((answer.status, answer.request.headers.get("range")))
            if answer.url.endswith("/cleaned.f32") else None)
    page.fill("#signal-at", "600")
    page.press("#signal-at", "Enter")
    view = page.wait_for_selector("section.signal-view[data-from='600']")
    assert stretches[-1] == (206, f"bytes={600 * 360 * 4}-{610 * 360 * 4 - 1}")
    job_id = page.url.rsplit("/", 1)[1]
    beats = csv.DictReader(io.StringIO(page.request.get(f"/api/v1/jobs/{job_id}/artifacts/beats.csv").text()))
    labels = [row["label"] for row in beats if 600 * 360 <= int(row["sample"]) < 610 * 360]
    assert len(labels) >= 10 and view.get_attribute("data-beats") == str(len(labels))
    assert view.get_attribute("data-clean-beats") == str(labels.count("ok")) != "0"
    assert view.get_attribute("data-samples") == "3600"
    assert page.locator("section.signal-view canvas").count() >= 1
    shot(page, "pages-beats-signal")


def test_rppg_results_are_drawn_as_charts_and_a_table(page, worker, tmp_path):
    from test_rppg import MEASURABLE_HRV

    from ml.rppg.simulate import write_face_video

    video = tmp_path / "face.avi"
    truth = write_face_video(video, **MEASURABLE_HRV)
    submit_from_the_page(page, "video.rppg", video)
    assert page.locator(".chart canvas").count() >= 2  # pulse, and heart rate over time
    overall = float(page.locator("th:has-text('Overall') + td").inner_text().split()[0])
    assert abs(overall - truth.mean_hr_bpm) < 3
    assert page.locator("th:has-text('RMSSD') + td").inner_text().endswith("ms")
    assert page.locator("th:has-text('Method') + td").inner_text().startswith("AUTO (")  # which method, how often
    # Quality has its own 0-1 axis, not the heart rate's.
    heart_rate = page.locator("figure.chart:has-text('Heart rate over time')")
    assert "quality (0–1)" in heart_rate.inner_text() and "x100" not in heart_rate.inner_text()
    assert heart_rate.locator(".u-axis").count() == 3  # time, bpm, quality
    assert {"plot.png", "pulse.csv", "heart_rate.csv"} <= set(page.inner_text("#artifacts").split())
    shot(page, "pages-rppg-results")


def test_an_invalid_parameter_is_shown_next_to_its_field(page):
    page.goto("/?kind=diagnostics.selftest")
    page.wait_for_selector("form[data-ready=true]")
    page.click("summary:has-text('More parameters')")  # the limits are not among the params most set
    page.fill("#param-soft_time_limit_s", "30")
    page.fill("#param-hard_time_limit_s", "20")  # below the soft limit: refused by the server's check
    page.click("#submit")
    error = page.locator("#param-hard_time_limit_s-error")
    error.wait_for(state="visible")
    assert "soft" in error.inner_text()
    assert page.get_attribute("#param-hard_time_limit_s", "aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "param-hard_time_limit_s"
    assert page.url.endswith("/?kind=diagnostics.selftest")  # nothing was submitted
    shot(page, "pages-invalid-field")


def test_pages_fit_a_phone_and_work_from_the_keyboard(browser, live_server, clean, client, tokens):
    client.post("/api/v1/devices", json={"id": "bench-cam", "driver": "simulated", "schedule": "@daily"})
    client.post("/api/v1/devices", json={"id": "bench-ppg", "driver": "pulse-simulated"})
    context = browser.new_context(base_url=live_server, viewport={"width": 375, "height": 740}, is_mobile=True)
    page = context.new_page()
    sign_in(page, tokens["admin"])
    page.goto("/devices")
    page.wait_for_selector("tr[data-device-id=bench-cam]")
    assert "@daily" in page.inner_text("tr[data-device-id=bench-cam]")
    shot(page, "pages-devices-phone")
    wide = page.evaluate("[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 376)"
                         ".map(e => e.tagName + '.' + e.className)")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375, wide  # no sideways scrolling
    # Keyboard: tab to "Calibrate now" and press Enter.
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Calibrate now":
            break
    assert page.evaluate("document.activeElement.textContent") == "Calibrate now", "not reachable by Tab"
    page.keyboard.press("Enter")
    page.wait_for_selector("#device-status a")
    assert "queued" in page.inner_text("#device-status")
    # A pulse sensor's row records instead, for anyone.
    sensor = page.locator("tr[data-device-id=bench-ppg]")
    assert "pulse sensor" in sensor.inner_text()
    sensor.get_by_role("button", name="Record a minute: bench-ppg").click()
    page.wait_for_selector("#device-status:has-text('Recording of bench-ppg queued')")
    page.goto("/")
    page.wait_for_selector("form[data-ready=true]")
    assert page.input_value("#kind") == "video.rppg"  # the kind most people come for
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    shot(page, "pages-submit-phone")
    # A calibration is of a registered device, chosen from a list.
    page.select_option("#kind", "camera.calibrate")
    assert page.locator("#param-device option").all_inner_texts() == ["bench-cam (simulated)"]  # no sensor
    page.select_option("#kind", "sensor.record")
    assert page.locator("#param-device option").all_inner_texts() == ["bench-ppg (pulse-simulated)"]
    page.select_option("#kind", "camera.calibrate")
    page.click("#submit")
    page.wait_for_url("**/jobs/*")
    job_id = page.url.rsplit("/", 1)[1]
    assert client.get(f"/api/v1/jobs/{job_id}").get_json()["params"]["device"] == "bench-cam"
    context.close()


def test_a_trained_model_is_shown_as_tables_of_its_metrics(page, worker, jobs, tmp_path):
    from test_risk import write_csv

    from ml.risk.training import demo_dataset

    features, labels = demo_dataset(rows=400, seed=2)
    response = jobs.http.post("/api/v1/jobs", data={"kind": "risk.train"},
                              files={"file": ("train.csv", write_csv(tmp_path / "t.csv", features, labels).read_bytes())})
    job = jobs.wait_finished(response.json()["id"], timeout_s=120)
    assert job["status"] == "succeeded", job["error"]
    page.goto(f"/jobs/{job['id']}")
    page.wait_for_selector("#job[data-rendered=true]")
    metrics = job["result"]["model"]["metrics"]
    auc = page.locator("#result-views th:has-text('ROC AUC') + td").inner_text()
    assert auc.startswith(f"{metrics['cv_roc_auc']['mean']:.3f} ± ") and f"{metrics['holdout_roc_auc']:.3f}" in auc
    assert page.locator("#result-views th:has-text('Runtime') + td").inner_text() == job["result"]["model"]["runtime"]
    assert page.locator("#result-views pre").count() == 0  # no raw JSON dump
    shot(page, "pages-risk-train")


def test_an_unreliable_heart_rate_is_not_shown_as_a_number(page, worker, jobs, tmp_path):
    from ml.rppg.simulate import write_face_video

    # A face whose skin has no pulse at all.
    write_face_video(tmp_path / "face.mp4", hr_bpm=100.0, seconds=16.0, size=(320, 240), amplitude=0.0, codec="h264",
                     seed=1)
    video = (tmp_path / "face.mp4").read_bytes()
    response = jobs.http.post("/api/v1/jobs", data={"kind": "video.rppg"}, files={"file": ("face.mp4", video)})
    job = jobs.wait_finished(response.json()["id"], timeout_s=120)
    assert job["status"] == "succeeded" and job["result"]["reliable"] is False, job["result"]
    page.goto(f"/jobs/{job['id']}")
    page.wait_for_selector("#job[data-rendered=true]")
    assert page.locator("th:has-text('Overall') + td").inner_text().startswith("unreliable: ")
    assert "withheld" in page.inner_text("#hrv-withheld")
    assert page.locator("th:has-text('RMSSD')").count() == 0
    shot(page, "pages-rppg-unreliable")
