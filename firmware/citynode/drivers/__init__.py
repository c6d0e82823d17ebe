"""Sensor drivers: raw bus traffic in, the core's samples out.

What every driver needs from the runtime, the same on MicroPython and on
the desk: `const` (MicroPython folds it at compile time) and a millisecond
sleep; and the one error every driver raises, whose `fault` is a name from
one vocabulary, the same a driver's `sample()` reports as `{"fault": name}`:

    no_answer        the bus or the part did not answer (or another part did)
    bad_frames       bytes came, but not one valid frame
    not_ready        no new reading after the bounded wait
    overflow         the part saturated: the reading is not a number
    out_of_range     a reading the part cannot give
    bad_calibration  calibration words that make no sense
    stuck            the same reading too many times running (filters.Stuck)
"""

from citynode.ticks import sleep_ms  # noqa: F401 - shared with the drivers

try:
    from micropython import const
except ImportError:  # CPython on the desk

    def const(x):
        return x


class DriverError(OSError):
    """A part that gave no reading: `fault` names why (the vocabulary
    above); `str()` is `msg`, or the fault's name."""

    def __init__(self, fault, msg=None):
        super().__init__(msg or fault)
        self.fault = fault
