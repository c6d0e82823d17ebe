from citynode.sense import ranging
from citynode.sense.occupancy import MagneticBay, UltrasonicBay

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


def noise(i, spread=24):
    """A deterministic wobble of ±`spread` counts (no random module needed)."""
    return ((i * 7919) % (2 * spread + 1)) - spread


def feed_field(bay, seconds, extra=(0, 0, 0), start_s=0, period_ms=1000, spread=24, dip_every=0):
    """Feed the empty field plus `extra` (counts) for `seconds`, one reading per
    `period_ms`; every `dip_every`-th reading drops back to the empty field
    (a parked car's momentary dip). Returns the end time in seconds."""
    t = start_s * 1000
    end = t + seconds * 1000
    i = 0
    while t < end:
        w = noise(i + t // 100, spread)
        e = (0, 0, 0) if dip_every and i % dip_every == dip_every - 1 else extra
        bay.update(t, EARTH[0] + e[0] + w, EARTH[1] + e[1] - w, EARTH[2] + e[2] + w // 2)
        t += period_ms
        i += 1
    return end // 1000


def occupancy_times(events):
    return [(e["t"], e["state"]) for e in events if e["kind"] == "occupancy"]


CAR = (1800, -600, 2400)  # ≈ 25 µT


def test_magnetometer_calibrates_on_the_empty_bay():
    bay, events = mag_bay()
    feed_field(bay, 8)
    assert not bay.ready  # the field must have been steady for calibrate_s (10 s)
    feed_field(bay, 4, start_s=8)
    assert bay.ready
    assert abs((bay.base[0] >> 4) - EARTH[0]) <= 24  # the wobble is within ±24 counts
    assert states(events) == []


def test_a_car_over_the_magnetometer_occupies_the_bay_and_leaving_frees_it():
    bay, events = mag_bay()
    s = feed_field(bay, 30)
    s = feed_field(bay, 60, CAR, s)
    feed_field(bay, 30, (0, 0, 0), s)
    assert states(events) == ["occupied", "free"]


def test_a_car_in_the_next_bay_does_not_flip_this_one():
    bay, events = mag_bay()
    s = feed_field(bay, 30)
    s = feed_field(bay, 3600, (240, 60, 180), s)  # ≈ 2.5 µT for an hour
    feed_field(bay, 60, (0, 0, 0), s)
    assert states(events) == []


def test_a_car_passing_for_two_seconds_does_not_flip_the_bay():
    bay, events = mag_bay()
    s = feed_field(bay, 30, period_ms=100)
    s = feed_field(bay, 2, (1200, 0, 1200), s, period_ms=100)
    feed_field(bay, 30, (0, 0, 0), s, period_ms=100)
    assert states(events) == []


def test_thresholds_never_fall_below_their_floors():
    bay, events = mag_bay(enter_ut=6, exit_ut=3)
    feed_field(bay, 60)
    enter2, exit2 = bay.thresholds2()
    assert enter2 == (6 * LSB) ** 2
    assert exit2 == (3 * LSB) ** 2


def test_thresholds_follow_the_measured_noise_of_the_smoothed_field():
    quiet, _ = mag_bay()
    noisy, events = mag_bay()
    feed_field(quiet, 120, spread=24)
    feed_field(noisy, 300, spread=2400)  # ±20 µT of interference, read at 1 Hz
    assert quiet.thresholds2() == (quiet.enter_floor2, quiet.exit_floor2)
    s = noisy.sigma()
    enter2, exit2 = noisy.thresholds2()
    assert enter2 == 9 * s * s > noisy.enter_floor2  # 3σ, above the 4 µT floor
    assert exit2 == 25 * s * s >> 2
    assert states(events) == []  # and the interference alone never occupies the bay


def test_noise_that_rises_after_calibration_is_learnt_and_flagged():
    bay, events = mag_bay()
    s = feed_field(bay, 60)  # a quiet calibration
    quiet = bay.thresholds2()
    s = feed_field(bay, 240, start_s=s, spread=2400)  # then ±20 µT of interference, for minutes
    assert bay.thresholds2()[0] > 16 * quiet[0]  # the thresholds followed the noise up
    assert [(e["fault"], e["active"]) for e in events if e["kind"] == "fault"] == [("noisy", True)]
    # its onset, before the noise is learnt, may look like a car; such a
    # "car" is let go once the mean field since the arrival is back at the
    # empty one (a mean over noise_tau_s / 3, then the dwell)
    occ = occupancy_times(events)
    assert len(occ) % 2 == 0
    for i in range(0, len(occ), 2):
        (t_on, on), (t_off, off) = occ[i], occ[i + 1]
        assert on == "occupied" and off == "free" and t_off - t_on <= 10000 + 3000 + 2000
    known = 60000 + 4 * 30000  # four time constants of the noise estimate (noise_tau_s) after the onset
    assert not bay.occupied and all(t < known for t, _s in occ[::2])  # none once the noise is known
    s = feed_field(bay, 120, (0, 0, 720), s, spread=2400)  # a 6 µT car under it is not claimed
    feed_field(bay, 300, start_s=s)  # quiet again
    assert [(e["fault"], e["active"]) for e in events if e["kind"] == "fault"] == [("noisy", True),
                                                                                   ("noisy", False)]
    assert occupancy_times(events) == occ


def test_noise_that_sets_in_is_learnt_before_it_passes_for_a_car_at_1_hz_and_11_hz():
    # ±2 µT, then five to six times more: a change of the field's variance
    # with no shift of its mean; the spread about the level shows it within
    # seconds, before a dwell could call it a car
    for period in (91, 1000):
        for quiet, loud in ((240, 1440), (480, 2400)):
            bay, events = mag_bay()
            s = feed_field(bay, 60, period_ms=period, spread=quiet)
            before = bay.mean
            feed_field(bay, 60, start_s=s, period_ms=period, spread=loud)
            assert occupancy_times(events) == [], (period, quiet, loud, occupancy_times(events))
            assert bay.mean > 2 * before


def test_a_weak_car_on_one_axis_is_seen_at_a_quiet_site():
    bay, events = mag_bay()
    s = feed_field(bay, 30)
    s = feed_field(bay, 120, (0, 0, 720), s)  # 6 µT, z only
    feed_field(bay, 30, (0, 0, 0), s)
    assert states(events) == ["occupied", "free"]


def test_single_reading_dips_of_a_parked_car_do_not_matter_at_any_rate():
    for period in (91, 1000):
        plain, ev_plain = mag_bay()
        dipping, ev_dip = mag_bay()
        for bay, dip in ((plain, 0), (dipping, 4)):
            s = feed_field(bay, 30, period_ms=period)
            s = feed_field(bay, 120, (0, 0, 960), s, period_ms=period, dip_every=dip)  # 8 µT, dips to 0
            feed_field(bay, 30, (0, 0, 0), s, period_ms=period)
        assert states(ev_dip) == states(ev_plain) == ["occupied", "free"], period
        a, b = occupancy_times(ev_dip), occupancy_times(ev_plain)
        for i in range(2):
            assert abs(a[i][0] - b[i][0]) <= period, period


def test_the_same_car_is_decided_within_one_window_at_1_hz_and_at_11_hz():
    slow, ev_slow = mag_bay()
    fast, ev_fast = mag_bay()
    for bay, period in ((slow, 1000), (fast, 91)):
        s = feed_field(bay, 30, period_ms=period)
        s = feed_field(bay, 60, CAR, s, period_ms=period)
        feed_field(bay, 30, (0, 0, 0), s, period_ms=period)
    assert states(ev_slow) == states(ev_fast) == ["occupied", "free"]
    a, b = occupancy_times(ev_slow), occupancy_times(ev_fast)
    for i in range(2):
        assert abs(a[i][0] - b[i][0]) <= 1000 + 1000  # one smoothing window plus one reading at 1 Hz
    assert 30000 + 3000 <= occupancy_times(ev_fast)[0][0] <= 30000 + 4000  # dwell_on_s after the car


def test_a_departure_is_seen_when_the_field_settles_away_from_the_old_empty_field():
    bay, events = mag_bay()
    s = feed_field(bay, 30)
    s = feed_field(bay, 120, CAR, s)
    offset = (-480, 360, 300)  # the empty field comes back ≈ 6.7 µT away
    s = feed_field(bay, 60, offset, s)
    assert occupancy_times(events)[1] == (30 + 120 + 4) * 1000 - 0 or \
        (30 + 120) * 1000 < occupancy_times(events)[1][0] <= (30 + 120 + 6) * 1000
    assert states(events) == ["occupied", "free"]
    d = bay.last_dev2
    assert d < bay.exit_floor2  # the new empty field was learnt
    feed_field(bay, 60, (offset[0] + CAR[0], offset[1] + CAR[1], offset[2] + CAR[2]), s)
    assert states(events) == ["occupied", "free", "occupied"]  # and the next car is seen against it


def test_a_parked_car_that_sits_still_is_never_learnt_as_empty():
    bay, events = mag_bay()
    s = feed_field(bay, 30)
    for step in range(24):  # 4 hours, its field drifting by 0.3 µT every 10 minutes
        s = feed_field(bay, 600, (720 + 36 * step, 0, 36 * step), s)
    assert states(events) == ["occupied"]
    assert bay.occupied


def test_restart_forgets_evidence_but_keeps_the_site():
    bay, events = mag_bay()
    s = feed_field(bay, 30)
    base = list(bay.base)
    s = feed_field(bay, 2, CAR, s)
    bay.restart(s * 1000)
    assert events == [] and bay.base == base and not bay.occupied
    s = feed_field(bay, 2, CAR, s)
    assert states(events) == []  # 2 s + 2 s of evidence split by the restart: not enough
    feed_field(bay, 5, CAR, s)
    assert states(events) == ["occupied"]
    bay.restart(0)
    assert bay.occupied and bay.base is not None and events[1:] == []


def test_ultrasonic_restart_keeps_the_floor_and_forgets_the_dwell():
    bay, events = us_bay()
    t = feed(bay, [FLOOR] * 5 + [1150] * 2)
    bay.restart(t)
    t = feed(bay, [1150] * 3, t)
    assert states(events) == [] and bay.empty_mm == FLOOR
    feed(bay, [1150] * 2, t)
    assert states(events) == ["occupied"]


def test_long_gaps_and_backward_ticks_neither_raise_nor_freeze():
    bay, events = mag_bay()
    s = feed_field(bay, 30)
    for t in (s * 1000 - 5000, (1 << 30) - 1, 3, 1 << 29, -(1 << 31), 1 << 31):  # aliased, wrapped, absurd
        bay.update(t, EARTH[0], EARTH[1], EARTH[2])
    assert states(events) == []
    s = feed_field(bay, 30, (0, 0, 0), 100000)
    s = feed_field(bay, 30, CAR, s)
    assert states(events) == ["occupied"]


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
    s = feed_field(bay, 30, CAR, s)
    bay.recalibrate()
    assert bay.base is None and not bay.occupied
    feed_field(bay, 12, (0, 0, 0), s)
    assert bay.base is not None


def test_the_baseline_tracks_temperature_drift_while_free():
    bay, events = mag_bay(drift_tau_s=300)
    s = feed_field(bay, 30)
    for step in range(1, 11):  # 1 µT per axis more each 10 minutes
        s = feed_field(bay, 600, (step * 12, step * 12, step * 12), s)
    assert abs((bay.base[0] >> 4) - (EARTH[0] + 120)) <= 30  # within 0.25 µT
    assert states(events) == []
