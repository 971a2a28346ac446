"""Risk models: training, the registry, OpenVINO serving checked against scikit-learn,
and the jobs over HTTP, including the video.analyze chain."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pytest

from ml.rppg.simulate import write_face_video
from ml.errors import ParseError
from ml.risk import NAMES, InvalidFeature, ModelRegistry, demo_dataset, read_labelled_csv, train
from ml.risk.serving import PARITY_TOLERANCE


@pytest.fixture(scope="module")
def population():
    return demo_dataset(rows=600, seed=1)


@pytest.mark.parametrize("model_type, runtime", [("logistic", "openvino"), ("mlp", "openvino"),
                                                 ("gradient_boosting", "sklearn")])
def test_registered_models_are_served_by_openvino_matching_sklearn(model_type, runtime, population, tmp_path):
    features, labels = population
    registry = ModelRegistry(tmp_path)
    record = registry.register(train(features, labels, model_type), name="t", training_sha256="0" * 64)
    assert record.version == 1 and record.active and record.runtime == runtime
    assert 0.5 < record.metrics["cv_roc_auc"]["mean"] <= 1 and 0 < record.metrics["cv_brier"]["mean"] < 0.25
    assert record.class_balance == {"0": int((labels == 0).sum()), "1": int((labels == 1).sum())}
    probabilities, used = registry.predict(features)
    reference = joblib.load(tmp_path / "1" / "model.joblib").predict_proba(features)
    assert used.version == 1
    assert np.max(np.abs(probabilities - reference)) <= PARITY_TOLERANCE
    if runtime == "openvino":
        assert record.openvino["parity_max_abs_diff"] <= PARITY_TOLERANCE
    else:
        assert "tree-ensemble" in record.openvino["refused"]


def test_registry_keeps_versions_and_one_active(population, tmp_path):
    features, labels = population
    registry = ModelRegistry(tmp_path)
    first = registry.register(train(features, labels), name="a", training_sha256="1" * 64)
    second = registry.register(train(features, labels), name="b", training_sha256="2" * 64, activate=False)
    assert [r.version for r in registry.versions()] == [1, 2] and registry.active_version() == 1
    assert registry.activate(second.version).active and not registry.get(first.version).active


def write_csv(path: Path, features: np.ndarray, labels=None) -> Path:
    header = list(NAMES) + (["label"] if labels is not None else [])
    lines = [",".join(header)]
    for index, row in enumerate(features):
        cells = ["" if np.isnan(v) else f"{v:.6g}" for v in row]
        lines.append(",".join(cells + ([str(labels[index])] if labels is not None else [])))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_model_whose_openvino_graph_does_not_match_is_served_by_sklearn(population, tmp_path, monkeypatch):
    import ml.risk.serving

    monkeypatch.setattr(ml.risk.serving, "PARITY_TOLERANCE", -1.0)  # no graph can match this
    features, labels = population
    registry = ModelRegistry(tmp_path)
    record = registry.register(train(features, labels, "logistic"), name="t", training_sha256="0" * 64)
    assert record.runtime == "sklearn" and "differ" in record.openvino["refused"]
    assert record.openvino["parity_max_abs_diff"] >= 0
    probabilities, used = registry.predict(features)
    reference = joblib.load(tmp_path / "1" / "model.joblib").predict_proba(features)
    assert used.runtime == "sklearn" and np.array_equal(probabilities, reference)


def test_a_training_csv_without_its_label_column_names_line_one(population, tmp_path):
    features, labels = population
    path = write_csv(tmp_path / "t.csv", features[:50], labels[:50])
    path.write_text(path.read_text().replace(",label", ",outcome", 1))
    with pytest.raises(ParseError) as failure:
        read_labelled_csv(path)
    assert failure.value.details["line"] == 1


def test_a_training_csv_with_a_word_for_a_feature_names_its_line_and_feature(population, tmp_path):
    features, labels = population
    path = write_csv(tmp_path / "t.csv", features[:50], labels[:50])
    lines = path.read_text().splitlines()
    cells = lines[3].split(",")
    cells[NAMES.index("rmssd_ms")] = "lots"
    lines[3] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidFeature) as failure:
        read_labelled_csv(path)
    assert failure.value.details["line"] == 4 and failure.value.details["feature"] == "rmssd_ms"


# --- over HTTP, with a worker ----------------------------------------------------------------


@pytest.mark.usefixtures("worker")
def test_train_over_http_then_predict_with_the_new_version(jobs, http, population, tmp_path):
    features, labels = population
    content = write_csv(tmp_path / "train.csv", features, labels).read_bytes()
    response = http.post("/api/v1/jobs", data={"kind": "risk.train", "params": json.dumps({"name": "team-model"})},
                         files={"file": ("train.csv", content)})
    assert response.status_code == 201, response.text
    job = jobs.wait_finished(response.json()["id"], timeout_s=120)
    assert job["status"] == "succeeded", job["error"]
    version = job["result"]["model"]["version"]

    listed = http.get("/api/v1/models").json()
    assert listed["active_version"] == version
    entry = http.get(f"/api/v1/models/{version}").json()
    assert entry["name"] == "team-model" and entry["runtime"] == "openvino" and entry["active"]
    assert len(entry["training_sha256"]) == 64 and entry["created_at"]

    rows = [dict(zip(NAMES, (None if np.isnan(v) else float(v) for v in row))) for row in features[:3]]
    response = http.post("/api/v1/jobs", json={"kind": "risk.predict", "params": {"rows": rows}})
    job = jobs.wait_finished(response.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    result = job["result"]
    assert result["model"]["version"] == version and result["model"]["runtime"] == "openvino"
    assert len(result["predictions"]) == 3
    assert all(abs(sum(p["probabilities"].values()) - 1) < 1e-5 for p in result["predictions"])

    batch = write_csv(tmp_path / "batch.csv", np.tile(features, (5, 1))).read_bytes()
    response = http.post("/api/v1/jobs", data={"kind": "risk.predict"}, files={"file": ("batch.csv", batch)})
    assert response.status_code == 201, response.text
    job = jobs.wait_finished(response.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    # 3000 predictions are more than a job's record holds (64 KB): they are an artifact,
    # and the record keeps the model and the classes.
    result = job["result"]
    assert result["truncated"] and result["left_out"] == ["predictions"] and result["model"]["version"] == version
    assert len(http.get(f"/api/v1/jobs/{job['id']}").content) < 70_000
    whole = http.get(f"/api/v1/jobs/{job['id']}/artifacts/{result['result_artifact']}")
    assert len(whole.content) == result["result_bytes"] and len(whole.json()["predictions"]) == 5 * len(features)
    assert whole.json()["model"] == result["model"] and whole.json()["classes"] == result["classes"]


def test_an_admin_activates_another_model_version_over_http(http, population, clean):
    from worker.risk_models import registry

    features, labels = population
    first = registry().register(train(features, labels), name="first", training_sha256="1" * 64)
    second = registry().register(train(features, labels), name="second", training_sha256="2" * 64, activate=False)
    assert http.get("/api/v1/models").json()["active_version"] == first.version
    answer = http.post(f"/api/v1/models/{second.version}/activate")
    assert answer.status_code == 200 and answer.json()["active"] and answer.json()["version"] == second.version
    listed = http.get("/api/v1/models").json()
    assert listed["active_version"] == second.version
    assert [m["active"] for m in listed["models"]] == [False, True]
    assert http.post("/api/v1/models/99/activate").status_code == 404


@pytest.mark.parametrize("params, feature", [
    ({"rows": [{"mean_hr_bpm": 70, "sdnn_ms": 40, "rmssd_ms": 30, "pnn50_pct": 10, "quality": 1.5}]}, "quality"),
    ({"rows": [{"mean_hr_bpm": 70, "sdnn_ms": 40, "pnn50_pct": 10, "quality": 0.5}]}, "rmssd_ms"),
    ({"rows": [{"mean_hr_bpm": "fast", "sdnn_ms": 40, "rmssd_ms": 3, "pnn50_pct": 10, "quality": 0.5}]}, "mean_hr_bpm"),
])
def test_bad_feature_rows_are_refused_naming_the_feature(client, params, feature):
    response = client.post("/api/v1/jobs", json={"kind": "risk.predict", "params": params})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "INVALID_INPUT" and error["details"]["feature"] == feature


def test_unknown_model_version_is_not_found(client):
    response = client.post("/api/v1/jobs", json={"kind": "risk.predict", "params": {
        "rows": [{"mean_hr_bpm": 70, "sdnn_ms": 40, "rmssd_ms": 30, "pnn50_pct": 10, "quality": 0.9}],
        "model_version": 999}})
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "NOT_FOUND"
    assert client.get("/api/v1/models/999").status_code == 404


@pytest.mark.usefixtures("worker")
def test_video_analyze_chains_rppg_into_risk(jobs, http, tmp_path):
    from test_rppg import MEASURABLE_HRV

    path = tmp_path / "face.avi"
    truth = write_face_video(path, **MEASURABLE_HRV)
    response = http.post("/api/v1/jobs", data={"kind": "video.analyze", "params": "{}"},
                         files={"file": ("face.avi", path.read_bytes())})
    assert response.status_code == 201, response.text
    messages = jobs.events(response.json()["id"], after=0, timeout_s=120)
    job = messages[-1]["job"]
    assert job["status"] == "succeeded", job["error"]
    stages = [m["stage"] for m in messages if m["type"] == "progress"]
    assert stages.index("risk") > stages.index("rppg") and set(stages) == {"rppg", "risk"}
    fractions = [m["fraction"] for m in messages if m["type"] == "progress"]
    assert fractions == sorted(fractions) and fractions[-1] <= 1.0
    assert job["result"]["rppg"]["heart_rate_bpm"] == pytest.approx(truth.mean_hr_bpm, abs=3)
    risk = job["result"]["risk"]
    assert risk["model"]["demo"] is True and "not clinically validated" in risk["model"]["notice"]
    assert risk["features"]["mean_hr_bpm"] == job["result"]["rppg"]["hrv"]["mean_hr_bpm"]
    assert {a["name"] for a in job["artifacts"]} >= {"plot.png", "pulse.csv"}
    # One attempt in two stages, timed from the first stage's start.
    assert job["attempts"] == 1
    assert job["run_seconds"] > stage_seconds(messages, "video.analyze.risk") > 0
    assert [m["message"] for m in messages if m["type"] == "status" and m["status"] == "running"] == [
        "attempt 1, stage video.analyze.rppg", "attempt 1, stage video.analyze.risk"]


def stage_seconds(messages: list[dict], stage: str) -> float:
    """Seconds from the stage's running event to the job's last event."""
    start = next(m["time"] for m in messages if m["type"] == "status" and stage in (m["message"] or ""))
    return max(m["time"] for m in messages if "time" in m) - start


@pytest.mark.usefixtures("worker")
def test_video_analyze_whose_risk_step_is_refused_keeps_its_heart_rate(jobs, http, tmp_path):
    """A right heart rate from a faint pulse, whose beats are timed too roughly for HRV:
    the risk step refuses (HRV_WITHHELD), and the job used to lose its heart rate, pulse
    and plot with it."""
    path = tmp_path / "faint.avi"
    truth = write_face_video(path, hr_bpm=72.0, seconds=20.0, size=(320, 240), amplitude=0.005, seed=5)
    response = http.post("/api/v1/jobs", data={"kind": "video.analyze", "params": "{}"},
                         files={"file": ("faint.avi", path.read_bytes())})
    job = jobs.wait_finished(response.json()["id"], timeout_s=120)
    assert job["status"] == "failed" and job["error"]["code"] == "HRV_WITHHELD", job["error"]
    assert job["error"]["details"]["finished_parts"] == ["rppg"]
    assert job["result"]["rppg"]["heart_rate_bpm"] == pytest.approx(truth.mean_hr_bpm, abs=2.0)
    assert "risk" not in job["result"]
    assert {a["name"] for a in job["artifacts"]} >= {"plot.png", "pulse.csv"}
    assert http.get(f"/api/v1/jobs/{job['id']}/artifacts/pulse.csv").status_code == 200


@pytest.mark.usefixtures("worker")
def test_video_analyze_fails_with_the_rppg_stage_error(jobs, http):
    response = http.post("/api/v1/jobs", data={"kind": "video.analyze", "params": "{}"},
                         files={"file": ("x.avi", b"RIFF" + b"\x00" * 4 + b"AVI " + b"\x01" * 5000)})
    job = jobs.wait_finished(response.json()["id"], timeout_s=60)
    assert job["status"] == "failed" and job["error"]["code"] == "UNREADABLE_VIDEO"


@pytest.mark.usefixtures("worker")
def test_bad_training_csv_over_http_names_the_line(jobs, http, population, tmp_path):
    # Its header is checked before queueing (its first line alone is read in the web process)...
    answer = http.post("/api/v1/jobs", data={"kind": "risk.train"}, files={"file": ("t.csv", b"a,b\n1,2\n")})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "PARSE_ERROR"
    assert answer.json()["error"]["details"]["line"] == 1
    # ...its rows by the worker, which fails the job naming the line and the feature, at once.
    features, labels = population
    lines = write_csv(tmp_path / "t.csv", features[:60], labels[:60]).read_text().splitlines()
    cells = lines[5].split(",")
    cells[NAMES.index("sdnn_ms")] = "-40"
    lines[5] = ",".join(cells)
    answer = http.post("/api/v1/jobs", data={"kind": "risk.train"}, files={"file": ("t.csv", "\n".join(lines))})
    assert answer.status_code == 201, answer.text
    job = jobs.wait_finished(answer.json()["id"])
    assert job["status"] == "failed" and job["error"]["code"] == "INVALID_INPUT" and job["attempts"] == 1
    assert job["error"]["details"]["line"] == 6 and job["error"]["details"]["feature"] == "sdnn_ms"
    assert http.get("/api/v1/models").json()["models"] == []  # nothing registered

def test_openvino_sends_no_telemetry():
    """Imported as vitalq imports it, OpenVINO must not phone home (it sends a usage event
    from a forked process on import, unless opted out)."""
    import os
    import subprocess
    import sys

    probe = ("import os, time\n"
             "forks = []\n"
             "os.register_at_fork(before=lambda: forks.append(1))\n"
             "import ml.risk.serving, openvino_telemetry  # the one module that loads OpenVINO\n"
             "time.sleep(1.0)  # the event would be sent from a thread pool, soon after import\n"
             "print(openvino_telemetry.Telemetry().consent, len(forks), 'CI' in os.environ)\n")
    env = {key: value for key, value in os.environ.items() if key not in ("CI", "TF_BUILD", "JENKINS_URL")}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "0", "False"]  # no consent, no sender forked, CI left unset
