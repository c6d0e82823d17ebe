from citynode import ranging
from citynode.occupancy import MagneticBay, UltrasonicBay

FLOOR = 2600


def us_bay(**cfg):
    events = []
    c = {"empty_mm": FLOOR}
    c.update(cfg)
    return UltrasonicBay("bay-1", events, c), events


def feed(bay, readings, start_ms=0, period_ms=1000):
    """Feed (distance or fault) readings one per period; returns the end tick."""
    t = start_ms
    for mm in readings:
        bay.update(t, mm)
        t += period_ms
    return t


def states(events):
    return [e["state"] for e in events if e["kind"] == "occupancy"]


def test_a_parked_car_is_occupied_after_the_dwell_time():
    bay, events = us_bay()
    t = feed(bay, [FLOOR] * 10)
    feed(bay, [1150] * 3, t)
    assert states(events) == []  # 2 s of car: not yet
    bay.update(t + 3000, 1150)
    assert states(events) == ["occupied"]
    assert events[-1]["t"] == t + 3000


def test_the_car_leaving_frees_the_bay():
    bay, events = us_bay()
    t = feed(bay, [FLOOR] * 5 + [1150] * 20)
    feed(bay, [FLOOR] * 5, t)
    assert states(events) == ["occupied", "free"]


def test_a_person_walking_through_does_not_flip_the_bay():
    bay, events = us_bay()
    feed(bay, [FLOOR] * 5 + [850, 800, 900] + [FLOOR] * 5 + [820, 810] + [FLOOR] * 5)
    assert states(events) == []


def test_a_tall_van_in_the_blind_zone_counts_as_occupied():
    bay, events = us_bay()
    feed(bay, [FLOOR] * 5 + [ranging.BLIND_ZONE] * 6)
    assert states(events) == ["occupied"]
    assert [e for e in events if e["kind"] == "fault"] == []


def test_faulted_readings_neither_confirm_nor_interrupt_the_dwell():
    bay, events = us_bay()
    feed(bay, [FLOOR] * 5 + [1150, ranging.NO_ECHO, ranging.NO_ECHO, 1150])
    assert states(events) == ["occupied"]


def test_a_dead_sensor_raises_a_fault_and_never_an_occupancy():
    bay, events = us_bay(fault_after_s=30)
    t = feed(bay, [FLOOR] * 5 + [ranging.NO_ECHO] * 40)
    feed(bay, [FLOOR], t)
    faults = [e for e in events if e["kind"] == "fault"]
    assert [(f["fault"], f["active"]) for f in faults] == [("no_echo", True), ("no_echo", False)]
    assert faults[0]["t"] == 35000
    assert states(events) == []


def test_hysteresis_holds_a_car_reading_between_exit_and_enter():
    bay, events = us_bay(enter_mm=400, exit_mm=250)
    # occupied, then readings only 300 mm closer than empty: still occupied
    feed(bay, [FLOOR] * 3 + [1150] * 6 + [FLOOR - 300] * 20)
    assert states(events) == ["occupied"]


def test_dwell_is_in_seconds_whatever_the_sample_rate():
    slow, ev_slow = us_bay()
    fast, ev_fast = us_bay()
    feed(slow, [FLOOR] * 5 + [1150] * 10, 0, 1000)
    feed(fast, [FLOOR] * 50 + [1150] * 100, 0, 100)
    assert ev_slow[0]["t"] - 5000 == 3000
    assert ev_fast[0]["t"] - 5000 == 3000


def test_the_empty_reference_is_learned_when_not_configured():
    events = []
    bay = UltrasonicBay("bay-1", events, {"calibrate_s": 5})
    feed(bay, [2590, 2610, 2600, 2605, 2595, 2600])
    assert bay.empty_mm == 2600
    feed(bay, [1150] * 5, 6000)
    assert states(events) == ["occupied"]


def test_the_empty_reference_follows_slow_drift_only_while_free():
    bay, events = us_bay(drift_tau_s=60)
    t = feed(bay, [2640] * 600)  # 10 min, floor reads 40 mm farther (warm day)
    assert abs(bay.empty_mm - 2640) <= 2
    t = feed(bay, [1150] * 600, t)  # a car for 10 min: not learned
    assert abs(bay.empty_mm - 2640) <= 2


def test_recalibrate_learns_the_floor_again():
    bay, events = us_bay()
    feed(bay, [FLOOR] * 5 + [1150] * 10)
    bay.recalibrate()
    assert not bay.occupied and bay.empty_mm is None
    feed(bay, [2500] * 8, 20000)
    assert bay.empty_mm == 2500


