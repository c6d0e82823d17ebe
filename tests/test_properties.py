"""Properties that must hold for any signal, checked with hypothesis."""

from hypothesis import given, settings
from hypothesis import strategies as st

from citynode.sense.flood import WaterLevel
from citynode.sense.occupancy import Dwell, MagneticBay, UltrasonicBay
from citynode.sense.ranging import Ranger
from tests.core.helpers import Q16_20C, echo_for_mm

MOUNT = 3500


def flood_alert_changes(levels, threshold_index, hyst):
    events = []
    w = WaterLevel("w", events, {"mount_mm": MOUNT, "hysteresis_mm": hyst})
    # reach the threshold's neighbourhood first
    base = w.thresholds[threshold_index]
    t = 0
    for lv in range(0, base - hyst // 2, 5):
        w.update(t, MOUNT - lv)
        t += 10000
    before = len([e for e in events if e["kind"] == "alert"])
    for off in levels:
        w.update(t, MOUNT - (base + off))
        t += 10000
    return len([e for e in events if e["kind"] == "alert"]) - before


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2), st.integers(10, 60), st.data())
def test_flood_alerts_do_not_flap_on_a_level_hovering_at_a_threshold(k, hyst, data):
    half = hyst // 2
    offsets = data.draw(st.lists(st.integers(-half + 1, half - 1), min_size=5, max_size=200))
    assert flood_alert_changes(offsets, k, hyst) <= 1


@settings(max_examples=200, deadline=None)
@given(st.integers(-200, 400), st.integers(-3000, 3000).filter(lambda s: abs(s) > 20),
       st.integers(3, 30), st.integers(1, 30))
def test_flood_level_rejects_a_single_sample_spike(level, spike, before, after):
    level = max(0, level)
    w = WaterLevel("w", [], {"mount_mm": MOUNT, "noise_mm": 15, "dry_zero_mm": 0})
    t = 0
    seen = set()
    for _ in range(before):
        w.update(t, MOUNT - level)
        t += 10000
    w.update(t, max(300, MOUNT - (level + spike)))
    t += 10000
    seen.add(w.level)
    for _ in range(after):
        w.update(t, MOUNT - level)
        t += 10000
        seen.add(w.level)
    assert seen == {level}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-200, 200), min_size=3, max_size=15), st.integers(0, 14), st.integers(500, 3000))
def test_burst_median_ignores_one_wild_ping(noise, which, wild):
    true_mm = 2000
    pings = [true_mm + (n % 21) - 10 for n in noise]
    pings[which % len(pings)] = true_mm + wild if which % 2 else max(260, true_mm - wild)
    got = Ranger(250, 6000).reduce_burst([echo_for_mm(p) for p in pings], Q16_20C)
    assert abs(got - true_mm) <= 11


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 2999)), min_size=1, max_size=60))
def test_dwell_never_flips_on_evidence_shorter_than_the_dwell(runs):
    """Runs of evidence, each shorter than 3 s and each followed by contrary
    readings for at least as long, never flip."""
    d = Dwell(3000, 3000)
    t = 0
    for want, length in runs:
        if want:
            end = t + length
            while t < end:
                assert not d.update(t, True)
                t += 100
        end = t + length + 100
        while t <= end:
            assert not d.update(t, False)
            t += 100
    assert d.state is False


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(-99, 99), min_size=10, max_size=300), st.integers(200, 600))
def test_ultrasonic_bay_does_not_flap_hovering_between_its_thresholds(wobble, enter):
    """Occupied, then a reading wandering strictly between exit and enter
    thresholds: no change at all."""
    events = []
    exit_ = enter - 150
    bay = UltrasonicBay("b", events, {"empty_mm": 2600, "enter_mm": enter, "exit_mm": exit_})
    t = 0
    for _ in range(5):
        bay.update(t, 2600 - enter - 300)
        t += 1000
    assert bay.occupied
    mid = (enter + exit_) // 2
    for w in wobble:
        closer = max(exit_ + 1, min(enter - 1, mid + w))
        bay.update(t, 2600 - closer)
        t += 1000
    assert [e["state"] for e in events] == ["occupied"]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(-50, 50), st.integers(-50, 50), st.integers(-50, 50)),
                min_size=20, max_size=200))
def test_magnetic_bay_ignores_fields_below_its_floors(noise):
    """Any field within 3 µT of the empty bay never occupies it."""
    lsb = 120
    events = []
    bay = MagneticBay("b", events, {"lsb_per_ut": lsb, "enter_ut": 6, "exit_ut": 3})
    t = 0
    for _ in range(12):
        bay.update(t, 2400, 120, 5160)
        t += 1000
    for dx, dy, dz in noise:
        k = 3 * lsb * 10 // 18  # keeps |d| under 3 µT for |components| ≤ 50 scaled by k/50
        bay.update(t, 2400 + dx * k // 50, 120 + dy * k // 50, 5160 + dz * k // 50)
        t += 1000
    assert events == []
