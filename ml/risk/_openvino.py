"""OpenVINO, imported with its telemetry off: import ``ov`` from here, never ``openvino``
first. On import OpenVINO sends a usage event to Google Analytics from a forked process
unless the machine's user has opted out (``opt_in_out --opt_out``); it stays quiet in CI
builds, and its choice holds for the process. vitalq handles health data and sends
nothing anywhere, so OpenVINO is first imported as in CI."""

import importlib
import os


def _import_without_telemetry():
    previous = os.environ.get("CI")
    os.environ["CI"] = "true"
    try:
        return importlib.import_module("openvino")
    finally:
        if previous is None:
            del os.environ["CI"]
        else:
            os.environ["CI"] = previous


ov = _import_without_telemetry()
