"""Millisecond ticks that wrap, with MicroPython's `time.ticks_*` arithmetic.

`now_ms` and `sleep_ms` are the runtime's clock and sleep, for the layers
around the core (drivers, MQTT, the main loop). The core never reads a
clock itself: every input comes with a tick value
`t` (milliseconds, wrapping at 2**30 like `time.ticks_ms()` on the board),
and intervals are taken with `diff`, so the same integers flow on the ESP32
(where ints past 2**30 allocate) and on the desk.
"""

import time

PERIOD = 1 << 30
MASK = PERIOD - 1
HALF = PERIOD >> 1

try:
    now_ms = time.ticks_ms  # MicroPython
    sleep_ms = time.sleep_ms
except AttributeError:  # CircuitPython, or CPython on the desk

    def sleep_ms(ms):
        time.sleep(ms / 1000)

    try:
        from supervisor import ticks_ms as _cp_ticks_ms
    except ImportError:  # CPython

        def now_ms():
            """The millisecond clock, wrapping like the board's."""
            return int(time.monotonic() * 1000) & MASK

    else:
        # CircuitPython's `supervisor.ticks_ms()` wraps at 2**29 (its
        # `time.monotonic()` is a float that loses milliseconds after hours):
        # carried on here to 2**30, exactly, as long as it is read at least
        # every 2**29 ms (6.2 days); the main loop reads it many times a second.
        _RAW_MASK = (1 << 29) - 1
        _raw = [_cp_ticks_ms(), 0]  # the last raw reading, and the ticks it gave

        def now_ms():
            """The millisecond clock, wrapping at 2**30 like MicroPython's."""
            raw = _cp_ticks_ms()
            t = (_raw[1] + ((raw - _raw[0]) & _RAW_MASK)) & MASK
            _raw[0] = raw
            _raw[1] = t
            return t


def ms(seconds):
    """Seconds (int or float, as a config gives them) to whole milliseconds,
    rounded so a single-precision float gives the same value as a double."""
    return int(round(seconds * 1000))


def add(t, delta_ms):
    """The tick `delta_ms` milliseconds after `t`."""
    return (t + delta_ms) & MASK


def diff(a, b):
    """`a - b` in milliseconds, signed; valid while |a - b| < 2**29 ms (6.2 days)."""
    return ((a - b + HALF) & MASK) - HALF


KEEP_MS = 86400000  # Clock.keep: a day, far inside the 6.2 days `diff` measures


class Clock:
    """Maps ticks to UTC epoch seconds from one anchor (NTP on the board,
    the recording's start in simulation).

    Each call at or after the anchor moves the anchor forward, so differences
    stay small however long the node runs, as long as it is asked at least
    every six days. Epoch seconds are large ints: keep them out of hot loops.
    """

    def __init__(self, epoch_s, t):
        self.anchor(epoch_s, t)

    def anchor(self, epoch_s, t):
        """From now on, tick `t` is the start of UTC second `epoch_s`."""
        self._s = epoch_s
        self._ms = 0
        self._t = t

    def advance(self, t0, t, gap_ms):
        """Re-anchor: tick `t` is `gap_ms` ms after tick `t0` (one the clock
        was asked about lately), whatever the ticks say; for a silence
        longer than the ticks measure (or a clock step), told by whoever
        knows its length."""
        ms = self._ms + diff(t0, self._t) + gap_ms
        self._s += ms // 1000
        self._ms = ms % 1000
        self._t = t

    def keep(self, t):
        """Move the anchor to tick `t` if it is a day old or more: cheap
        (small ints only) on every sample, so the anchor stays valid however
        rarely the node publishes."""
        if diff(t, self._t) >= KEEP_MS:
            self.epoch(t)

    def epoch(self, t):
        d = diff(t, self._t)
        if d < 0:
            return self._s + (self._ms + d) // 1000
        ms = self._ms + d
        self._s += ms // 1000
        self._ms = ms % 1000
        self._t = t
        return self._s

