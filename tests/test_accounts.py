"""Accounts and isolation: every call needs a valid token (or a signed-in page with its
CSRF token); a user sees and touches only their own jobs, another user's job being a 404
everywhere; an admin sees all; tokens can be revoked; limits answer 429."""

from __future__ import annotations

import os
import time

import httpx
import pytest
from support import bearer, close_code


def job_endpoints(job_id: str) -> list[tuple[str, str]]:
    return [("GET", f"/api/v1/jobs/{job_id}"), ("DELETE", f"/api/v1/jobs/{job_id}"),
            ("POST", f"/api/v1/jobs/{job_id}/retry"), ("GET", f"/api/v1/jobs/{job_id}/artifacts"),
            ("GET", f"/api/v1/jobs/{job_id}/artifacts/result.json"), ("GET", f"/jobs/{job_id}")]


def test_another_users_job_is_not_found_on_every_endpoint(as_user, live_server):
    alice, bob, admin = as_user["alice"], as_user["bob"], as_user["admin"]
    job = alice.post("/api/v1/jobs", json={"kind": "diagnostics.selftest"}).json()
    assert job["owner_id"] is not None
    for method, path in job_endpoints(job["id"]):
        answer = bob.request(method, path, json={} if method == "POST" else None)
        assert answer.status_code == 404, (method, path, answer.status_code)
    # The websocket too.
    import websocket

    ws = websocket.create_connection(live_server.replace("http", "ws") + f"/ws/jobs/{job['id']}",
                                     header=dict(bob.headers), timeout=10)
    assert '"NOT_FOUND"' in ws.recv()
    ws.close()
    # Lists: each sees their own; the admin sees everyone's.
    assert [j["id"] for j in alice.get("/api/v1/jobs").json()["jobs"]] == [job["id"]]
    assert bob.get("/api/v1/jobs").json()["jobs"] == []
    # The admin's list says whose each job is.
    assert {j["id"]: j["owner"] for j in admin.get("/api/v1/jobs").json()["jobs"]}[job["id"]] == "alice"
    assert admin.get(f"/api/v1/jobs/{job['id']}").json()["owner"] == "alice"
    assert alice.get(f"/api/v1/jobs/{job['id']}").status_code == 200
    assert alice.delete(f"/api/v1/jobs/{job['id']}").json()["status"] == "cancelled"


def test_every_endpoint_needs_a_valid_token(live_server, clean, tokens):
    from web.openapi import describe

    with httpx.Client(base_url=live_server, timeout=30) as anonymous:
        for path, operations in describe()["paths"].items():
            concrete = path.replace("{job_id}", "x").replace("{device_id}", "x").replace("{version}", "1") \
                           .replace("{name}", "x")
            for method in operations:
                for headers in ({}, bearer("vq_not-a-real-token"), {"Authorization": "Basic YWRtaW46YWRtaW4="}):
                    answer = anonymous.request(method.upper(), concrete, headers=headers)
                    assert answer.status_code == 401, (method, path, headers, answer.status_code)
                    assert answer.json()["error"]["code"] == "UNAUTHENTICATED"
        assert anonymous.get("/health/live").status_code == 200  # health stays open
        assert anonymous.get("/metrics").status_code == 200
        assert anonymous.get("/api/v1/openapi.json").status_code == 200
        assert anonymous.get("/jobs").status_code == 302 and "/sign-in" in anonymous.get("/jobs").headers["Location"]


def test_a_revoked_token_stops_working_and_tokens_are_stored_hashed(live_server, clean, database):
    from sqlalchemy import select

    from worker import accounts
    from worker.db import session_scope
    from worker.models import ApiToken

    _user, token = accounts.create_user(f"carol-{id(object())}")
    with httpx.Client(base_url=live_server, headers=bearer(token)) as carol:
        assert carol.get("/api/v1/jobs").status_code == 200
        with session_scope() as session:
            stored = [t.token_sha256 for t in session.scalars(select(ApiToken))]
        assert token not in stored and all(len(h) == 64 for h in stored)
        assert accounts.revoke(token[:10]) == 1
        assert carol.get("/api/v1/jobs").status_code == 401


