from citynode import ranging
from citynode.flood import ALERT_NAMES, CLEAR, OBSTRUCTED, PENDING, WaterLevel

MOUNT = 3500


def water(**cfg):
    events = []
    c = {"mount_mm": MOUNT}
    c.update(cfg)
    return WaterLevel("street", events, c), events


def at(level_mm):
    """The distance the sensor reads for a water level."""
    return MOUNT - level_mm


def feed_levels(w, levels, start_ms=0, period_ms=10000):
    """Feed water levels (mm), or ranging faults given as ranging.NO_ECHO etc."""
    t = start_ms
    for lv in levels:
        w.update(t, lv if lv in ranging.FAULT_NAMES else at(lv))
        t += period_ms
    return t


def alerts(events):
    return [e["alert"] for e in events if e["kind"] == "alert"]


def test_level_is_mount_height_minus_distance():
    w, _ = water()
    feed_levels(w, [120, 121])
    assert w.level == 121
    assert w.mode == CLEAR


def test_the_first_reading_alone_is_not_trusted():
    w, _ = water()
    feed_levels(w, [1700])  # a person under the sensor at boot
    assert w.level is None
    feed_levels(w, [0, 2], 10000)
    assert w.level == 2


def test_a_single_sample_spike_up_is_rejected():
    w, events = water()
    feed_levels(w, [0] * 5 + [90] + [0] * 3)
    assert w.level == 0
    assert alerts(events) == []


def test_a_single_sample_spike_down_is_rejected():
    w, _ = water()
    feed_levels(w, [200] * 5 + [120])
    assert w.level == 200 and w.mode == PENDING
    feed_levels(w, [201], 60000)
    assert w.level == 201


def test_a_confirmed_change_is_accepted_on_the_second_reading():
    w, _ = water()
    feed_levels(w, [0] * 3 + [40, 41])
    assert w.level == 41


def test_a_person_or_a_truck_is_an_obstruction_not_a_flood():
    w, events = water()
    feed_levels(w, [0] * 5 + [1700, 1720] + [0] * 3 + [2300] * 40 + [0] * 3, period_ms=60000)
    assert alerts(events) == []
    assert max(e.get("level_mm", 0) for e in events) == 0
    assert w.level == 0


def test_a_long_obstruction_raises_a_view_obstructed_fault():
    w, events = water(obstructed_fault_s=600)
    t = feed_levels(w, [0] * 3 + [1450] * 70)
    assert w.mode == OBSTRUCTED
    faults = [(e["fault"], e["active"]) for e in events if e["kind"] == "fault"]
    assert faults == [("view_obstructed", True)]
    feed_levels(w, [3, 2], t)
    faults = [(e["fault"], e["active"]) for e in events if e["kind"] == "fault"]
    assert faults == [("view_obstructed", True), ("view_obstructed", False)]
    assert alerts(events) == []


def test_nothing_above_the_deepest_credible_water_is_accepted():
    w, events = water(max_level_mm=800)
    # a bin left under the sensor for hours after a car drove away
    feed_levels(w, [0] * 3 + [1500] * 100 + [1050] * 200 + [0] * 3)
    assert alerts(events) == []


def test_water_rising_under_a_parked_car_is_seen_when_it_leaves():
    w, events = water()
    t = feed_levels(w, [0] * 3 + [1450] * 180)  # 30 min
    feed_levels(w, [180, 182, 184], t)
    assert w.level == 184
    assert [(e["was"], e["alert"]) for e in events if e["kind"] == "alert"] == [("normal", "warning")]


def test_a_rising_flood_walks_up_every_alert_in_order():
    w, events = water()
    levels = [i * 3 for i in range(0, 150)]  # 3 mm per 10 s, to 447 mm
    feed_levels(w, levels)
    assert alerts(events) == ["watch", "warning", "danger"]
    onsets = [e["level_mm"] for e in events if e["kind"] == "alert"]
    assert onsets[0] >= 50 and onsets[0] < 56
    assert onsets[2] >= 300 and onsets[2] < 306


def test_alerts_fall_back_only_below_the_hysteresis():
    w, events = water(hysteresis_mm=20)
    feed_levels(w, list(range(0, 160, 5)) + list(range(160, 125, -5)))
    assert alerts(events) == ["watch", "warning"]
    feed_levels(w, [125, 120], 400000)
    assert alerts(events) == ["watch", "warning", "watch"]


def test_rate_of_rise_is_reported_in_mm_per_minute():
    w, _ = water()
    feed_levels(w, [i * 5 for i in range(40)])  # 5 mm per 10 s = 30 mm/min
    assert w.rate_mm_min == 30


def test_sampling_is_slow_when_dry_and_fast_when_moving():
    w, _ = water(fast_s=10, slow_s=60)
    feed_levels(w, [0] * 40, period_ms=60000)
    assert w.next_ms() == 60000
    feed_levels(w, [25], 40 * 60000)  # something changed: look again soon
    assert w.next_ms() == 10000


def test_sampling_stays_fast_while_alerting():
    w, _ = water()
    feed_levels(w, list(range(0, 80, 4)) + [80] * 100)
    assert ALERT_NAMES[w.alert] == "watch"
    assert w.next_ms() == w.fast_ms


def test_a_faulted_burst_is_retried_fast_and_a_dead_sensor_reported():
    w, events = water(fault_after_s=60)
    feed_levels(w, [0] * 40, period_ms=60000)
    w.update(40 * 60000, ranging.NO_ECHO)
    assert w.next_ms() == w.fast_ms
    t = 40 * 60000
    for _ in range(8):
        t += 10000
        w.update(t, ranging.NO_ECHO)
    assert [(e["fault"], e["active"]) for e in events if e["kind"] == "fault"] == [("no_echo", True)]
    assert w.next_ms() == w.slow_ms


def test_a_dry_road_that_reads_a_few_mm_off_is_brought_back_to_zero():
    w, _ = water(dry_tau_s=600)
    feed_levels(w, [-8] * 360, period_ms=60000)  # six hours dry, reading 8 mm low
    assert w.level == 0


def test_standing_water_deeper_than_the_noise_is_not_learned_as_dry():
    w, _ = water(dry_tau_s=600)
    t = feed_levels(w, [0] * 30 + [i for i in range(0, 40, 2)], period_ms=60000)
    feed_levels(w, [40] * 300, t, period_ms=60000)
    assert w.level == 40


def test_a_road_that_reads_high_is_never_trimmed_down():
    w, _ = water(dry_tau_s=600)
    feed_levels(w, [8] * 360, period_ms=60000)
    assert w.level == 8


def test_the_dry_zero_never_moves_more_than_its_limit():
    w, _ = water(dry_tau_s=600, dry_zero_mm=5, noise_mm=15)
    feed_levels(w, [-12] * 600, period_ms=60000)
    assert w.level == -7
