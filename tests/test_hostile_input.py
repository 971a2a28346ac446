"""Hostile input is refused with its code, quickly, with nothing stored: JSON nested to
exhaust a parser, CSVs a million columns wide, zip bombs, names that try to be paths."""

from __future__ import annotations

import io
import json
import time
import zipfile

import pytest


#: A bound on answers that must not depend on the input's size: a hang detector, not a
#: speed test (they take well under a second here; bench/ measures speed).
PATIENCE_S = 30


def timed(call):
    started = time.monotonic()
    answer = call()
    return answer, time.monotonic() - started


@pytest.mark.parametrize("body", [
    "[" * 100_000 + "]" * 100_000,
    '{"kind": "risk.predict", "params": {"rows": ' + "[" * 5000 + "]" * 5000 + "}}",
])
def test_deeply_nested_json_is_refused(client, body):
    answer, seconds = timed(lambda: client.post("/api/v1/jobs", data=body, content_type="application/json"))
    assert answer.status_code == 400 and answer.json["error"]["code"] == "INVALID_INPUT" and seconds < PATIENCE_S
    form = client.post("/api/v1/jobs", data={"kind": "diagnostics.selftest", "params": "[" * 50_000 + "]" * 50_000})
    assert form.status_code == 400


def test_a_json_body_beyond_a_megabyte_is_refused_unread(client):
    # JSON is parsed in memory, in the web process's event loop: large inputs come as files.
    body = json.dumps({"kind": "diagnostics.selftest", "params": {"pad": "x" * 2_000_000}})
    answer, seconds = timed(lambda: client.post("/api/v1/jobs", data=body, content_type="application/json"))
    assert answer.status_code == 413 and answer.json["error"]["code"] == "TOO_LARGE" and seconds < PATIENCE_S


def test_more_feature_rows_than_json_takes_are_refused_pointing_to_a_csv(client):
    row = {"mean_hr_bpm": 70, "sdnn_ms": 40, "rmssd_ms": 30, "pnn50_pct": 10, "quality": 0.9}
    answer = client.post("/api/v1/jobs", json={"kind": "risk.predict", "params": {"rows": [row] * 1001}})
    assert answer.status_code == 400 and "rows" in answer.json["error"]["details"]["fields"]


def million_columns() -> bytes:
    return (",".join(f"c{i}" for i in range(1_000_000)) + "\n" + ",".join("1" for _ in range(1_000_000)) + "\n").encode()


@pytest.mark.parametrize("kind, params, status, code", [
    ("risk.train", {}, 413, "TOO_LARGE"),
    ("signal.filter", {"fs": 100}, 400, "INVALID_INPUT"),
])
def test_a_csv_a_million_columns_wide_is_refused(client, kind, params, status, code):
    wide = million_columns()
    answer, seconds = timed(lambda: client.post("/api/v1/jobs", data={
        "kind": kind, "params": json.dumps(params), "file": (io.BytesIO(wide), "wide.csv")}))
    assert (answer.status_code, answer.json["error"]["code"]) == (status, code) and seconds < PATIENCE_S
    assert client.get("/api/v1/jobs").json["total"] == 0


def zip_bomb(member: str, header: tuple[str, str] | None = None, gib: int = 1) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if header:
            archive.writestr(*header)
        with archive.open(member, "w", force_zip64=True) as stream:
            zeros = b"\0" * (1 << 20)
            for _ in range(gib * 1024):
                stream.write(zeros)
    return buffer.getvalue()


@pytest.mark.parametrize("kind, params, member, header", [
    ("signal.filter", {"fs": 100}, "rec.dat", ("rec.hea", "rec 1 100 536870912\nrec.dat 16 200 12 0 0 0 0 ch0\n")),
    ("video.rppg", {"fps": 30}, "0001.png", None),
])
def test_zip_bombs_are_refused_from_their_directory(client, kind, params, member, header):
    bomb = zip_bomb(member, header)
    assert len(bomb) < 2 * 1024**2  # a gigabyte of zeros in about a megabyte
    answer, seconds = timed(lambda: client.post("/api/v1/jobs", data={
        "kind": kind, "params": json.dumps(params), "file": (io.BytesIO(bomb), "upload.zip")}))
    assert answer.status_code == 413 and answer.json["error"]["code"] == "TOO_LARGE", answer.json
    assert "zip bomb" in answer.json["error"]["message"] and seconds < PATIENCE_S
    assert client.get("/api/v1/jobs").json["total"] == 0


def test_an_uploaded_name_never_becomes_a_path(client, settings):
    answer = client.post("/api/v1/jobs", data={"kind": "diagnostics.selftest", "params": "{}",
                                               "file": (io.BytesIO(b"payload"), "../../../../tmp/escape.sh")})
    assert answer.status_code == 201
    stored = answer.json["input"]
    assert stored["filename"].endswith("escape.sh")
    files = [p for p in settings.uploads_dir.rglob("*") if p.is_file()]
    assert all(p.resolve().is_relative_to(settings.uploads_dir.resolve()) for p in files)
    assert any(p.name.startswith(stored["sha256"]) for p in files)
