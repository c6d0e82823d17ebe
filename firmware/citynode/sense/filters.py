"""Small integer building blocks shared by the detectors (those only the
bays use, `smooth`, `lowpass` and `Dwell`, live in citynode.sense.occupancy,
so a flood node does not load them).

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