def test_only_an_admin_manages_devices_and_models(as_user):
    alice, admin = as_user["alice"], as_user["admin"]
    assert alice.post("/api/v1/devices", json={"id": "cam", "driver": "simulated"}).status_code == 403
    assert admin.post("/api/v1/devices", json={"id": "cam", "driver": "simulated"}).status_code == 201
    assert alice.get("/api/v1/devices").json()["devices"][0]["id"] == "cam"
    assert alice.patch("/api/v1/devices/cam", json={"schedule": "@daily"}).status_code == 403
    assert alice.delete("/api/v1/devices/cam").status_code == 403
    assert alice.post("/api/v1/models/1/activate").status_code == 403
    # A calibration makes the camera's worker open whatever its connection names.
    calibrate = alice.post("/api/v1/devices/cam/calibrate", json={})
    assert calibrate.status_code == 403 and calibrate.json()["error"]["code"] == "FORBIDDEN"
    assert alice.post("/api/v1/jobs", json={"kind": "camera.calibrate", "params": {"device": "cam"}}).status_code == 403
    assert admin.post("/api/v1/devices/cam/calibrate", json={}).status_code == 201
    assert admin.get("/api/v1/jobs").json()["total"] == 1


def test_a_devices_connection_is_shown_to_admins_only(as_user):
    """A camera's URL may carry its password: every signed-in user saw it."""
    alice, admin = as_user["alice"], as_user["admin"]
    secret = "rtsp://viewer:hunter2@127.0.0.1:8554/stream"
    device = {"id": "door", "driver": "opencv", "connection": {"source": secret, "read_timeout_ms": 2000}}
    assert admin.post("/api/v1/devices", json=device).status_code == 201
    for client, shown in ((admin, secret), (alice, "[redacted]")):
        listed = client.get("/api/v1/devices").json()["devices"]
        one = client.get("/api/v1/devices/door").json()
        assert listed[0]["connection"] == one["connection"] == {"source": shown, "read_timeout_ms": (
            2000 if client is admin else "[redacted]")}
    assert "hunter2" not in alice.get("/api/v1/devices").text + alice.get("/devices").text


@pytest.mark.parametrize("params", [{"blocking_s": 600}, {"ignore_soft_limit": True, "hard_time_limit_s": 3630},
                                    {"transient_failures": 10}, {"soft_time_limit_s": 3600}])
def test_fault_injection_is_for_admins_only(as_user, params):
    """Any user could hold a worker for an hour with the selftest's knobs."""
    alice, admin = as_user["alice"], as_user["admin"]
    for answer in (alice.post("/api/v1/jobs", json={"kind": "diagnostics.selftest", "params": params}),
                   alice.post("/api/v1/batches", json={"jobs": [{"kind": "diagnostics.selftest", "params": params}]})):
        assert answer.status_code == 403 and answer.json()["error"]["code"] == "FORBIDDEN", answer.text
        assert set(answer.json()["error"]["details"]["fields"]) == set(params)
    assert alice.post("/api/v1/jobs", json={"kind": "diagnostics.selftest", "params": {"steps": 3}}).status_code == 201
    assert admin.post("/api/v1/jobs", json={"kind": "diagnostics.selftest", "params": params}).status_code == 201
    assert admin.get("/api/v1/jobs").json()["total"] == 2


