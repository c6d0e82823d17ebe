"""Sensor drivers: raw bus traffic in, the core's samples out.

What every driver needs from the runtime, the same on MicroPython and on
the desk: `const` (MicroPython folds it at compile time) and a millisecond
sleep.
"""

import time

try:
    from micropython import const
except ImportError:  # CPython on the desk

    def const(x):
        return x


try:
    sleep_ms = time.sleep_ms
except AttributeError:  # CPython

    def sleep_ms(ms):
        time.sleep(ms / 1000)
