"""Properties of the flood level (citynode.sense.flood.WaterLevel) for any input,
checked with hypothesis: it never raises on a number, and it never holds a
level longer than the obstruction limit while the readings agree."""

from hypothesis import given, settings
from hypothesis import strategies as st

from citynode import ticks
from citynode.sense.flood import ABOVE_MAX, ALERT_NAMES, LONG_MS, MODE_NAMES, WaterLevel, elapsed
from citynode.sense.ranging import FAULT_NAMES, NO_ECHO

# any tick step: negative, zero, ms, minutes, days, past the 2**30 wrap
gaps = st.one_of(st.integers(-(1 << 31), 1 << 31), st.integers(0, 120000),
                 st.sampled_from([10000, 60000, 600000, 7 * 86400000, 13 * 86400000, 40 * 86400000]))
readings = st.one_of(st.integers(-10, 6000), st.integers(-(1 << 70), 1 << 70),
                     st.sampled_from(sorted(FAULT_NAMES)))
configs = st.fixed_dictionaries({
    "mount_mm": st.integers(500, 6000), "noise_mm": st.integers(0, 60),
    "max_level_mm": st.integers(0, 3000), "obstruction_s": st.integers(0, 3600),
    "obstructed_fault_s": st.integers(0, 3600), "max_rise_mm_min": st.integers(0, 2000),
    "fast_s": st.integers(1, 60), "slow_s": st.integers(60, 600),
})


def check(w):
    assert w.level is None or (type(w.level) is int and w.level <= w.max_level_mm)
    if w._raw is not None:  # the published level is the last accepted reading, capped, with its fault
        assert w.level == min(w._raw, w.max_level_mm)
        assert w.level_fault == (ABOVE_MAX if w._raw > w.max_level_mm else w.level_fault)
    assert w.level_fault in (None, ABOVE_MAX)
    assert 0 <= w.alert < len(ALERT_NAMES) and 0 <= w.mode < len(MODE_NAMES)
    assert w.next_ms() in (w.fast_ms, w.slow_ms)
    assert type(w.rate_mm_min) is int


@settings(max_examples=300, deadline=None)
@given(configs, st.lists(st.tuples(gaps, readings, st.booleans()), max_size=120), st.integers(0, ticks.MASK))
def test_no_sequence_of_numbers_raises(cfg, steps, t):
    events = []
    w = WaterLevel("w", events, cfg)
    for gap, mm, restart in steps:
        t = (t + gap) & ticks.MASK
        if restart and mm == 0:
            w.restart(t)
        w.update(t, mm)
        check(w)
    for e in events:
        assert e["kind"] in ("alert", "fault") and 0 <= e["t"] <= ticks.MASK


@settings(max_examples=300, deadline=None)
@given(configs, st.lists(st.tuples(gaps, st.integers(0, 6000)), max_size=60), st.integers(0, 3000), st.data())
def test_a_level_is_never_held_past_the_obstruction_limit_while_readings_agree(cfg, prefix, level, data):
    cfg["dry_zero_mm"] = 0
    w = WaterLevel("w", [], cfg)
    jitter = w.noise_mm // 2
    level = min(level, w.max_level_mm, w.mount_mm - jitter)  # a distance, not a fault code
    t = 0
    for gap, mm in prefix:  # whatever came before: floods, obstructions, gaps
        t = (t + gap) & ticks.MASK
        w.update(t, mm)
    # then readings that agree with each other (within the noise), with any
    # gaps and faulted bursts between them
    n = 0
    held_ms = 0
    last = None
    for _ in range(data.draw(st.integers(3, 40))):
        t = (t + data.draw(gaps)) & ticks.MASK
        if data.draw(st.integers(0, 4)) == 0:
            w.update(t, NO_ECHO)
            continue
        r = level + data.draw(st.integers(-jitter, jitter))
        w.update(t, w.mount_mm - r)
        if last is not None:
            held_ms += elapsed(t, last)
        last = t
        n += 1
        if n >= 3 and held_ms >= w.obstruction_ms:
            assert w.level == min(r, w.max_level_mm), (w.level, r, n, held_ms)


def test_elapsed_counts_an_aliased_or_unknown_interval_as_long():
    assert elapsed(5000, 0) == 5000
    assert elapsed(0, None) == LONG_MS
    assert elapsed(0, 5000) == LONG_MS  # backwards
    assert elapsed(ticks.add(0, 7 * 86400000), 0) == LONG_MS  # a week: aliased negative
    assert elapsed(ticks.add(0, 2 * 3600000), 0) == LONG_MS