def test_signed_in_pages_need_the_csrf_token_to_change_anything(live_server, clean, tokens):
    import re

    with httpx.Client(base_url=live_server, timeout=30) as browser:
        form = browser.get("/sign-in").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
        assert browser.post("/sign-in", data={"token": "vq_wrong", "csrf": csrf}).status_code == 401
        csrf = re.search(r'name="csrf" value="([^"]+)"', browser.get("/sign-in").text).group(1)
        signed_in = browser.post("/sign-in?next=//evil.example/", data={"token": tokens["alice"], "csrf": csrf})
        assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/"  # never off-site
        assert "HttpOnly" in signed_in.headers["Set-Cookie"] and "SameSite=Lax" in signed_in.headers["Set-Cookie"]
        page = browser.get("/jobs").text
        session_csrf = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        # A forged request (another site's form) carries the cookie but not the token.
        forged = browser.post("/api/v1/jobs", json={"kind": "diagnostics.selftest"})
        assert forged.status_code == 403 and forged.json()["error"]["code"] == "FORBIDDEN"
        ok = browser.post("/api/v1/jobs", json={"kind": "diagnostics.selftest"}, headers={"X-CSRF-Token": session_csrf})
        assert ok.status_code == 201
        assert browser.get("/api/v1/jobs").json()["total"] == 1  # reading needs no CSRF token
        # A websocket with the cookie from another origin is refused.
        refused = browser.get(f"/ws/jobs/{ok.json()['id']}", headers={"Origin": "http://evil.example"})
        assert refused.status_code == 403


def test_rate_limit_and_queued_cap_answer_429_with_retry_after(as_user, configure):
    configure(rate_limit_per_min=20, max_queued_per_user=3)
    alice, bob = as_user["alice"], as_user["bob"]
    for _ in range(3):
        assert alice.post("/api/v1/jobs", json={"kind": "diagnostics.selftest"}).status_code == 201
    capped = alice.post("/api/v1/jobs", json={"kind": "diagnostics.selftest"})
    assert capped.status_code == 429 and capped.json()["error"]["code"] == "RATE_LIMITED"
    assert capped.json()["error"]["details"] == {"waiting": 3, "limit": 3} and int(capped.headers["Retry-After"]) > 0
    assert bob.post("/api/v1/jobs", json={"kind": "diagnostics.selftest"}).status_code == 201  # per user
    answers = [alice.get("/api/v1/kinds").status_code for _ in range(25)]
    assert answers.count(429) >= 5 and set(answers) == {200, 429}
    assert bob.get("/api/v1/kinds").status_code == 200  # per token


@pytest.mark.parametrize("target", ["//evil.example/", "/%09/evil.example/", "/%5C/evil.example/", "/%5Cevil.example",
                                    "https://evil.example/", "/%0A/evil.example", " //evil.example/"])
def test_signing_in_never_redirects_off_site(live_server, clean, tokens, target):
    import re

    with httpx.Client(base_url=live_server, timeout=30) as browser:
        csrf = re.search(r'name="csrf" value="([^"]+)"', browser.get("/sign-in").text).group(1)
        signed_in = browser.post(f"/sign-in?next={target}", data={"token": tokens["alice"], "csrf": csrf})
        assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/", signed_in.headers["Location"]
        csrf = re.search(r'name="csrf" value="([^"]+)"', browser.get("/sign-in").text).group(1)
        inside = browser.post("/sign-in?next=/jobs?status=failed", data={"token": tokens["alice"], "csrf": csrf})
        assert inside.headers["Location"] == "/jobs?status=failed"  # a path of this site is kept


def sign_in_over_http(browser: httpx.Client, token: str) -> None:
    import re

    csrf = re.search(r'name="csrf" value="([^"]+)"', browser.get("/sign-in").text).group(1)
    assert browser.post("/sign-in", data={"token": token, "csrf": csrf}).status_code == 302


def test_revoking_a_token_signs_its_pages_out(live_server, clean, database):
    from worker import accounts

    _user, token = accounts.create_user(f"erin-{id(object())}")
    with httpx.Client(base_url=live_server, timeout=30) as browser:
        sign_in_over_http(browser, token)
        assert browser.get("/jobs").status_code == 200
        assert browser.get("/api/v1/jobs").status_code == 200
        accounts.revoke(token)
        assert "/sign-in" in browser.get("/jobs").headers["Location"]
        assert browser.get("/api/v1/jobs").status_code == 401


def test_pages_send_security_headers(live_server, clean, tokens):
    with httpx.Client(base_url=live_server, timeout=30) as browser:
        sign_in_over_http(browser, tokens["alice"])
        page = browser.get("/jobs")
        assert page.status_code == 200
        policy = page.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe" not in policy
        assert page.headers["X-Frame-Options"] == "DENY" and page.headers["X-Content-Type-Options"] == "nosniff"
        assert browser.get("/api/v1/jobs").headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("spell", ["Bearer  {}", "Bearer\t{}", "bearer {}", "BEARER \t {}"])
