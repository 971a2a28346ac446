"""Risk-model serving benchmark: OpenVINO beside scikit-learn, per model type.

Prints, in one run, for each model type trained on the generated demonstration data:
single-row latency (p50/p95, microseconds) and batch throughput (rows per second, on
batches of 10,000 rows) through OpenVINO (compiled once, as a worker does) and through
scikit-learn's ``predict_proba``; and the largest probability difference between them.

    python bench/risk.py
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, bench/ comes first on sys.path, where bench/queue.py would shadow the
# standard library's queue; the repository root is what is wanted.
ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

from ml.risk import MODEL_TYPES, demo_dataset, train  # noqa: E402
from ml.risk._openvino import ov  # noqa: E402
from ml.risk.serving import NotConvertible, openvino_proba, to_openvino  # noqa: E402


def latencies_us(predict, rows: np.ndarray, repeats: int = 2000) -> np.ndarray:
    for row in rows[:50]:
        predict(row[None, :])  # warm up
    times = np.empty(repeats)
    for i in range(repeats):
        row = rows[i % rows.shape[0]][None, :]
        start = time.perf_counter()
        predict(row)
        times[i] = (time.perf_counter() - start) * 1e6
    return times


def throughput(predict, rows: np.ndarray, seconds: float = 2.0) -> float:
    predict(rows)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        predict(rows)
        done += rows.shape[0]
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="500 single-row calls and half a second of batches")
    quick = parser.parse_args().quick
    warnings.simplefilter("ignore")
    features, labels = demo_dataset()
    batch = np.tile(features, (5, 1))[:10_000]
    print(f"{'model':18} {'runtime':9} {'1 row p50 µs':>13} {'1 row p95 µs':>13} {'batch rows/s':>14} "
          f"{'max |p_ov - p_sk|':>18}")
    for model_type in MODEL_TYPES:
        trained = train(features, labels, model_type)
        sklearn_predict = trained.pipeline.predict_proba
        runs = [("sklearn", sklearn_predict)]
        difference = ""
        try:
            with tempfile.TemporaryDirectory() as folder:
                ov.save_model(to_openvino(trained.pipeline), f"{folder}/m.xml", compress_to_fp16=False)
                core = ov.Core()
                model = core.compile_model(core.read_model(f"{folder}/m.xml"), "CPU",
                                           {"INFERENCE_PRECISION_HINT": "f32"})
            request = model.create_infer_request()

            def openvino_predict(rows, request=request):  # a reused request: what a worker keeps
                return request.infer({0: np.ascontiguousarray(rows, dtype=np.float32)})[0]

            runs.insert(0, ("openvino", openvino_predict))
            difference = f"{np.max(np.abs(openvino_proba(model, batch) - sklearn_predict(batch))):.2e}"
        except NotConvertible as exc:
            difference = f"(not converted: {exc})"
        for runtime, predict in runs:
            single = latencies_us(predict, features, 500 if quick else 2000)
            rate = throughput(predict, batch, 0.5 if quick else 2.0)
            shown = difference if runtime == "openvino" or len(runs) == 1 else ""
            print(f"{model_type:18} {runtime:9} {np.percentile(single, 50):13.1f} {np.percentile(single, 95):13.1f} "
                  f"{rate:14,.0f} {shown:>18}")


if __name__ == "__main__":
    main()
