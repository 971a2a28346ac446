"""One peer's work in a fresh interpreter of its own, under an address-space limit, and
its time and peak memory read back: how the memory benchmarks (``bench/beats.py``,
``bench/filtering.py``) set vitalq beside its peers.

    figures = run(BODY, [method, path], setup=SETUP, limit_bytes=4 << 30, timeout_s=600)
    figures["status"], figures["seconds"], figures["peak_rss_mb"], figures["added_mb"]

``setup`` runs before the memory baseline (imports that are not the work's), ``body``
after it, with the arguments in ``sys.argv[1:]``; ``body`` may put more figures in the
dict ``extra``. The peak is the process's VmHWM, not ``ru_maxrss``: Linux carries
``ru_maxrss`` over from the parent across fork and exec.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

HARNESS = r"""
import json, resource, sys, time, warnings
warnings.filterwarnings("ignore")
limit = int(sys.argv.pop(1))
if limit:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
def rss_kb(field):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field + ":"))
extra = {}
SETUP
baseline_kb = rss_kb("VmRSS")
start = time.perf_counter()
try:
BODY
    status = "ok"
except MemoryError:
    status = "MemoryError"
except ImportError as exc:
    status = f"not installed ({exc.name})"
except Exception as exc:
    status = f"failed: {type(exc).__name__}: {str(exc)[:60]}"
elapsed = time.perf_counter() - start
print(json.dumps({"status": status, "seconds": elapsed, "peak_rss_mb": rss_kb("VmHWM") / 1024,
                  "added_mb": (rss_kb("VmHWM") - baseline_kb) / 1024, **extra}))
"""


def run(body: str, args: list, *, setup: str = "", limit_bytes: int = 0, timeout_s: float | None = None) -> dict:
    """The figures of ``body`` run with ``args`` (see the module's docstring); a run that
    is stopped at ``timeout_s`` or crashes has its status say so and NaN figures."""
    script = HARNESS.replace("SETUP", textwrap.dedent(setup)).replace(
        "BODY", textwrap.indent(textwrap.dedent(body), "    "))
    nothing = {"seconds": float("nan"), "peak_rss_mb": float("nan"), "added_mb": float("nan")}
    try:
        done = subprocess.run([sys.executable, "-c", script, str(limit_bytes), *map(str, args)], capture_output=True,
                              text=True, cwd=ROOT, timeout=timeout_s, env={**os.environ, "PYTHONPATH": str(ROOT)})
    except subprocess.TimeoutExpired:
        return {"status": f"stopped after {timeout_s:g} s", **nothing}
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"status": f"crashed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}", **nothing}
