"""The hardware-layer contract (docs/hal.md): every method the node and
record mode call on their layer is on the page and on every layer that must
have it, read from the source, so a new layer that lacks one fails here."""

import ast
import re

from citynode.board.hal_circuitpython import CircuitPythonHal
from citynode.board.hal_esp32 import BoardHal
from citynode.board.hal_sim import SimHal
from tests.conftest import ROOT

LAYERS = (SimHal, BoardHal, CircuitPythonHal)
CALLERS = (ROOT / "firmware" / "citynode" / "board" / "node.py",
           ROOT / "firmware" / "citynode" / "board" / "record.py")
DOC = ROOT / "docs" / "hal.md"


def _layer_calls(path):
    """Methods called on `self.hal` or on a local `hal` that holds the layer
    (in node.make_hal, `hal` is the config's dict: its `get` is not counted)."""
    called = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value
        on_self = isinstance(owner, ast.Attribute) and owner.attr == "hal"
        on_local = isinstance(owner, ast.Name) and owner.id == "hal"
        if (on_self or on_local) and node.func.attr != "get":
            called.add(node.func.attr)
    return called


def _documented():
    """{method: section} from docs/hal.md's tables."""
    found = {}
    section = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section = "deep_sleep" if "DEEP_SLEEP" in line else "every"
        m = re.match(r"\| `([a-z_]+)\(", line)
        if m:
            found[m.group(1)] = section
    return found


def test_every_call_on_the_layer_is_documented():
    called = set().union(*(_layer_calls(p) for p in CALLERS))
    assert {"clock", "now", "stream", "service", "save_state", "sleep"} <= called  # the walk sees them
    assert called <= set(_documented()), called - set(_documented())


def _missing(layer, doc):
    """The methods `layer` must have (docs/hal.md) and has not."""
    return [m for m, section in doc.items()
            if (section == "every" or layer.DEEP_SLEEP) and not callable(getattr(layer, m, None))]


def test_every_layer_has_every_method_it_must():
    doc = _documented()
    assert set(doc.values()) == {"every", "deep_sleep"}
    for layer in LAYERS:
        assert _missing(layer, doc) == [], layer.__name__


def test_a_layer_that_lacks_a_method_is_caught():
    class Partial:
        DEEP_SLEEP = True

        def clock(self):
            return None

    missing = _missing(Partial, _documented())
    assert "stream" in missing and "sleep" in missing and "clock" not in missing
    Partial.DEEP_SLEEP = False
    assert "sleep" not in _missing(Partial, _documented())
