"""On the ESP32 floats are 32-bit. The core turns every float input into an
integer once (env readings, config values); these tests round those inputs
through single precision and check the integers — and so every decision
after them — come out the same as on the desk."""

import gzip
import json
import struct

from citynode import ticks
from citynode.sense.core import Core
from citynode.sense.occupancy import MagneticBay
from citynode.ticks import Clock
from tests.conftest import BUNDLED, bundled


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def quantize(temp_c, pressure_pa, humidity_pct):
    """The core's own conversion (core.Core._env), applied by the core."""
    seen = []

    def publish(t, topic, payload):
        seen.append(payload)

    core = Core([{"id": "env", "type": "env"}], Clock(0, 0), publish)
    core.feed("env", 0, {"temp_c": temp_c, "pressure_pa": pressure_pa, "humidity_pct": humidity_pct})
    return core.air, core.speed_mm_s


def test_every_bundled_env_reading_quantizes_the_same_in_single_precision():
    checked = 0
    for name in BUNDLED:
        with gzip.open(bundled(name), "rt") as f:
            for line in f:
                if '"s":"env"' not in line:
                    continue
                r = json.loads(line)
                args = (r["temp_c"], r["pressure_pa"], r["humidity_pct"])
                assert quantize(*args) == quantize(*(f32(a) for a in args)), r
                checked += 1
    assert checked > 3000


def test_config_seconds_become_the_same_milliseconds_in_single_precision():
    for tenths in range(0, 100000, 7):
        s = tenths / 10
        assert ticks.ms(s) == ticks.ms(f32(s)) == tenths * 100, s


def test_config_micro_teslas_become_the_same_counts_in_single_precision():
    for tenths in range(0, 500):
        for lsb in (30, 120):
            cfg = {"lsb_per_ut": lsb, "enter_ut": tenths / 10, "exit_ut": tenths / 10}
            a = MagneticBay("b", [], cfg)
            b = MagneticBay("b", [], {k: f32(v) for k, v in cfg.items()})
            assert (a.enter_floor2, a.exit_floor2) == (b.enter_floor2, b.exit_floor2), cfg
