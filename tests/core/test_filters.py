from citynode.filters import Dwell, FaultWatch, follow


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


def test_dwell_needs_uninterrupted_evidence():
    d = Dwell(3000, 1000)
    assert not d.update(0, True)
    assert not d.update(2000, True)
    assert not d.update(2500, False)  # interrupted: start again
    assert not d.update(3000, True)
    assert d.update(6000, True)
    assert d.state
    assert not d.update(6500, None)  # no evidence changes nothing
    assert not d.update(7000, False)
    assert d.update(8000, False)
    assert not d.state


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
