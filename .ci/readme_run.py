"""CI: the README's run command on a plain install (no test extras), as a new user runs it.

A fresh virtual environment gets ``pip install -e .``; its ``vitalq`` console script runs
``vitalq up`` on embedded defaults (nothing configured) with ``--no-flower``; the
printed admin token submits a selftest with ``vitalq submit --wait``; Flower's port stays
closed; Ctrl-C (SIGINT) stops everything with exit code 0. Standard library only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def status_of(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def main() -> int:
    folder = Path(tempfile.mkdtemp(prefix="vitalq-readme-"))
    try:
        return run(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # the venv alone is about a gigabyte


def run(folder: Path) -> int:
    venv = folder / ".venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-e", str(REPO)], check=True)
    vitalq = str(venv / "bin" / "vitalq")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "VITALQ_DATA_DIR")}
    port, flower_port = free_port(), free_port()
    up = subprocess.Popen([vitalq, "up", "--data-dir", str(folder / "var"), "--port", str(port),
                           "--flower-port", str(flower_port), "--no-flower", "--concurrency", "1"],
                          cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(up.stdout), daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while status_of(f"{base}/health/ready") != 200:
            if up.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"vitalq up never became ready:\n{''.join(lines)[-4000:]}")
            time.sleep(1)
        token = next(line.split("=", 1)[1].strip() for line in lines if "export VITALQ_TOKEN=" in line)
        done = subprocess.run([vitalq, "submit", "diagnostics.selftest", "--wait", "--url", base],
                              env={**env, "VITALQ_TOKEN": token}, capture_output=True, text=True, timeout=120)
        if done.returncode != 0 or json.loads(done.stdout)["status"] != "succeeded":
            raise SystemExit(f"the selftest did not succeed:\n{done.stdout}\n{done.stderr}")
        if status_of(f"http://127.0.0.1:{flower_port}/flower/") is not None:
            raise SystemExit("--no-flower, yet something answers on Flower's port")
    finally:
        up.send_signal(signal.SIGINT)
        code = up.wait(timeout=90)
    if code != 0:
        raise SystemExit(f"vitalq up exited with {code} on Ctrl-C:\n{''.join(lines)[-4000:]}")
    if status_of(f"{base}/health/live") is not None:
        raise SystemExit("the web server still answers after Ctrl-C")
    print("README run command: vitalq up served a selftest on a plain install, and stopped cleanly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