def test_a_token_spelled_differently_is_counted_in_one_bucket(live_server, clean, tokens, configure, spell):
    configure(rate_limit_per_min=10)
    token = tokens["bob"]
    with httpx.Client(base_url=live_server, timeout=30) as client:
        plain = [client.get("/api/v1/kinds", headers=bearer(token)).status_code for _ in range(6)]
        other = [client.get("/api/v1/kinds", headers={"Authorization": spell.format(token)}).status_code
                 for _ in range(6)]
    assert plain == [200] * 6 and other.count(429) >= 2, other


def test_an_account_has_one_bucket_whatever_its_credential(live_server, clean, configure):
    """A page's cookie had a bucket of its own beside the same account's Bearer token (and
    each token one more): the limit could be doubled by using both."""
    from worker import accounts

    configure(rate_limit_per_min=12)
    name = f"frank-{os.getpid()}-{time.monotonic_ns()}"
    first = accounts.create_user(name)[1]
    second = accounts.issue_token(name)
    with httpx.Client(base_url=live_server, timeout=30) as browser, \
            httpx.Client(base_url=live_server, timeout=30) as client:
        sign_in_over_http(browser, first)
        answers = [browser.get("/api/v1/kinds").status_code for _ in range(5)]
        answers += [client.get("/api/v1/kinds", headers=bearer(first)).status_code for _ in range(5)]
        answers += [client.get("/api/v1/kinds", headers=bearer(second)).status_code for _ in range(5)]
        # The sign-in page counts nothing; 12 of the 15 requests are served, the rest wait.
        assert answers[:12] == [200] * 12 and answers[12:] == [429] * 3, answers
        other = accounts.create_user(f"{name}-other")[1]
        assert client.get("/api/v1/kinds", headers=bearer(other)).status_code == 200  # another account's own


