from citynode import ticks
from citynode.config import check_sensor
from citynode.sense import ranging
from citynode.sense.flood import ABOVE_MAX, ALERT_NAMES, CLEAR, OBSTRUCTED, PENDING, WaterLevel

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
        w.update(t & ticks.MASK, lv if lv in ranging.FAULT_NAMES else at(lv))
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


def changes(events):
    """Alert and fault events as (t_s, what, from/active, level_mm) tuples."""
    out = []
    for e in events:
        if e["kind"] == "alert":
            out.append((e["t"] // 1000, e["alert"], e["was"], e["level_mm"]))
        else:
            out.append((e["t"] // 1000, e["fault"], e["active"]))
    return out


def test_a_flood_deeper_than_max_level_is_published_at_max_with_a_fault_and_followed_down():
    # New York saw 1,038 mm: 6 mm per 10 s up to 1038 mm, then down at the same pace
    w, events = water(max_level_mm=800)
    up = [i * 6 for i in range(174)]
    down = [1038 - i * 6 for i in range(1, 174)]
    published = []
    t = 0
    for lv in up + down + [0] * 30:
        w.update(t, at(lv))
        published.append(w.level)
        t += 10000
    assert published[0] is None and max(published[1:]) == 800
    assert published[134:213] == [800] * 79  # from 804 mm (reading 134) up, and down to 804 mm
    assert published[213:217] == [798, 792, 786, 780]
    assert changes(events) == [
        (90, "watch", "normal", 54),
        (250, "warning", "watch", 150),
        (500, "danger", "warning", 300),
        (1340, ABOVE_MAX, True),
        (2160, ABOVE_MAX, False),
        (3000, "warning", "danger", 276),  # the first reading below 280 mm: not 11 hours later
        (3250, "watch", "warning", 126),
        (3420, "normal", "watch", 24),
    ]
    assert w.level == 0 and w.level_fault is None


def test_a_level_creeping_up_by_less_than_the_noise_never_passes_max_level_as_clear():
    w, events = water(max_level_mm=800, noise_mm=15)
    feed_levels(w, range(700, 900, 10))
    assert w.level == 800 and w.level_fault == ABOVE_MAX
    assert [c for c in changes(events) if c[1] == ABOVE_MAX] == [(110, ABOVE_MAX, True)]


def test_receding_water_is_followed_down_after_an_obstruction():
    w, events = water()
    t = feed_levels(w, [500 - i for i in range(0, 20)])  # 500 mm, receding 1 mm per 10 s
    # a van stands under the sensor for 12 minutes while the water recedes
    t = feed_levels(w, [2300] * 72, t)
    assert w.level == 481 and w.mode == OBSTRUCTED
    feed_levels(w, [400 - 3 * i for i in range(50)], t)
    assert w.level == 253
    assert changes(events) == [
        (10, "danger", "normal", 499),
        (800, "view_obstructed", True),
        (930, "view_obstructed", False),
        (1330, "warning", "danger", 277),
    ]


def test_an_obstruction_expires_and_the_level_follows_readings_that_agree():
    w, events = water(obstruction_s=300)
    t = feed_levels(w, [100] * 10)
    # readings 500 mm above the level, a step water cannot make in 10 s, that go on agreeing
    t = feed_levels(w, [600, 602, 601] * 12, t)
    assert changes(events) == [(10, "watch", "normal", 100), (400, "danger", "watch", 600)]
    assert w.level == 601 and w.mode == CLEAR


def test_false_echoes_in_pairs_ten_minutes_apart_never_raise_an_alert():
    # a logger read every 10 minutes; the evening sun on the transducer gives
    # two false echoes in a row, five evenings running
    w, events = water()
    evening = [0] * 20 + [420, 410] + [0] * 10 + [180, 185] + [0] * 20 + [350, 352] + [0] * 10
    t = 0
    for _ in range(5):
        t = feed_levels(w, evening, t, period_ms=600000)
        assert w.level == 0
    assert events == []


def test_three_agreeing_readings_ten_minutes_apart_are_followed():
    w, events = water()
    t = feed_levels(w, [0] * 6, period_ms=600000)
    feed_levels(w, [200, 205, 210, 212], t, period_ms=600000)
    assert changes(events) == [(4800, "warning", "normal", 210)]
    assert w.level == 212


def test_a_burst_of_false_echoes_shorter_than_the_obstruction_limit_never_becomes_the_level():
    w, events = water(obstruction_s=300)
    t = feed_levels(w, [0] * 30)
    t = feed_levels(w, [450] * 30, t)  # 290 s from the first to the last
    feed_levels(w, [0] * 30, t)
    assert events == [] and w.level == 0
    # the same burst one reading longer lasts 300 s: it becomes the level
    w, events = water(obstruction_s=300)
    t = feed_levels(w, [0] * 30)
    feed_levels(w, [450] * 31, t)
    assert changes(events) == [(600, "danger", "normal", 450)]


def gap_then_flood(gap_ms, fault_every_ms=0):
    """A dry road, then a silence of `gap_ms` (or faulted bursts all through
    it), then water at 300 mm: the alert must come on the second reading."""
    w, events = water()
    t = feed_levels(w, [0] * 30)
    if fault_every_ms:
        end = t + gap_ms
        while t < end:
            w.update(t & ticks.MASK, ranging.NO_ECHO)
            t += fault_every_ms
    else:
        t += gap_ms
    before = len(events)
    feed_levels(w, [300, 302, 303], t)
    return w, [c[1:] for c in changes(events[before:])]


def test_after_gaps_of_a_week_two_weeks_or_forty_days_the_level_is_not_frozen():
    day = 86400000
    for gap in (7 * day, 13 * day, 40 * day, 6 * day + 5 * 3600000):
        w, new = gap_then_flood(gap)
        assert new == [("danger", "normal", 302)], (gap, new)
        assert w.level == 303


def test_a_week_of_faulted_bursts_does_not_freeze_the_level():
    w, new = gap_then_flood(7 * 86400000, fault_every_ms=600000)
    assert new == [("no_echo", False), ("danger", "normal", 302)]
    assert w.level == 303


def test_a_tick_that_goes_backwards_does_not_freeze_the_level():
    w, events = water()
    feed_levels(w, [0] * 30, start_ms=1000000)
    feed_levels(w, [300, 302, 303], start_ms=400000)  # 600 s earlier than the last reading
    assert changes(events) == [(410, "danger", "normal", 302)]
    feed_levels(w, [2000] * 5 + [310, 311], start_ms=430000)
    assert w.level == 311


def test_restart_forgets_waiting_readings_and_keeps_the_alert_until_a_new_level():
    twins = [water(obstruction_s=300), water(obstruction_s=300)]
    for w, _ in twins:
        t = feed_levels(w, [0] * 10 + [i * 20 for i in range(1, 21)])  # to 400 mm
        assert ALERT_NAMES[w.alert] == "danger"
        t = feed_levels(w, [700] * 30, t)  # a jump for 290 s: not yet the level
        assert w.level == 400
    (kept, _), (w, events) = twins
    feed_levels(kept, [700], t)
    assert kept.level == 700  # without a restart, the 300th second makes it the level
    before = len(events)
    w.restart(t)
    assert w.level == 400 and ALERT_NAMES[w.alert] == "danger" and w.rate_mm_min == 0
    feed_levels(w, [700], t)  # the run starts again
    assert w.level == 400 and events[before:] == []
    w.restart(t + 86400000)
    feed_levels(w, [100, 101], t + 86400000)
    assert [c[1:] for c in changes(events[before:])] == [("watch", "danger", 101)]
    assert w.level == 101 and w.next_ms() == w.fast_ms


def test_restart_keeps_the_dry_road_zero_trim():
    w, _ = water(dry_tau_s=600)
    t = feed_levels(w, [-8] * 360, period_ms=60000)
    zero = w.zero_q8
    assert zero < 0
    w.restart(t)
    assert w.zero_q8 == zero
    feed_levels(w, [-8, -8], t)
    assert w.level == 0


def test_any_reading_or_unknown_fault_code_is_taken_without_raising():
    w, events = water()
    t = 0
    for mm in (0, -99, 10 ** 12, -(10 ** 12), 3500, 0, 7, 1 << 40, 2, 3, 3400, 3399):
        w.update(t, mm)
        t += 10000
    assert w.level is not None and w.level <= w.max_level_mm


def test_two_readings_confirm_each_other_only_within_the_obstruction_limit():
    for period_s, accepted in ((240, True), (300, True), (310, False), (600, False)):
        w, _ = water(obstruction_s=300)
        t = feed_levels(w, [0] * 4, period_ms=period_s * 1000)
        feed_levels(w, [200, 204], t, period_ms=period_s * 1000)
        assert (w.level == 204) == accepted, period_s


def test_the_sensor_check_takes_obstruction_s_as_a_number_of_seconds():
    check_sensor({"id": "street", "type": "water", "obstruction_s": 300})
    check_sensor({"id": "street", "type": "water", "obstruction_s": 0})
    for bad in (-1, "300", True, None):
        try:
            check_sensor({"id": "street", "type": "water", "obstruction_s": bad})
        except ValueError as e:
            assert "obstruction_s" in str(e), str(e)
        else:
            raise AssertionError("accepted obstruction_s %r" % (bad,))
