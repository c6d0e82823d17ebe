"""CircuitPython's `time` (its documented subset) on the world's virtual
clock: `monotonic()` / `monotonic_ns()` since this boot, `time()` and
`localtime()` from the RTC (seconds from 1970), `sleep(s)` moves the clock.
CircuitPython's `time` has no `ticks_ms` (that is `supervisor.ticks_ms`)."""

import utime

from host_tools.emulators.circuitpython.cp_world import epoch_of, world


def struct_time(t):
    """CircuitPython's struct_time, as the plain 9-tuple it indexes like."""
    return tuple(t)


def monotonic_ns():
    w = world()
    return (w.now_ms - w.boot_ms) * 1000000


def monotonic():
    return monotonic_ns() / 1e9


def sleep(seconds):
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    world().advance(int(seconds * 1000 + 0.5))


def time():
    return world().rtc_ms() // 1000


def localtime(secs=None):
    if secs is None:
        secs = time()
    return struct_time(utime.gmtime(secs)[:8] + (-1,))


def mktime(t):
    return epoch_of(t)
