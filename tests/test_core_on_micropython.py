"""The core's unit tests (tests/core) again, inside the real MicroPython
interpreter with an ESP32-sized heap: one body of tests, two runtimes."""

from pathlib import Path

import pytest

from tests.conftest import ROOT, run_micropython

MODULES = sorted(p.stem for p in (ROOT / "tests" / "core").glob("test_*.py"))


def test_there_are_core_tests_to_run():
    assert len(MODULES) >= 5


@pytest.mark.parametrize("module", MODULES)
def test_core_module_passes_under_micropython(module):
    proc = run_micropython([str(Path("tests") / "mp_runner.py"), "tests.core." + module], heap="256K")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    passed = [ln for ln in proc.stdout.splitlines() if ln.startswith("PASS ")]
    import importlib

    mod = importlib.import_module("tests.core." + module)
    expected = [n for n in dir(mod) if n.startswith("test_")]
    assert len(passed) == len(expected), out
