"""Echo-pulse source: an emulated HC-SR04 (or JSN-SR04T in mode 0) behind
two pins, on a virtual microsecond clock.

    src = EchoSource([5831, 5840, None, 60000])
    sonar = HCSR04(src.trigger, src.echo, pulse_us=time_pulse_us,
                   sleep_us=src.sleep_us, sleep_ms=src.sleep_ms)
    sonar.burst()                  # [5831, 5840, 0, 0]

The part, as the datasheets describe it: a high pulse of at least 10 µs on
TRIG starts a measurement on its falling edge; the module sends its 40 kHz
burst and then raises ECHO (here `rise_us`, 450 µs, after the edge) for the
round trip of the sound.

The test programs the round trips, in µs, for successive valid triggers:
a list (a queue, consumed one per trigger; `push` adds more) or a function
of the trigger's index (0, 1, ...). `None` means no echo at all: ECHO never
rises and `time_pulse_us` returns -2. An echo longer than the caller's
timeout (a JSN-SR04T holds ECHO for 60 ms when nothing comes back) makes it
return -1. An exhausted queue means no echo.

Time only moves when someone calls `sleep_us` / `sleep_ms` (the driver,
given them) or `time_pulse_us` (which waits for the echo), so the source
sees the width of the trigger pulse. A wrong trigger sets `fault` (the last
reason; `faults` keeps the recent ones) and the part stays silent, without
using up a programmed echo:

    short_trigger      TRIG high for less than `min_trigger_us`
    busy               a trigger while the previous echo was still high
    trigger_held_high  `time_pulse_us` called with TRIG still high
    no_trigger         `time_pulse_us` called with no trigger since the last one

With `timed=False` (a driver sleeping on a clock the source cannot see)
only the order of TRIG levels counts, not the width.

`time_pulse_us(pin, pulse_level, timeout_us)` follows MicroPython's
`machine.time_pulse_us`: if the pin differs from `pulse_level` it first
waits for it to become equal (-2 if that takes `timeout_us` or more), then
times how long it stays equal (-1 if that reaches `timeout_us`); if the pin
is already at `pulse_level` timing starts straight away.

MicroPython-compatible.
"""

RISE_US = 450
MIN_TRIGGER_US = 10
HISTORY = 64  # entries kept in `history`, `pulses` and `faults`


def _keep(lst, item):
    lst.append(item)
    if len(lst) > HISTORY:
        del lst[0]


class EchoSource:
    """The emulated part: `trigger` and `echo` pins and a virtual clock."""

    def __init__(self, echoes=None, rise_us=RISE_US, min_trigger_us=MIN_TRIGGER_US, timed=True):
        self.now_us = 0
        self.rise_us = rise_us
        self.min_trigger_us = min_trigger_us
        self.timed = timed
        self.triggers = 0  # valid triggers, each one measurement
        self.pulses = []  # widths (µs) of the recent TRIG high pulses
        self.faults = []
        self.fault = None
        self._queue = []
        self._fn = None
        self.program(echoes)
        self._rise = None  # the current ECHO pulse, [rise, fall) in µs
        self._fall = None
        self._high_at = 0
        self._tried = False  # TRIG went high since the last time_pulse_us
        self.trigger = TriggerPin(self)
        self.echo = EchoPin(self)

    # -- programming ------------------------------------------------------

    def program(self, echoes):
        """Replace the programme: a list of echo times (µs, None = no echo)
        or a function of the trigger index returning one."""
        if echoes is None:
            echoes = []
        if callable(echoes):
            self._fn = echoes
            self._queue = []
        else:
            self._fn = None
            self._queue = list(echoes)

    def push(self, *echoes):
        """Queue more echo times."""
        for e in echoes:
            self._queue.append(e)

    def pending(self):
        """Echo times still queued."""
        return len(self._queue)

    def _next_echo(self):
        if self._fn is not None:
            return self._fn(self.triggers)
        if self._queue:
            return self._queue.pop(0)
        return None

    # -- the clock ----------------------------------------------------------

    def sleep_us(self, us):
        self.now_us += us

    def sleep_ms(self, ms):
        self.now_us += ms * 1000

    def ticks_us(self):
        return self.now_us

    # -- the part -----------------------------------------------------------

    def _fault(self, reason):
        self.fault = reason
        _keep(self.faults, reason)

    def _edge(self, level):
        """TRIG changed to `level`."""
        t = self.now_us
        if level:
            self._high_at = t
            self._tried = True
            return
        width = t - self._high_at
        _keep(self.pulses, width)
        if self.timed and width < self.min_trigger_us:
            self._fault("short_trigger")
            return
        if self._fall is not None and t < self._fall:
            self._fault("busy")
            return
        echo = self._next_echo()
        self.triggers += 1
        if echo is None:
            self._rise = self._fall = None
        else:
            if echo < 0:
                raise ValueError("an echo time is >= 0 µs or None, not %r" % (echo,))
            self._rise = t + self.rise_us
            self._fall = self._rise + echo

    def level(self, t=None):
        """ECHO's level at `t` (default: now)."""
        if t is None:
            t = self.now_us
        if self._rise is None:
            return 0
        return 1 if self._rise <= t < self._fall else 0

    def _next_change(self, t):
        """The first ECHO edge after `t`, or None."""
        if self._rise is None:
            return None
        if t < self._rise:
            return self._rise
        if t < self._fall:
            return self._fall
        return None

    def time_pulse(self, pulse_level, timeout_us):
        if self.trigger.value():
            self._fault("trigger_held_high")
        elif not self._tried:
            self._fault("no_trigger")
        self._tried = False
        t0 = self.now_us
        start = t0
        if self.level(t0) != pulse_level:
            start = self._next_change(t0)
            if start is None or start - t0 >= timeout_us:
                self.now_us = t0 + timeout_us
                return -2
        end = self._next_change(start)
        if end is None or end - start >= timeout_us:
            self.now_us = start + timeout_us
            return -1
        self.now_us = end
        return end - start


class TriggerPin:
    """An output pin like `machine.Pin`: `value(v)`, `on()`, `off()`.

    `history` keeps the recent `(t_us, level)` writes, in order."""

    def __init__(self, source, value=0):
        self._source = source
        self._level = 1 if value else 0
        self.history = []

    def init(self, *args, **kwargs):
        pass

    def value(self, v=None):
        if v is None:
            return self._level
        v = 1 if v else 0
        _keep(self.history, (self._source.now_us, v))
        if v != self._level:
            self._level = v
            self._source._edge(v)
        return None

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


class EchoPin:
    """The input pin ECHO is wired to: `value()` reads the part's level now."""

    def __init__(self, source):
        self._source = source

    def init(self, *args, **kwargs):
        pass

    def value(self, v=None):
        # Writing to an input pin changes nothing on the wire.
        return self._source.level()

    def __call__(self, v=None):
        return self.value(v)


def time_pulse_us(pin, pulse_level, timeout_us=1000000):
    """`machine.time_pulse_us` for an `EchoPin`: the pulse length in µs,
    -2 if the pulse did not start within `timeout_us`, -1 if it did not end
    within `timeout_us` of starting. Advances the source's clock."""
    return pin._source.time_pulse(pulse_level, timeout_us)
