"""What the docs promise, held to the code: the README's list of error codes, and the
examples in the library's docstrings, run on its own simulators."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

from vitalq.errors import VitalqError

README = Path(__file__).resolve().parents[1] / "README.md"


def every_error_class() -> set[type]:
    """Every VitalqError subclass, with every module of the packages that define them imported."""
    for package in ("ml", "hardware", "worker", "tasks", "web"):
        for module in pkgutil.walk_packages(importlib.import_module(package).__path__, f"{package}."):
            importlib.import_module(module.name)
    found, todo = set(), [VitalqError]
    while todo:
        for subclass in todo.pop().__subclasses__():
            found.add(subclass)
            todo.append(subclass)
    return found


def test_every_error_code_is_in_the_readmes_list():
    """The list had drifted: HRV_WITHHELD, NON_FINITE, TOO_SHORT and UNREADABLE_VIDEO were
    raised but not listed."""
    codes = {cls.code for cls in every_error_class()} | {VitalqError.code}
    listed_paragraph = README.read_text().split("\nCodes: ", 1)[1].split("\n\n", 1)[0]
    listed = set(re.findall(r"`([A-Z_]{4,})`", listed_paragraph))
    assert codes - listed == set(), f"codes raised but not in the README's list: {sorted(codes - listed)}"


def test_every_error_code_has_its_own_sentence_for_people():
    """The pages tell a user each code in a sentence (``plain``), from the class that
    raises it: a class with a code of its own must not borrow its parent's sentence."""
    borrowed = sorted(cls.__name__ for cls in every_error_class()
                      if "code" in vars(cls) and "plain" not in vars(cls)
                      and cls.code != next(base.code for base in cls.__mro__[1:] if hasattr(base, "code")))
    assert borrowed == []


def test_every_example_in_the_library_s_docstrings_runs():
    import doctest

    tried = {}
    for package in ("ml", "hardware"):
        for module in pkgutil.walk_packages(importlib.import_module(package).__path__, f"{package}."):
            if module.name.endswith("__main__"):
                continue
            outcome = doctest.testmod(importlib.import_module(module.name), optionflags=doctest.ELLIPSIS)
            assert outcome.failed == 0, module.name
            tried[module.name] = outcome.attempted
    # The public functions a newcomer starts from each show an example that ran.
    for name in ("ml.rppg.pipeline", "ml.rppg.simulate", "ml.rppg.hrv", "ml.signals.beats", "ml.signals.design"):
        assert tried[name] >= 2, (name, tried[name])
