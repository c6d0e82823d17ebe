"""The core's state across deep sleep (citynode.board.state): a core snapshotted
to JSON and restored into a fresh one from the same config carries on
exactly as one that never slept. Runs under CPython and MicroPython."""

import json

from citynode.board.state import restore, snapshot
from citynode.sense.core import Core
from citynode.ticks import Clock
from tests.core.helpers import Collect, echo_for_mm

START = 1783987200
SENSORS = [
    {"id": "bay-01", "type": "bay_ultrasonic", "driver": "jsn-sr04t"},  # learns its empty floor
    {"id": "bay-03", "type": "bay_magnetic", "lsb_per_ut": 120},
    {"id": "street", "type": "water", "driver": "jsn-sr04t", "mount_mm": 3500,
     "thresholds_mm": [50, 150, 300]},
    {"id": "env", "type": "env", "period_s": 60},
]


class Noise:
    """A small deterministic generator (the same on both runtimes)."""

    def __init__(self, seed):
        self.x = seed

    def __call__(self, spread):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return self.x % (2 * spread + 1) - spread


def sample(sid, t, noise):
    """What the sensor reads at `t` ms: a car in bay-01 and bay-03 between
    10 and 25 minutes, water rising to 40 cm then falling, warm air."""
    minute = t // 60000
    car = 10 <= minute < 25
    if sid == "bay-01":
        mm = (1200 if car else 2600) + noise(8)
        return {"echo_us": [echo_for_mm(mm)] * 5}
    if sid == "bay-03":
        z = 5200 if car else 4000
        return {"mag": [2500 + noise(15), 200 + noise(15), z + noise(15)]}
    if sid == "street":
        level = max(0, 400 - abs(minute - 30) * 20) + noise(5)
        return {"echo_us": [echo_for_mm(3500 - level)] * 7}
    return {"temp_c": 24.5 + minute / 60, "pressure_pa": 100900.0, "humidity_pct": 70.0}


def run(steps, wake_at=()):
    """Feed the core by its own schedule for `steps` readings; at each step in
    `wake_at` the core is snapshotted through JSON and replaced by a fresh
    one restored from it. Returns the messages and the largest snapshot."""
    out = Collect()
    core = Core(SENSORS, Clock(START, 0), out)
    noise = Noise(7)
    t = 0
    largest = 0
    for step in range(steps):
        if step in wake_at:
            text = json.dumps(snapshot(core, Core(SENSORS, Clock(START, 0), Collect())))
            largest = max(largest, len(text))
            core = Core(SENSORS, Clock(START, 0), out)
            restore(core, json.loads(text))
        sid = None
        for k in sorted(core.due_at):
            d = core.due_at[k]
            if d is None:
                sid, t_next = k, t
                break
            if sid is None or d < t_next:
                sid, t_next = k, d
        t = max(t, t_next)
        core.feed(sid, t, sample(sid, t, noise))
    return out.messages, largest


def test_a_restored_core_carries_on_as_if_it_never_slept():
    steps = 2600
    whole, _ = run(steps)
    kinds = set((topic, p.get("kind")) for _t, topic, p in whole)
    assert ("event", "occupancy") in kinds and ("event", "alert") in kinds  # the run has something to keep
    woken, largest = run(steps, wake_at=tuple(range(3, steps, 41)))
    assert woken == whole
    assert largest < 2048  # fits an ESP32's RTC memory


def test_snapshot_skips_the_shared_event_list_and_functions():
    core = Core(SENSORS, Clock(START, 0), Collect())
    data = snapshot(core)
    assert "rangers" in data and len(snapshot(core, Core(SENSORS, Clock(START, 0), Collect()))) < len(data)
    assert "events" not in data and "clock" not in data and "_publish" not in data
    assert data["_feeders"] == {}  # bound methods are not data
    fresh = Core(SENSORS, Clock(START, 0), Collect())
    restore(fresh, json.loads(json.dumps(data)))
    assert set(fresh._feeders) == set(core._feeders)  # still whole
    assert fresh.detectors["street"].thresholds == (50, 150, 300)  # a tuple again
