"""``signal.beats``: heartbeats from contact sensors, checked against cardiologists'
annotations (MIT-BIH records in ``../shared/data/ecg``) and simulated PPG with known
beats (each beside its pulse-free twin), then through the whole platform."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import numpy as np
import pytest
import wfdb

from support import shared_data

from ml.rppg.simulate import contact_ppg
from ml.signals import MemorySource
from ml.signals.beats import NoBeats, detect_beats, find_beats, summarize

ECG_DATA = shared_data("ecg")
#: MIT-BIH annotation symbols that mark a beat (the others mark rhythm, noise, comments).
BEAT_SYMBOLS = set("NLRBAaJSVrFejnE/fQ?")
#: A detection within this of a reference beat is that beat (ANSI/AAMI EC57).
MATCH_S = 0.150


def record_100() -> tuple[np.ndarray, float, np.ndarray]:
    record = wfdb.rdrecord(str(ECG_DATA / "100"))
    annotation = wfdb.rdann(str(ECG_DATA / "100"), "atr")
    beats = np.array([s for s, symbol in zip(annotation.sample, annotation.symbol) if symbol in BEAT_SYMBOLS])
    return record.p_signal[:, 0], float(record.fs), beats


def noise_stress(name: str) -> tuple[np.ndarray, float, np.ndarray]:
    x = np.loadtxt(ECG_DATA / f"{name}.csv")
    return x, 360.0, np.loadtxt(ECG_DATA / f"{name}_ann.csv").astype(int)


def sensitivity_and_predictivity(found: np.ndarray, reference: np.ndarray, fs: float) -> tuple[float, float]:
    """Se and +P, each reference beat matched to at most one detection within MATCH_S."""
    found, tolerance = np.sort(found), int(MATCH_S * fs)
    used = np.zeros(found.size, bool)
    matched = 0
    for beat in np.sort(reference):
        near = [k for k in range(np.searchsorted(found, beat - tolerance),
                                 np.searchsorted(found, beat + tolerance, side="right")) if not used[k]]
        if near:
            used[min(near, key=lambda k: abs(found[k] - beat))] = True
            matched += 1
    return matched / reference.size, matched / max(found.size, 1)


def test_mit_bih_record_100_beats_match_the_cardiologists():
    x, fs, reference = record_100()
    beats = find_beats(MemorySource(x, fs), "ecg")
    se, ppv = sensitivity_and_predictivity(beats.samples, reference, fs)
    assert se >= 0.995 and ppv >= 0.995, (se, ppv)
    summary = summarize(beats, "ecg")
    true_rate = 60.0 / np.mean(np.diff(reference / fs))
    assert summary["usable_share"] == 1.0 and summary["heart_rate_bpm"] == pytest.approx(true_rate, abs=1.0)
    assert summary["hrv"]["withheld"] is None and 20 < summary["hrv"]["rmssd_ms"] < 80


def test_chunks_find_the_beats_of_one_run_over_the_whole_signal():
    """No beat lost or doubled at a chunk's edge: a chunk a minute over 30 minutes."""
    x, fs, _ = record_100()
    whole, _ = detect_beats(x, fs, "ecg")
    chunked = find_beats(MemorySource(x, fs), "ecg", chunk_s=60.0)
    np.testing.assert_array_equal(chunked.samples, whole)


def test_a_chunk_is_bounded_by_samples_whatever_the_sample_rate(monkeypatch):
    """Chunks were sized in seconds alone: a file declared at 1 MHz would have been read
    600 million samples at a time."""
    import ml.signals.beats

    x, fs, _ = record_100()
    reads: list[int] = []

    class Watched(MemorySource):
        def read(self, start: int, stop: int) -> np.ndarray:
            reads.append(stop - start)
            return super().read(start, stop)

    monkeypatch.setattr(ml.signals.beats, "MAX_CHUNK_SAMPLES", 60_000)  # 600 s would be 216,000
    found = find_beats(Watched(x, fs), "ecg")
    assert max(reads) <= 60_000 and len(reads) > 10
    np.testing.assert_array_equal(found.samples, detect_beats(x, fs, "ecg")[0])


def test_a_sample_rate_the_detectors_are_not_made_for_is_refused_naming_it():
    """At 5 Hz NeuroKit2's filters fail inside (a TypeError, reported as INTERNAL)."""
    from vitalq.errors import InvalidInput

    for fs, signal_type in ((5.0, "ecg"), (20.0, "ppg"), (50_000.0, "ecg")):
        with pytest.raises(InvalidInput) as refused:
            find_beats(MemorySource(np.zeros(int(60 * fs)), fs), signal_type)
        assert refused.value.code == "INVALID_INPUT" and refused.value.to_dict()["details"]["fields"].keys() == {"fs"}


