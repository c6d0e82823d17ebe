from citynode.sense.filters import FaultWatch, Stuck, follow
from citynode.sense.occupancy import Dwell, smooth


def test_follow_closes_most_of_the_gap_in_a_few_time_constants():
    est = 0
    for _ in range(300):  # 300 s at 1 Hz, tau 60 s: five time constants
        est = follow(est, 1000 << 8, 1000, 60000)
    assert abs((est >> 8) - 1000) <= 20  # e^-5 is 0.7 %; the clamp on large errors slows the start


def test_follow_is_in_time_not_in_samples():
    slow = fast = 0
    for _ in range(60):
        slow = follow(slow, 1000 << 8, 1000, 60000)
    for _ in range(600):
        fast = follow(fast, 1000 << 8, 100, 60000)
    assert abs(slow - fast) < 2 << 8


def test_follow_keeps_its_time_constant_at_slow_sampling():
    every_second = every_minute = 0
    for _ in range(1800):
        every_second = follow(every_second, 100 << 8, 1000, 1800000)
    for _ in range(30):
        every_minute = follow(every_minute, 100 << 8, 60000, 1800000)
    assert abs(every_second - every_minute) < 3 << 8  # truncating each step costs the 1 s steps a little
    assert 60 <= every_minute >> 8 <= 66  # 1 - 1/e of the way after one time constant


def test_follow_truncates_toward_zero_so_it_never_drifts():
    assert follow(500, 501, 10, 60000) == 500
    assert follow(500, 499, 10, 60000) == 500


def test_follow_never_overshoots_and_bounds_its_products():
    assert follow(0, 100, 10 ** 9, 1000) == 100
    assert follow(0, 10 ** 9, 10000, 10000) == 100000


def test_dwell_flips_after_an_unbroken_run_of_its_dwell_time():
    d = Dwell(3000, 1000)
    assert not d.update(0, True)
    assert not d.update(2000, True)
    assert d.update(3000, True)
    assert d.state
    assert not d.update(3500, None)  # no evidence changes nothing
    assert not d.update(4000, False)
    assert d.update(5000, False)
    assert not d.state


def test_a_single_contrary_reading_only_pauses_the_dwell():
    d = Dwell(3000, 3000)
    for t in range(0, 2000, 100):
        assert not d.update(t, True)
    assert not d.update(2000, False)  # one dip: the two intervals beside it count half
    for t in range(2100, 3100, 100):
        assert not d.update(t, True)
    assert d.update(3100, True)  # 3.1 s after the run began: paused one interval


def test_contrary_evidence_erases_support_as_fast_as_it_came():
    d = Dwell(3000, 3000)
    for t in range(0, 2100, 100):
        d.update(t, True)  # 2 s of support
    for t in range(2100, 4300, 100):
        d.update(t, False)  # then 2.2 s against
    assert d.acc == 0
    for t in range(4300, 7200, 100):
        assert not d.update(t, True)  # so the next 2.9 s start from nothing


def test_the_dwell_is_the_same_in_time_at_any_rate_and_safe_for_any_interval():
    for period in (91, 1000):
        d = Dwell(3000, 3000)
        t = 0
        while not d.update(t, True):
            t += period
        assert 3000 <= t < 3000 + period
    d = Dwell(3000, 3000)
    d.update(0, True)
    assert not d.update(-5000, True)  # backwards (aliased ticks): counts nothing
    assert d.update(1 << 28, True)  # a very long interval counts as one full dwell
    d.reset(True)
    assert d.state and d.acc == 0


def test_smooth_averages_about_twice_its_time_constant_at_any_rate():
    for period in (100, 1000):
        est = 0
        for _ in range(10000 // period):
            est = smooth(est, 1000 << 4, period, 500)
        assert (1000 << 4) - est < 16, period  # reaches the target within a count
    assert smooth(0, 1000, 500, 500) == 500  # half the gap at dt = tau: it smooths sparse readings too
    assert smooth(0, 1000, 50, 500) == 90


def test_smooth_is_safe_for_any_interval_and_never_overshoots():
    assert smooth(100, 900, 0, 500) == smooth(100, 900, -7000, 500) == 100
    assert smooth(100, 900, 1 << 29, 500) == 900
    assert smooth(0, (1 << 22) - 1, 1 << 20, 300000) < (1 << 22)  # large gap, long interval: bounded
    assert smooth(500, 499, 10, 60000) == 500  # truncated toward zero: no drift
    assert smooth(-500, -1000, 100000, 100000) == -750


def test_fault_watch_raises_after_its_time_and_clears_once():
    events = []
    f = FaultWatch("s", events, 30000)
    for t in range(0, 40000, 10000):
        f.fault(t, "no_echo")
    f.ok(40000)
    f.ok(41000)
    assert [(e["t"], e["fault"], e["active"]) for e in events] == [
        (30000, "no_echo", True), (40000, "no_echo", False)]


def test_a_single_faulted_reading_is_not_a_fault():
    events = []
    f = FaultWatch("s", events, 0)
    f.fault(0, "no_echo")
    f.ok(1000)
    assert events == []


def test_stuck_counts_identical_readings_in_a_row_from_the_first():
    s = Stuck(3)
    assert [s.seen(r) for r in [(1, 2), (1, 2), (1, 2), (1, 2), (1, 3), (1, 3)]] == \
        [False, False, True, True, False, False]
    assert s.run == 2
    never = Stuck(0)
    assert not any(never.seen(7) for _ in range(100))
