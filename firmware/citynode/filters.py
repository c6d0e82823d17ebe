"""Small integer building blocks shared by the detectors.

Every time constant is in milliseconds of the sample clock, never in a
count of samples, so a recording made at 1 Hz and one at 10 Hz behave alike
(`Stuck`, the drivers' check of a part's own readings, counts reads: a
working part's noise differs from one conversion to the next).
"""

from citynode import ticks

_ERR_LIMIT = 100000
_DT_LIMIT_MS = 10000


def follow(est, target, dt_ms, tau_ms):
    """Move the integer estimate `est` toward `target` as a first-order
    low-pass with time constant `tau_ms` would over `dt_ms`.

    Each step is truncated toward zero (no drift from rounding) and both
    the error and the step's interval are bounded so every product stays a
    small int; a long interval is taken as several steps of at most 10 s.
    Use Q8 fixed point (value << 8) where sub-unit resolution matters.
    """
    if dt_ms > 5 * tau_ms:
        dt_ms = 5 * tau_ms
    while dt_ms > _DT_LIMIT_MS:
        est = _step(est, target, _DT_LIMIT_MS, tau_ms)
        dt_ms -= _DT_LIMIT_MS
    return _step(est, target, dt_ms, tau_ms)


def _step(est, target, dt_ms, tau_ms):
    err = target - est
    if err > _ERR_LIMIT:
        err = _ERR_LIMIT
    elif err < -_ERR_LIMIT:
        err = -_ERR_LIMIT
    if dt_ms > tau_ms:
        dt_ms = tau_ms
    if err >= 0:
        return est + err * dt_ms // tau_ms
    return est - (-err) * dt_ms // tau_ms


def smooth(est, target, dt_ms, tau_ms):
    """A first-order low-pass in its backward-Euler form: `est` moves toward
    `target` by dt / (tau + dt) of the gap, truncated toward zero.

    Unlike `follow` (which jumps to the target once dt ≥ tau), it still
    smooths when readings are sparse: half the gap at dt = tau, so a 1 Hz
    and a 10 Hz stream through the same `tau_ms` both average about a
    `2·tau_ms` window. A zero or negative interval moves nothing; a very long
    one reaches the target. Exact while |target − est| · dt < 2**30; beyond,
    the fraction is taken in 1/256ths. For |target − est| < 2**22 (Q4 of
    16-bit counts) every product stays below 2**30. Truncation leaves a dead
    band of tau/dt units: keep a slow filter's steps long (see `Slow`).
    """
    if dt_ms <= 0:
        return est
    if dt_ms >= 255 * tau_ms:
        return target
    err = target - est
    e = err if err >= 0 else -err
    den = tau_ms + dt_ms
    if e < (1 << 30) // dt_ms:
        step = e * dt_ms // den
    else:
        num = dt_ms
        while den > 1 << 21:  # the same ratio with dt << 8 below 2**30
            num >>= 1
            den >>= 1
        step = e * ((num << 8) // den) >> 8
    return est + step if err >= 0 else est - step


def lowpass(est, target, dt_ms, tau_ms):
    """A first-order low-pass's exact response over `dt_ms`: `est` moves
    toward `target` by 1 − e^(−dt/tau) of the gap, so readings of one signal
    at 1 Hz and at 11 Hz give the same filtered values at the same moments
    (the continuous filter, sampled). e^x is taken to third order,
    1 − 1/(1 + x + x²/2 + x³/6), in 1/256ths (within 0.01 of the exact
    fraction up to dt = 2·tau); from dt = 4·tau on it reaches the target.
    A zero or negative interval moves nothing. For |target − est| < 2**22
    every product stays below 2**30. For time constants much longer than
    the reading interval use `smooth`, whose small steps do not vanish.
    """
    if dt_ms <= 0:
        return est
    if dt_ms >= 4 * tau_ms:
        return target
    x = (dt_ms << 8) // tau_ms  # dt/tau in Q8, below 1024
    x2 = x * x >> 8
    a = 256 - 65536 // (256 + x + (x2 >> 1) + (x2 * x >> 8) // 6)
    err = target - est
    if err >= 0:
        return est + (err * a >> 8)
    return est - ((-err) * a >> 8)


class Dwell:
    """A two-state decision that flips once evidence for the other state has
    accumulated for a dwell time (ms) of that direction.

    Evidence is time between readings: an interval whose two readings both
    favour the other state adds its length; one whose two readings both
    favour the current state takes its length away (never below zero); a
    mixed interval adds half its length (the evidence changed somewhere in
    it: the trapezoid rule). So a single contrary reading only pauses the
    count by one interval, whatever the sample rate, and contrary evidence
    erases support as fast as support was gained. An interval
    counts at most a full dwell and a negative one (aliased ticks) counts
    nothing. `update(t, want)` returns True when the state changed;
    `want=None` (no evidence, e.g. a faulted reading) neither confirms nor
    interrupts.
    """

    def __init__(self, on_ms, off_ms, state=False):
        self.on_ms = on_ms
        self.off_ms = off_ms
        self.reset(state)

    def update(self, t, want):
        if want is None:
            return False
        other = want != self.state
        prev = self._prev
        last = self._last
        self._prev = other
        self._last = t
        need = self.off_ms if self.state else self.on_ms
        dt = 0 if last is None else ticks.diff(t, last)
        if dt < 0:
            dt = 0
        elif dt > need:
            dt = need
        if other and prev:
            self.acc += dt
        elif other or prev:
            self.acc += dt >> 1
        else:
            self.acc = self.acc - dt if self.acc > dt else 0
        if not other or self.acc < need:
            return False
        self.state = want
        self.acc = 0
        self._prev = False
        return True

    def reset(self, state=False):
        """Set `state` and forget all evidence and the last reading's tick."""
        self.state = state
        self.acc = 0
        self._prev = False
        self._last = None


class FaultWatch:
    """Raises a sensor fault once faulted readings have lasted `after_ms`
    (and at least two readings), and clears it on the next good one.

    Events go to the shared `events` list as dicts.
    """

    def __init__(self, sensor, events, after_ms):
        self.sensor = sensor
        self.events = events
        self.after_ms = after_ms
        self.active = None
        self._since = None
        self._count = 0

    def fault(self, t, name):
        if self._since is None:
            self._since = t
            self._count = 0
        self._count += 1
        if self.active is None and self._count >= 2 and ticks.diff(t, self._since) >= self.after_ms:
            self.active = name
            self.events.append({"t": t, "kind": "fault", "sensor": self.sensor,
                                "fault": name, "active": True})

    def ok(self, t):
        self._since = None
        if self.active is not None:
            self.events.append({"t": t, "kind": "fault", "sensor": self.sensor,
                                "fault": self.active, "active": False})
            self.active = None


class Stuck:
    """A part that repeats itself: `seen(reading)` is True from the
    `after`-th identical reading in a row (the first one counted) until a
    different one comes; `after` 0 or None: never. `reading` must not be
    changed afterwards by its owner (a tuple, not a reused buffer)."""

    def __init__(self, after):
        self.after = after
        self.run = 0
        self._last = None

    def seen(self, reading):
        if reading == self._last:
            self.run += 1
        else:
            self._last = reading
            self.run = 1
        return bool(self.after) and self.run >= self.after