def test_noisy_stretches_are_marked_and_not_counted():
    """118e06: the clean record 118 for 40 s, then electrode motion at 6 dB. The usable
    windows are the clean ones; what is counted there is right."""
    x, fs, reference = noise_stress("118e06")
    beats = find_beats(MemorySource(x, fs), "ecg")
    usable_windows = np.flatnonzero(beats.window_usable)
    assert set(usable_windows) <= {0, 1, 2, 3} and len(usable_windows) >= 3, beats.window_quality
    counted = beats.samples[beats.usable]
    in_usable = beats.window_usable[np.minimum(reference // int(10 * fs), beats.window_quality.size - 1)]
    se, ppv = sensitivity_and_predictivity(counted, reference[in_usable], fs)
    assert se >= 0.9 and ppv == 1.0, (se, ppv)
    summary = summarize(beats, "ecg")
    assert summary["usable_share"] < 0.4 and "usable signal" in summary["hrv"]["withheld"]
    true_rate = 60.0 / np.median(np.diff(reference[reference < 40 * fs] / fs))
    assert summary["heart_rate_bpm"] == pytest.approx(true_rate, abs=2.0)


@pytest.mark.parametrize("hr_bpm", [48.0, 75.0, 120.0, 170.0])
def test_a_simulated_finger_ppg_gives_its_beats_and_its_twin_none(hr_bpm):
    """A PPG with a dicrotic wave, baseline wander, noise and motion artefacts, from the
    faces' heart model; its pulse-free twin (the sensor on no finger) gives no rate."""
    rng_seed = int(hr_bpm)
    x, peaks = contact_ppg(hr_bpm=hr_bpm, seconds=300, rng=np.random.default_rng(rng_seed), artefacts_per_min=2)
    beats = find_beats(MemorySource(x, 100.0), "ppg")
    truth = np.round(peaks * 100.0).astype(int)
    se, _ = sensitivity_and_predictivity(beats.samples, truth, 100.0)
    _, counted_ppv = sensitivity_and_predictivity(beats.samples[beats.usable], truth, 100.0)
    assert se >= 0.93 and counted_ppv >= 0.98, (se, counted_ppv)  # what the artefacts invent is not counted
    summary = summarize(beats, "ppg")
    assert summary["heart_rate_bpm"] == pytest.approx(60.0 / np.mean(np.diff(peaks)), rel=0.02)

    twin, _ = contact_ppg(hr_bpm=hr_bpm, seconds=300, rng=np.random.default_rng(rng_seed), amplitude=0.0,
                          artefacts_per_min=2)
    twin_beats = find_beats(MemorySource(twin, 100.0), "ppg")
    try:
        twin_summary = summarize(twin_beats, "ppg")
    except NoBeats:
        return
    assert twin_summary["heart_rate_bpm"] is None and twin_summary["usable_share"] < 0.1, twin_summary


def test_a_flat_line_or_a_rate_no_heart_beats_at_is_no_beats():
    """Nothing to count, or beats at a rate no heart has (a wrong sample rate): NO_BEATS,
    saying so, rather than a number."""
    with pytest.raises(NoBeats) as flat:
        summarize(find_beats(MemorySource(np.zeros(60_000), 250.0), "ecg"), "ecg")
    assert flat.value.code == "NO_BEATS"
    x, _, _ = record_100()
    with pytest.raises(NoBeats, match="no heart rate"):  # 360 Hz declared as 50 Hz: 23 beats a minute
        summarize(find_beats(MemorySource(x[:72_000], 50.0), "ecg"), "ecg")


def wfdb_zip(name: str = "100") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for suffix in (".hea", ".dat"):
            archive.write(ECG_DATA / f"{name}{suffix}", f"{name}{suffix}")
    return buffer.getvalue()


@pytest.mark.usefixtures("worker")
def test_a_record_uploaded_over_http_gives_its_beats_as_files(jobs, http):
    answer = http.post("/api/v1/jobs", data={"kind": "signal.beats", "params": json.dumps({"channel": "MLII"})},
                       files={"file": ("100.zip", wfdb_zip())})
    assert answer.status_code == 201, answer.text
    job = jobs.wait_finished(answer.json()["id"], timeout_s=120)
    assert job["status"] == "succeeded", job["error"]
    result = job["result"]
    _, fs, reference = record_100()
    assert result["channel"] == "MLII" and result["fs_hz"] == fs and result["usable_share"] == 1.0
    assert result["heart_rate_bpm"] == pytest.approx(60.0 / np.mean(np.diff(reference / fs)), abs=1.0)
    rows = list(csv.DictReader(io.StringIO(http.get(f"/api/v1/jobs/{job['id']}/artifacts/beats.csv").text)))
    assert len(rows) == result["beats"]
    se, ppv = sensitivity_and_predictivity(np.array([int(row["sample"]) for row in rows]), reference, fs)
    assert se >= 0.995 and ppv >= 0.995
    assert rows[1]["rr_ms"] and rows[1]["label"] == "ok"
    windows = list(csv.DictReader(io.StringIO(http.get(f"/api/v1/jobs/{job['id']}/artifacts/heart_rate.csv").text)))
    assert len(windows) == result["windows"] == 181 and all(w["usable"] == "yes" for w in windows)

    # A sample rate no detector is made for is refused at submission, naming it.
    slow = http.post("/api/v1/jobs", data={"kind": "signal.beats", "params": json.dumps({"fs": 5})},
                     files={"file": ("slow.csv", "\n".join("0.1" for _ in range(600)).encode())})
    assert slow.status_code == 400 and "fs" in slow.json()["error"]["details"]["fields"], slow.text

    # A channel the record does not have is refused at submission, naming it.
    wrong = http.post("/api/v1/jobs", data={"kind": "signal.beats", "params": json.dumps({"channel": "V9"})},
                      files={"file": ("100.zip", wfdb_zip())})
    assert wrong.status_code == 400 and "V9" in wrong.text


@pytest.mark.usefixtures("worker")
def test_a_recording_with_no_heartbeat_fails_with_no_beats(jobs, http):
    quiet = "\n".join("0.0" for _ in range(30_000)).encode()
    answer = http.post("/api/v1/jobs", data={"kind": "signal.beats", "params": json.dumps({"fs": 250})},
                       files={"file": ("quiet.csv", quiet)})
    assert answer.status_code == 201, answer.text
    job = jobs.wait_finished(answer.json()["id"], timeout_s=60)
    assert job["status"] == "failed" and job["error"]["code"] == "NO_BEATS" and job["attempts"] == 1


def test_hrv_agrees_with_neurokit2_on_the_cardiologists_beats():
    """SDNN, RMSSD, pNN50 and the Poincaré plot's SD1 and SD2 of record 100's annotated
    beats, beside NeuroKit2's (``hrv_time``, ``hrv_nonlinear``) on the same normal-to-normal
    intervals (record 100's 33 atrial premature beats and one ventricular one are not
    normal: both drop the intervals around them)."""
    import neurokit2 as nk

    from ml.rppg.hrv import clean_intervals, hrv_metrics

    _, fs, reference = record_100()
    ours = hrv_metrics(reference / fs)
    intervals_ms, ends_s = clean_intervals(reference / fs)
    assert ours["intervals_used"] == intervals_ms.size >= 0.97 * (reference.size - 1)
    normal = {"RRI": intervals_ms, "RRI_Time": ends_s}
    theirs = nk.hrv_time(normal).iloc[0]
    nonlinear = nk.hrv_nonlinear(normal).iloc[0]
    for mine, reference_value in ((ours["sdnn_ms"], theirs["HRV_SDNN"]), (ours["rmssd_ms"], theirs["HRV_RMSSD"]),
                                  (ours["pnn50_pct"], theirs["HRV_pNN50"]), (ours["sd1_ms"], nonlinear["HRV_SD1"]),
                                  (ours["sd2_ms"], nonlinear["HRV_SD2"])):
        assert mine == pytest.approx(reference_value, rel=0.03), (mine, reference_value)


@pytest.mark.usefixtures("worker")
def test_an_ecg_analysed_gives_its_beats_and_a_risk_from_their_hrv(jobs, http):
    """``signal.analyze``: the beats' HRV chained into risk prediction, as video.analyze
    does with a face video's."""
    answer = http.post("/api/v1/jobs", data={"kind": "signal.analyze", "params": json.dumps({"channel": 0})},
                       files={"file": ("100.zip", wfdb_zip())})
    assert answer.status_code == 201, answer.text
    job = jobs.wait_finished(answer.json()["id"], timeout_s=120)
    assert job["status"] == "succeeded", job["error"]
    found, risk = job["result"]["beats"], job["result"]["risk"]
    assert risk["features"]["rmssd_ms"] == found["hrv"]["rmssd_ms"] and risk["features"]["quality"] == 1.0
    assert risk["model"]["demo"] is True and len(risk["predictions"]) == 1
    assert {a["name"] for a in job["artifacts"]} == {"beats.csv", "heart_rate.csv", "cleaned.f32"}

    # 40 s of clean signal is too little for HRV: the risk stage refuses, the beats stay.
    noisy = io.BytesIO("\n".join(f"{v:.3f}" for v in noise_stress("118e06")[0]).encode())
    refused = http.post("/api/v1/jobs", data={"kind": "signal.analyze", "params": json.dumps({"fs": 360})},
                        files={"file": ("118e06.csv", noisy.getvalue())})
    job = jobs.wait_finished(refused.json()["id"], timeout_s=120)
    assert job["status"] == "failed" and job["error"]["code"] == "HRV_WITHHELD", job["error"]
    assert job["error"]["details"]["finished_parts"] == ["beats"] and job["result"]["beats"]["heart_rate_bpm"] > 0
