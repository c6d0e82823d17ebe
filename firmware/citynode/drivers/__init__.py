"""Sensor drivers: raw bus traffic in, the core's samples out.

What every driver needs from the runtime, the same on MicroPython and on
the desk: `const` (MicroPython folds it at compile time) and a millisecond
sleep.
"""

from citynode.ticks import sleep_ms  # noqa: F401 - shared with the drivers

try:
    from micropython import const
except ImportError:  # CPython on the desk

    def const(x):
        return x
