"""The bays never raise on a number, however absurd: any ints as readings
(±2**31 and beyond), any tick (backwards, wrapped, huge gaps), faults and
restarts mixed in, and their state stays a few small ints."""

from hypothesis import given, settings
from hypothesis import strategies as st

from citynode.sense.occupancy import MagneticBay, UltrasonicBay

WILD = st.one_of(st.integers(-(1 << 31), 1 << 31), st.integers(-(1 << 64), 1 << 64), st.integers(-3000, 3000))
TICK = st.one_of(st.integers(0, 3000), st.integers(-(1 << 31), 1 << 31),
                 st.sampled_from([-1, 1 << 29, 1 << 30]))
MASK = (1 << 30) - 1  # ticks wrap like the board's: any step, backwards or days long


def _small(obj):
    """Every int held by the bay (and its dwell) fits a small int on an ESP32."""
    for v in list(obj.__dict__.values()) + list(obj.dwell.__dict__.values()):
        for x in v if type(v) is list else [v]:
            if type(x) is int:
                assert -(1 << 30) <= x < 1 << 30, obj.__dict__


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(TICK, WILD, WILD, WILD, st.integers(0, 20)), min_size=1, max_size=80),
       st.sampled_from([30, 120, 1.5]))
def test_the_magnetic_bay_takes_any_ints(steps, lsb):
    events = []
    bay = MagneticBay("b", events, {"lsb_per_ut": lsb, "calibrate_s": 1})
    t = 0
    for dt, x, y, z, what in steps:
        t = (t + dt) & MASK
        if what == 1:
            bay.fault(t, "no_answer")
        elif what == 2:
            bay.restart(t)
        else:
            bay.update(t, x, y, z)
        _small(bay)
    assert all(e["kind"] in ("occupancy", "fault") for e in events)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(TICK, WILD, st.integers(0, 20)), min_size=1, max_size=80))
def test_the_ultrasonic_bay_takes_any_ints(steps):
    events = []
    bay = UltrasonicBay("b", events, {"calibrate_s": 1})
    t = 0
    for dt, mm, what in steps:
        t = (t + dt) & MASK
        if what == 1:
            bay.restart(t)
        else:
            bay.update(t, mm if mm >= -3 else abs(mm))  # negative readings are the ranger's fault codes
    assert all(e["kind"] in ("occupancy", "fault") for e in events)
