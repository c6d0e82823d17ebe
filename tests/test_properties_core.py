"""The core never raises on what a sample holds, and never on when it comes:
any sequence of samples, however absurd their numbers and however their
ticks jump (backwards, by an hour, by weeks that wrap), checked with
hypothesis."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from citynode import ticks
from citynode.sense.core import Core
from citynode.ticks import Clock
from tests.core.helpers import Collect

START = 1783987200

STREET = [
    {"id": "street", "type": "water", "driver": "jsn-sr04t", "mount_mm": 3500},
    {"id": "env", "type": "env", "period_s": 60},
]
BAYS = [
    {"id": "bay-u", "type": "bay_ultrasonic", "driver": "hc-sr04", "empty_mm": 2600},
    {"id": "bay-m", "type": "bay_magnetic", "lsb_per_ut": 120},
]

absurd_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10 ** 40), 10 ** 40),
    st.integers(-70000, 70000),
    st.sampled_from([1e308, -1e308, 0, -1, 2 ** 30, 2 ** 62, -146.0, -38.0, 92800, 100.0]),
)
anything = st.one_of(absurd_numbers, st.none(), st.booleans(), st.text(max_size=3),
                     st.lists(absurd_numbers, max_size=3))
bursts = st.one_of(st.lists(absurd_numbers, min_size=0, max_size=40), anything)

street_sample = st.one_of(
    st.fixed_dictionaries({"echo_us": bursts}),
    st.fixed_dictionaries({"distance_mm": bursts}),
    st.fixed_dictionaries({"fault": anything}),
    st.dictionaries(st.sampled_from(["echo_us", "distance_mm", "fault", "x"]), anything, max_size=3),
    anything,
)
env_sample = st.one_of(
    st.fixed_dictionaries({"temp_c": absurd_numbers, "pressure_pa": absurd_numbers,
                           "humidity_pct": absurd_numbers}),
    st.fixed_dictionaries({"temp_c": st.floats(-40, 85), "pressure_pa": st.floats(30000, 110000),
                           "humidity_pct": st.floats(0, 100)}),
    st.dictionaries(st.sampled_from(["temp_c", "pressure_pa", "humidity_pct", "fault"]), anything),
    anything,
)
bay_sample = st.one_of(
    st.fixed_dictionaries({"echo_us": bursts}),
    st.fixed_dictionaries({"mag": st.one_of(st.lists(absurd_numbers, min_size=0, max_size=4), anything)}),
    st.fixed_dictionaries({"fault": anything}),
    anything,
)
# Tick steps: the node's own (10 s, 60 s), an hour and a bit, days, weeks
# that alias in 2^30 ms ticks, and steps back.
steps = st.one_of(st.sampled_from([0, 1, 10000, 60000, 600000, 3600001, 7 * 86400000, 10 * 86400000, -5000]),
                  st.integers(-ticks.PERIOD, 3 * ticks.PERIOD))


def replay(sensors, seq, after=None):
    """Feed `seq`, (sensor, tick step, sample) each, to a fresh core; every
    message must be sendable (JSON without NaN) with an integer `ts`.
    `after(core)` runs after each sample."""
    out = Collect()
    core = Core(sensors, Clock(START, 0), out)
    t = 0
    for sid, step, sample in seq:
        t = ticks.add(t, step)
        core.feed(sid, t, sample)
        if after is not None:
            after(core)
    for _t, _topic, payload in out.messages:
        json.dumps(payload, allow_nan=False)  # what the publisher will send
        assert type(payload["ts"]) is int


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["street", "env"]), steps, street_sample, env_sample), max_size=60))
def test_no_street_sample_and_no_tick_step_raises(seq):
    replay(STREET, [(sid, step, water if sid == "street" else air) for sid, step, water, air in seq])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["street", "env"]), st.integers(1, 600000), st.booleans(),
                          st.floats(allow_nan=True, allow_infinity=True)), max_size=80))
def test_the_speed_of_sound_only_ever_comes_from_air_in_range(seq):
    """Good bursts and air readings with absurd temperatures mixed in."""

    def sane(core):
        assert core.air is None or -4000 <= core.air[0] <= 8500
        assert 300000 < core.speed_mm_s < 400000

    replay(STREET, [(sid, step, {"echo_us": [20400] * 7} if sid == "street" else
                     {"temp_c": 20.0 if good else temp, "pressure_pa": 101325, "humidity_pct": 50.0})
                    for sid, step, good, temp in seq], sane)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["bay-u", "bay-m"]), st.integers(1, 60000), bay_sample),
                max_size=60))
def test_no_bay_sample_raises(seq):
    """Bays with absurd samples, at steps shorter than a silence."""
    replay(BAYS, seq)