def test_the_rate_limit_holds_across_a_minute_boundary(live_server, clean, tokens, configure, monkeypatch):
    import web.auth

    configure(rate_limit_per_min=20)
    start = (time.time() // 60 + 2) * 60 - 1  # one second before a minute turns
    monkeypatch.setattr(web.auth, "clock", lambda: now[0])
    now = [start]
    with httpx.Client(base_url=live_server, timeout=30, headers=bearer(tokens["bob"])) as bob:
        before = [bob.get("/api/v1/kinds").status_code for _ in range(20)]
        now[0] = start + 2  # one second into the next minute
        after = [bob.get("/api/v1/kinds").status_code for _ in range(20)]
        assert before == [200] * 20
        # A fixed window would let 20 more through: the sliding minute still holds the first 20.
        assert after.count(200) <= 1, after
        limited = bob.get("/api/v1/kinds")
        assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 60
        now[0] = start + 122  # the minute of the burst has left the sliding window: allowed again
        assert bob.get("/api/v1/kinds").status_code == 200


def test_metrics_can_be_closed_to_anonymous_callers(database, tokens, settings, configure):
    from dataclasses import replace

    from web import create_app

    # An app built on its own settings (they become the process's: ``configure`` gives the old back).
    closed = create_app(replace(settings, metrics_public=False)).test_client()
    assert closed.get("/metrics").status_code == 401
    assert closed.get("/metrics", headers=bearer(tokens["alice"])).status_code == 200
    assert closed.get("/health/live").status_code == 200  # health stays open


def test_flower_is_for_admins_only(as_user):
    # Refused before anything is passed through: no Flower needs to run for this.
    for path in ("/flower/", "/flower/workers", "/flower/api/tasks"):
        answer = as_user["alice"].get(path)
        assert answer.status_code == 403 and answer.json()["error"]["code"] == "FORBIDDEN", path


def test_an_open_socket_is_closed_soon_after_its_token_is_revoked(live_server, clean, database):
    """A revoked token's progress socket kept streaming; now it is closed with 1008
    within about a second (each socket checks its token every second, one Redis read a
    process)."""
    import json
    import os

    import websocket

    from worker import accounts

    token = accounts.create_user(f"carol-{os.getpid()}-{time.monotonic_ns()}")[1]
    job = httpx.post(f"{live_server}/api/v1/jobs", json={"kind": "diagnostics.selftest"}, headers=bearer(token)).json()
    ws = websocket.create_connection(live_server.replace("http", "ws", 1) + f"/ws/jobs/{job['id']}",
                                     header=[f"Authorization: Bearer {token}"], timeout=10)
    assert json.loads(ws.recv())["type"] == "snapshot"  # no worker: the job waits, the socket stays open
    time.sleep(1.5)  # past a re-check of its token (one a second): a valid token keeps it open
    assert ws.connected
    accounts.revoke(token)
    revoked_at = time.monotonic()
    assert close_code(ws) == 1008
    assert time.monotonic() - revoked_at < 3.0


def test_guessing_tokens_is_limited_per_client_address(live_server, clean, tokens, configure):
    """Every wrong token counted in a bucket of its own, and sign-in attempts in none:
    guessing was free. Failures now count against the client's address."""
    import re

    configure(auth_failures_per_min=5)
    with httpx.Client(base_url=live_server, timeout=30) as client:
        guesses = [client.get("/api/v1/jobs", headers=bearer(f"vq_guess{i:040d}")).status_code for i in range(7)]
        assert guesses[:5] == [401] * 5 and guesses[5:] == [429, 429], guesses
        limited = client.get("/api/v1/jobs", headers=bearer("vq_" + "x" * 43))
        assert limited.json()["error"]["code"] == "RATE_LIMITED" and int(limited.headers["Retry-After"]) >= 1
        # A valid token from the same address is counted in its own bucket, and served.
        assert client.get("/api/v1/jobs", headers=bearer(tokens["bob"])).status_code == 200
    with httpx.Client(base_url=live_server, timeout=30) as browser:
        csrf = re.search(r'name="csrf" value="([^"]+)"', browser.get("/sign-in").text).group(1)
        attempt = browser.post("/sign-in", data={"token": "vq_wrong", "csrf": csrf})
        assert attempt.status_code == 429  # the same address, already over its failures


def test_signing_out_ends_the_session_on_the_server(live_server, clean, tokens):
    """Signing out only dropped the browser's cookie: a copy of it went on working."""
    import re

    with httpx.Client(base_url=live_server, timeout=30) as browser:
        sign_in_over_http(browser, tokens["alice"])
        page = browser.get("/jobs")
        assert page.status_code == 200
        copied = dict(browser.cookies)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        assert browser.post("/sign-out", data={"csrf_token": csrf}).status_code == 302
    with httpx.Client(base_url=live_server, timeout=30, cookies=copied) as thief:
        assert thief.get("/jobs").status_code == 302  # to the sign-in page
        assert thief.get("/api/v1/jobs").status_code == 401
    with httpx.Client(base_url=live_server, timeout=30) as again:  # signing in again works
        sign_in_over_http(again, tokens["alice"])
        assert again.get("/api/v1/jobs").status_code == 200


def test_a_page_that_is_not_there_is_an_html_page_and_the_api_stays_json(live_server, clean, tokens):
    """A browser's 404 was answered with raw JSON."""
    browser_accept = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    with httpx.Client(base_url=live_server, timeout=30) as browser:
        sign_in_over_http(browser, tokens["alice"])
        for path in ("/jobs/0123456789abcdef0123456789abcdef", "/no-such-page"):
            page = browser.get(path, headers=browser_accept)
            assert page.status_code == 404 and page.headers["Content-Type"].startswith("text/html"), path
            assert "<h1>Not Found</h1>" in page.text and "NOT_FOUND" in page.text and 'href="/jobs"' in page.text
            assert browser.get(path).json()["error"]["code"] == "NOT_FOUND"  # a client without HTML first: JSON
        api = browser.get("/api/v1/jobs/0123456789abcdef0123456789abcdef", headers=browser_accept)
        assert api.status_code == 404 and api.json()["error"]["code"] == "NOT_FOUND"
