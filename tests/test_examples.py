"""Every bench example compiles for the ESP32 (mpy-cross, Xtensa) and
imports only what a board has: machine, time and citynode's own modules."""

import ast
import subprocess
from pathlib import Path

import pytest

from host_tools import mpy
from tests.conftest import ROOT

EXAMPLES = sorted((ROOT / "firmware" / "examples").glob("*_simpletest.py"))
BOARD_MODULES = ("machine", "time")


def test_there_is_an_example_per_driver():
    drivers = {p.stem for p in (ROOT / "firmware" / "citynode" / "drivers").glob("*.py")} - {"__init__"}
    assert {p.stem.replace("_simpletest", "") for p in EXAMPLES} == drivers


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_compiles_for_the_esp32(example, tmp_path):
    subprocess.run([mpy.mpy_cross_binary(), "-march=xtensawin", "-o", str(tmp_path / "x.mpy"), str(example)],
                   check=True, capture_output=True, text=True)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_imports_only_what_a_board_has(example):
    for node in ast.walk(ast.parse(Path(example).read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module]
        for name in names:
            assert name in BOARD_MODULES or name.startswith("citynode."), name