# -- magnetometer ------------------------------------------------------------

LSB = 120
EARTH = (2400, 120, 5160)  # counts: (20, 1, 43) µT


def mag_bay(**cfg):
    events = []
    c = {"lsb_per_ut": LSB}
    c.update(cfg)
    return MagneticBay("bay-3", events, c), events


def noise(i):
    """A deterministic ±0.2 µT-ish wobble (no random module needed)."""
    return ((i * 7919) % 49) - 24


def feed_field(bay, seconds, extra=(0, 0, 0), start_s=0, period_ms=1000):
    t = start_s * 1000
    n = seconds * 1000 // period_ms
    for i in range(n):
        w = noise(i + start_s)
        bay.update(t, EARTH[0] + extra[0] + w, EARTH[1] + extra[1] - w, EARTH[2] + extra[2] + w // 2)
        t += period_ms
    return t // 1000


def test_magnetometer_calibrates_on_the_empty_bay():
    bay, events = mag_bay()
    feed_field(bay, 12)
    assert bay.base is not None
    assert abs((bay.base[0] >> 8) - EARTH[0]) <= 24  # the wobble is within ±24 counts
    assert states(events) == []


def test_a_car_over_the_magnetometer_occupies_the_bay_and_leaving_frees_it():
    bay, events = mag_bay()
    s = feed_field(bay, 30)
    s = feed_field(bay, 60, (1800, -600, 2400), s)  # ≈ 25 µT
    s = feed_field(bay, 30, (0, 0, 0), s)
    assert states(events) == ["occupied", "free"]


def test_a_car_in_the_next_bay_does_not_flip_this_one():
    bay, events = mag_bay()
    s = feed_field(bay, 30)
    s = feed_field(bay, 3600, (240, 60, 180), s)  # ≈ 2.5 µT for an hour
    feed_field(bay, 60, (0, 0, 0), s)
    assert states(events) == []


def test_a_car_passing_for_two_seconds_does_not_flip_the_bay():
    bay, events = mag_bay()
    s = feed_field(bay, 30)
    s = feed_field(bay, 2, (1200, 0, 1200), s)
    feed_field(bay, 30, (0, 0, 0), s)
    assert states(events) == []


def test_thresholds_never_fall_below_their_floors():
    bay, events = mag_bay(enter_ut=6, exit_ut=3)
    feed_field(bay, 12)
    enter2, exit2 = bay.thresholds2()
    assert enter2 == (6 * LSB) ** 2
    assert exit2 == (3 * LSB) ** 2


def test_noisy_sensor_raises_the_thresholds_to_3_and_1_5_sigma():
    bay, events = mag_bay(enter_ut=0.1, exit_ut=0.1)
    feed_field(bay, 12)
    enter2, exit2 = bay.thresholds2()
    assert enter2 == 9 * bay.var
    assert exit2 == 9 * bay.var // 4


def test_the_baseline_tracks_temperature_drift_while_free():
    bay, events = mag_bay(drift_tau_s=300)
    s = feed_field(bay, 30)
    for step in range(1, 11):  # 1 µT per axis more each 10 minutes
        s = feed_field(bay, 600, (step * 12, step * 12, step * 12), s)
    assert abs((bay.base[0] >> 8) - (EARTH[0] + 120)) <= 8
    assert states(events) == []


def test_the_magnetometer_dwell_is_in_seconds():
    bay, events = mag_bay()
    s = feed_field(bay, 30, period_ms=100)
    feed_field(bay, 10, (1800, 0, 1800), s, period_ms=100)
    assert events[0]["t"] == 33000


def test_a_magnetometer_that_stops_answering_raises_a_fault():
    bay, events = mag_bay()
    feed_field(bay, 20)
    for s in range(20, 60):
        bay.fault(s * 1000, "no_answer")
    feed_field(bay, 1, (0, 0, 0), 60)
    faults = [(e["fault"], e["active"]) for e in events if e["kind"] == "fault"]
    assert faults == [("no_answer", True), ("no_answer", False)]
    assert states(events) == []


def test_magnetometer_recalibrate_forgets_the_baseline():
    bay, events = mag_bay()
    s = feed_field(bay, 30)
    s = feed_field(bay, 30, (1800, 0, 1800), s)
    bay.recalibrate()
    assert bay.base is None and not bay.occupied
    feed_field(bay, 12, (0, 0, 0), s)
    assert bay.base is not None
