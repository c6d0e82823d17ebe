"""The emulated CircuitPython board under CPython (launch_cpython.py) as
well as under MicroPython's unix port (launch.py): the real firmware
(boot.py, code.py, the citynode package, Adafruit's BME280 library from the
drive's lib/) on the same emulated modules and the same world publishes
the same stream on both, against a real Mosquitto.

Both runs are on the world's virtual clock, so they are the same to the
millisecond; what differs is the runtime itself (`gc.mem_free`, which
CPython has not: `heap_free` is null in its health).
"""

import json
import subprocess
import sys
import time

from tests.paho_subscriber import Subscriber, unique
from tests.test_node_circuitpython import (  # noqa: F401 - broker, storm: fixtures
    EMULATION,
    Board,
    broker,
    first_sightings,
    node_config,
    storm,
)

RUNTIME_ONLY = ("heap_free",)  # health fields that tell the runtime, not the node


class CPythonBoard(Board):
    """The same board, started by launch_cpython.py under this CPython."""

    def start(self):
        return subprocess.Popen([sys.executable, str(EMULATION / "launch_cpython.py"), str(self.drive)],
                                cwd=self.dir, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)


def stream_of(board, port, site):
    """Run `board` to the world's end (`online`, then the will): its
    state then, and the messages in order as (topic suffix, payload), seq 1..N."""
    prefix = "citynode/%s/feather-1/" % site
    with Subscriber(port, prefix) as sub:
        kept = board.run()
        assert sub.wait(lambda: sub.status() == [b"online", b"offline"], timeout=30), sub.status()
        time.sleep(0.5)  # nothing more may come
        data = sub.data()
    first, order = first_sightings(data)
    assert order == list(range(1, len(order) + 1))
    return kept, [first[s] for s in order]


def test_the_storm_under_cpython_is_the_micropython_stream(broker, storm, tmp_path):  # noqa: F811
    """The storm's bus-level twin through the emulated parts: CPython's run
    publishes what MicroPython's does, message for message (topics,
    payloads, stamps, order), and ends the world in the same state; only
    the heap in health differs (none on CPython)."""
    plain, bus, last_ms = storm
    header = json.loads(plain.read_text().split("\n", 1)[0])
    runs = {}
    for name, kind in (("micropython", Board), ("cpython", CPythonBoard)):
        site = unique("cp-" + name)
        (tmp_path / name).mkdir()
        board = kind(tmp_path / name, node_config(broker.port, site, header["sensors"]), bus, last_ms + 5000)
        runs[name] = stream_of(board, broker.port, site)
    (mp_kept, mp), (cp_kept, cp) = runs["micropython"], runs["cpython"]
    assert cp_kept == mp_kept and mp_kept["boots"] == 1, (cp_kept, mp_kept)
    assert {s for s, _p in mp} >= {"water", "env", "event", "health"}

    def same(stream):
        return [(s, {k: v for k, v in p.items() if s != "health" or k not in RUNTIME_ONLY})
                for s, p in stream]

    assert same(cp) == same(mp)
    health = [(p, q) for (s, p), (_s, q) in zip(mp, cp, strict=True) if s == "health"]
    assert health and all(isinstance(p["heap_free"], int) and q["heap_free"] is None for p, q in health)


PROBE = """
import os
import time

import adafruit_bme280.basic

facts = {"time": time.__file__, "bme280": adafruit_bme280.basic.__file__, "monotonic": time.monotonic(),
         "ssid": os.getenv("CIRCUITPY_WIFI_SSID"), "drive": sorted(os.listdir("/")), "cwd": os.getcwd()}
try:
    import socket  # noqa: F401
except ImportError as e:
    facts["socket"] = str(e)
with open("/config.json") as f:
    facts["config"] = len(f.read())
try:
    open("/written.txt", "w")
except OSError as e:
    facts["write"] = e.args[0]
print("PROBE " + repr(sorted(facts.items())))
"""


def probe(board):
    """What code.py PROBE finds on `board`'s drive ({fact: value}), the
    drive's folder as `/` and the host's as /host in its paths."""
    (board.drive / "code.py").write_text(PROBE)
    (board.drive / "boot.py").unlink()  # no remount: the drive stays read-only to the code
    board.run()
    line = [ln for ln in board.outputs[-1].split("\n") if ln.startswith("PROBE ")]
    assert line, board.outputs
    line = line[0][len("PROBE "):].replace(str(board.drive), "").replace("/host/", "/")
    return dict(eval(line))  # noqa: S307 - our own repr of strings and numbers


def test_the_firmware_sees_the_same_board_on_both(broker, storm, tmp_path):  # noqa: F811
    """What the launchers map, seen from code.py: the emulated `time`, the
    drive's own lib/ (not the host's Adafruit library), `socket` missing,
    settings.toml, the drive as `/` to open() and os, and a write refused
    with EROFS while the drive is read-only to the code (no boot.py
    remounted it)."""
    _plain, bus, _last_ms = storm
    cfg = node_config(broker.port, "probe", {})
    for name in ("micropython", "cpython"):
        (tmp_path / name).mkdir()
    mp = probe(Board(tmp_path / "micropython", cfg, bus, 1000))
    facts = probe(CPythonBoard(tmp_path / "cpython", cfg, bus, 1000))
    mp["drive"].remove("host")  # launch.py's mount point shows in MicroPython's "/"; not on a board
    assert facts == mp
    assert facts["time"].endswith("/host_tools/emulators/circuitpython/time.py")
    assert facts["bme280"] == "/lib/adafruit_bme280/basic.py"
    assert facts["monotonic"] == 0.0 and facts["ssid"] == "city-iot" and facts["write"] == 30
    assert facts["cwd"] == "/"
    assert facts["drive"] == ["citynode", "code.py", "config.json", "lib", "settings.toml"]
    assert facts["socket"] == "no module named 'socket'"
    assert facts["config"] == len(json.dumps(cfg))
