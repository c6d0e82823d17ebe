from citynode import ticks


def test_add_wraps_at_two_to_the_thirty():
    assert ticks.add(ticks.MASK, 1) == 0
    assert ticks.add(5, -10) == ticks.PERIOD - 5


def test_diff_is_signed_across_the_wrap():
    a = ticks.add(ticks.MASK - 100, 500)
    assert ticks.diff(a, ticks.MASK - 100) == 500
    assert ticks.diff(ticks.MASK - 100, a) == -500


def test_clock_maps_ticks_to_epoch_seconds():
    c = ticks.Clock(1783987200, 0)
    assert c.epoch(0) == 1783987200
    assert c.epoch(999) == 1783987200
    assert c.epoch(1000) == 1783987201
    assert c.epoch(61500) == 1783987261


def test_clock_keeps_counting_past_the_tick_wrap():
    c = ticks.Clock(1000, ticks.MASK - 5000)
    t = ticks.MASK - 5000
    for _ in range(4000):  # 4000 hours: the ticks wrap more than 13 times
        t = ticks.add(t, 3600000)
        c.epoch(t)
    assert c.epoch(t) == 1000 + 4000 * 3600


def test_clock_answers_for_a_tick_just_before_its_anchor():
    c = ticks.Clock(5000, 0)
    c.epoch(10000)
    assert c.epoch(9000) == 5009


def test_clock_takes_a_silence_longer_than_the_ticks_measure():
    c = ticks.Clock(1000, 0)
    c.epoch(1500)
    forty_days = 40 * 86400000
    t = ticks.add(1500, forty_days)  # the ticks wrapped three times and more
    c.advance(1500, t, forty_days)
    assert c.epoch(t) == 1001 + 40 * 86400
    assert c.epoch(ticks.add(t, 2500)) == 1004 + 40 * 86400


def test_clock_advance_from_a_tick_before_its_anchor():
    c = ticks.Clock(1000, 0)
    c.epoch(5000)  # anchored at 5 s
    c.advance(4000, 100, 0)  # tick 100 is tick 4000's time: a step back of the ticks
    assert c.epoch(100) == 1004
    assert c.epoch(1100) == 1005


def test_clock_keep_moves_the_anchor_only_once_it_is_a_day_old():
    c = ticks.Clock(1000, 0)
    c.keep(ticks.KEEP_MS - 1)
    assert c._t == 0  # younger than a day: untouched (no large-int arithmetic)
    t = 0
    for _ in range(30):  # 30 days of samples every 5 hours, never a publish
        t = ticks.add(t, 5 * 3600000)
        c.keep(t)
    assert c.epoch(t) == 1000 + 30 * 5 * 3600

