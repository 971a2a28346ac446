"""The pages, in a real headless browser (Debian's Chromium driven by Playwright),
against the live app and a real worker. Screenshots land in the test data folder
(``pages-*.png``) to be looked at."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")

SHOTS = Path(os.environ["VITALQ_DATA_DIR"]) / "screenshots"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server, clean):
    context = browser.new_context(base_url=live_server, viewport={"width": 1100, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == [], errors  # no script error on any page


def shot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"pages-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_upload_a_signal_watch_it_finish_and_see_the_chart(page, worker, tmp_path):
    fs = 250.0
    t = np.arange(int(60 * fs)) / fs
    signal = np.sin(2 * np.pi * 1.2 * t) + 0.5 * np.sin(2 * np.pi * 50 * t) + 0.2 * t / t[-1]
    upload = tmp_path / "ppg.npy"
    np.save(upload, signal.astype(np.float32))

    page.goto("/")
    page.wait_for_selector("form[data-ready=true]")
    page.select_option("#kind", "signal.filter")
    page.set_input_files("#file", str(upload))
    page.fill("#param-fs", "250")
    page.fill("#param-cutoff_hz", "0.5, 8")
    page.select_option("#priority", "7")
    shot(page, "submit-filled")
    page.click("#submit")

    page.wait_for_url("**/jobs/*")
    page.wait_for_selector("#job[data-status=succeeded]", timeout=60_000)
    assert page.eval_on_selector("#progress", "p => p.value") == 1
    assert page.inner_text("#percent") == "100 %"
    page.wait_for_selector("#job[data-rendered=true]")
    assert page.locator(".chart canvas").count() >= 1  # the before/after preview, drawn
    assert "filtered.npy" in page.inner_text("#artifacts")
    assert "✓ succeeded" in page.inner_text("#status")
    shot(page, "job-succeeded")

    page.click("text=Jobs")
    page.wait_for_selector("#job-table[data-loaded=true]")
    row = page.locator("#job-table tbody tr").first
    assert "signal.filter" in row.inner_text() and "succeeded" in row.inner_text()
    page.select_option("#filter-status", "failed")
    page.wait_for_selector("text=No jobs match.")
    shot(page, "job-list")


def test_cancel_a_running_job_from_its_page(page, worker, jobs):
    job = jobs.submit({"duration_s": 60, "steps": 600})
    page.goto(f"/jobs/{job['id']}")
    page.wait_for_selector("#job[data-status=running]", timeout=30_000)
    page.wait_for_function("document.querySelector('#progress').value > 0")
    shot(page, "job-running")
    page.click("#cancel")
    page.wait_for_selector("#job[data-status=cancelled]", timeout=30_000)
    assert "cancelled" in page.inner_text("#status")
    assert page.is_visible("#failure") and "cancelled" in page.inner_text("#failure-plain")
    assert page.is_visible("#retry") and not page.is_visible("#cancel")
    shot(page, "job-cancelled")
    page.click("#retry")  # runs it again as a new job
    page.wait_for_url(lambda url: job["id"] not in url)
    page.wait_for_selector("#job[data-status]")
    jobs.http.delete(page.url.rsplit("/", 1)[1])


def test_an_invalid_parameter_is_shown_next_to_its_field(page):
    page.goto("/?kind=diagnostics.selftest")
    page.wait_for_selector("form[data-ready=true]")
    page.fill("#param-soft_time_limit_s", "30")
    page.fill("#param-hard_time_limit_s", "20")  # below the soft limit: refused by the server's check
    page.click("#submit")
    error = page.locator("#param-hard_time_limit_s-error")
    error.wait_for(state="visible")
    assert "soft" in error.inner_text()
    assert page.get_attribute("#param-hard_time_limit_s", "aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "param-hard_time_limit_s"
    assert page.url.endswith("/?kind=diagnostics.selftest")  # nothing was submitted
    shot(page, "invalid-field")


def test_pages_fit_a_phone_and_work_from_the_keyboard(browser, live_server, clean, client):
    client.post("/api/v1/devices", json={"id": "bench-cam", "driver": "simulated", "schedule": "@daily"})
    context = browser.new_context(base_url=live_server, viewport={"width": 375, "height": 740}, is_mobile=True)
    page = context.new_page()
    page.goto("/devices")
    page.wait_for_selector("tr[data-device-id=bench-cam]")
    assert "@daily" in page.inner_text("tr[data-device-id=bench-cam]")
    shot(page, "devices-phone")
    wide = page.evaluate("[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 376)"
                         ".map(e => e.tagName + '.' + e.className)")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375, wide  # no sideways scrolling
    # Keyboard: tab to "Calibrate now" and press Enter.
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Calibrate now":
            break
    page.keyboard.press("Enter")
    page.wait_for_selector("#device-status a")
    assert "queued" in page.inner_text("#device-status")
    page.goto("/")
    page.wait_for_selector("form[data-ready=true]")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    shot(page, "submit-phone")
    context.close()
