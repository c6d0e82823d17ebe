"""HC-SR04 (and JSN-SR04T in mode 0) ultrasonic ranger: trigger/echo pulses
in, the core's samples out.

    trig = machine.Pin(5, machine.Pin.OUT, value=0)
    echo = machine.Pin(18, machine.Pin.IN)     # 5 V part: divide ECHO down to 3.3 V
    sonar = HCSR04(trig, echo)                 # 7 pings, 150 ms apart, 38 ms timeout
    sonar.sample()                             # {"echo_us": [5831, 5840, 0, ...]}

A ping: TRIG low 2 µs, high 10 µs, low. On the falling edge the part sends
its 40 kHz burst, then holds ECHO high for the round trip of the sound; the
driver times that high pulse with `time_pulse_us`. When nothing comes back
the part drops ECHO by itself after a while (about 38 ms on the HC-SR04,
60 ms on the JSN-SR04T), which the timeout turns into "no echo".

The driver reports round-trip times in integer µs, one per ping, with 0 for
a ping without an echo (the pulse never started, never ended, or lasted the
whole timeout). It does not convert to millimetres and never invents a
number for a missing echo: the core does the temperature-compensated
conversion and decides what a burst of timeouts or blind-zone echoes means.

Runs unchanged under MicroPython and CPython (where the tests pass the
emulator's `time_pulse_us` and clock).
"""

import time

from citynode.drivers import const
from citynode.drivers import sleep_ms as default_sleep_ms

_SETTLE_US = const(2)  # TRIG low before the pulse
_TRIGGER_US = const(10)  # TRIG high: the datasheet's minimum


def _sleep_us_fallback(us):
    # CPython has no microsecond sleep, and needs none: only the order of the
    # pin levels reaches an emulated part.
    pass


class HCSR04:
    """One trigger/echo ranger.

    `trigger` and `echo` are Pin-like (`value(v)`); `pings` echoes make a
    burst, `gap_ms` apart so the last ping's sound has died down;
    `timeout_us` is the echo wait. `pulse_us(pin, level, timeout_us)` times
    the echo (default `machine.time_pulse_us`); `sleep_ms` and `sleep_us`
    replace the clock (defaults from `time`), e.g. with an emulator's.
    `trigger_us` lengthens the trigger pulse (some JSN-SR04T boards range
    more steadily with 20 µs).
    """

    def __init__(
        self,
        trigger,
        echo,
        pings=7,
        gap_ms=150,
        timeout_us=38000,
        pulse_us=None,
        sleep_ms=None,
        sleep_us=None,
        trigger_us=_TRIGGER_US,
    ):
        if pulse_us is None:
            from machine import time_pulse_us as pulse_us
        self.trigger = trigger
        self.echo = echo
        self.pings = pings
        self.gap_ms = gap_ms
        self.timeout_us = timeout_us
        self.trigger_us = trigger_us
        self.pulse_us = pulse_us
        self.sleep_ms = sleep_ms or default_sleep_ms
        self.sleep_us = sleep_us or getattr(time, "sleep_us", None) or _sleep_us_fallback
        self.stats = {"pings": 0, "timeouts": 0}
        trigger.value(0)

    def ping(self):
        """One ping: the echo round trip in µs, or 0 for no echo."""
        self.stats["pings"] += 1
        if self.echo.value():
            # ECHO still high from the last ping (the gap is too short for
            # the part's own timeout): timing now would give the tail of that
            # pulse, and the part ignores a trigger while it is busy.
            self.stats["timeouts"] += 1
            return 0
        trig = self.trigger
        trig.value(0)
        self.sleep_us(_SETTLE_US)
        trig.value(1)
        self.sleep_us(self.trigger_us)
        trig.value(0)
        us = self.pulse_us(self.echo, 1, self.timeout_us)
        if us <= 0 or us >= self.timeout_us:
            # -2: ECHO never rose; -1: it never fell; a pulse as long as the
            # whole wait is the part giving up. Counted, never a distance.
            self.stats["timeouts"] += 1
            return 0
        return us

    def burst(self):
        """`pings` echo times in µs (0 for no echo), `gap_ms` apart."""
        out = []
        for i in range(self.pings):
            if i:
                self.sleep_ms(self.gap_ms)
            out.append(self.ping())
        return out

    def sample(self):
        """The core's sample: `{"echo_us": [...]}`."""
        return {"echo_us": self.burst()}
