"""Water level and street-flood alerts from a downward-looking ultrasonic sensor.

level_mm = mount_mm - distance_mm (0 on the dry road, positive under water).
Design and sources: docs/detectors-water.md.

Water moves at a bounded rate (`max_rise_mm_min`, 254 mm/min = 4.23 mm/s,
FloodNet's server filter) and its surface has no edges; what passes under
the sensor (a person, a truck) or a false echo (sun on the transducer,
condensation) makes a step that water cannot make, or one that does not
last. Each good reading r is judged against the last accepted reading R:

- within `noise_mm` of R: accepted at once (steady water tracks with no lag);
- otherwise it joins a *run* of readings that agree with each other (each
  within what water could move, noise included, since the run's previous
  reading), or starts a new run. The run's reading becomes the level when
  (a) *pair*: it agrees with the run's previous reading taken at most
  `obstruction_s` (or `2 * slow_s`, if longer) before it (so a
  single-sample spike never becomes the level, and two readings 10 minutes
  apart never confirm each other), and the run began with a change water
  could make: a fall, or a rise within the rise bound since R was accepted
  (a jump does not become water-like by lasting: only (b) can accept it);
  or
  (b) *persistence*: the run holds at least three readings and spans at
  least `obstruction_s` (300 s). A jump water cannot make (something under
  the sensor, a false echo) is held only that long: a burst shorter than
  `obstruction_s` never becomes the level, and no obstruction latches.
- the payload `state` says `pending` while a run of water-like changes
  waits, `obstructed` while a run of jumps waits; a wait of jumps that
  outlasts `obstructed_fault_s` raises a `view_obstructed` fault.

The published level is min(R, `max_level_mm`): water deeper than the
deepest credible level is published as `max_level_mm`, with the fault
`above_max` (attribute `level_fault`, and a fault event when it starts and
when the water is back below `max_level_mm - noise_mm`), and is followed
back down as it recedes. A jump above `max_level_mm` (more than water could
rise in `2 * slow_s`, to more than `max_level_mm + noise_mm`) is something
under the sensor, never the level: the level is held while it stays, and
followed again once the view clears.

Every bound takes its interval from `elapsed`: a tick difference that is negative
(aliased: more than 6.2 days) or longer than an hour counts as an hour, the
longest interval any bound uses. `restart(t)` forgets every interval
measured before a silence the node could not bridge.

Alerts: `thresholds_mm` for watch, warning, danger (50, 150, 300 mm); a
level rises to an alert at its threshold and falls back only below the
threshold minus `hysteresis_mm` (20 mm), so a level hovering at a
threshold does not flap.

Adaptive sampling: `next_ms()` asks for the next measurement after
`fast_s` (10 s) while anything is moving, pending, obstructed, within
`hysteresis_mm` of the watch threshold, alerting or checking a faulted
burst, and after `slow_s` (60 s) when dry and steady.
"""

from citynode import ticks
from citynode.sense.filters import FaultWatch, follow
from citynode.sense.ranging import FAULT_NAMES

ALERT_NAMES = ("normal", "watch", "warning", "danger")

CLEAR = 0
PENDING = 1
OBSTRUCTED = 2
MODE_NAMES = ("clear", "pending", "obstructed")

ABOVE_MAX = "above_max"

LONG_MS = 3600000  # an hour: no bound grows past it; an unknown interval counts as this
_RATE_POINTS = 32
_RUN_READINGS = 3  # a jump needs this many readings agreeing with each other


def elapsed(t, t0):
    """Milliseconds from tick `t0` to tick `t`, in 0..LONG_MS: an unknown
    start (None), a negative difference (ticks aliased over a gap of more
    than 6.2 days) or more than an hour all count as LONG_MS."""
    if t0 is None:
        return LONG_MS
    d = ticks.diff(t, t0)
    if d < 0 or d > LONG_MS:
        return LONG_MS
    return d


class WaterLevel:
    def __init__(self, sensor, events, cfg):
        self.sensor = sensor
        self.events = events
        self.mount_mm = int(cfg.get("mount_mm", 3000))
        self.thresholds = tuple(cfg.get("thresholds_mm", (50, 150, 300)))
        self.hyst_mm = int(cfg.get("hysteresis_mm", 20))
        self.noise_mm = int(cfg.get("noise_mm", 15))
        self.max_rise_mm_min = int(cfg.get("max_rise_mm_min", 254))
        self.max_level_mm = int(cfg.get("max_level_mm", 800))
        self.rising_mm_min = int(cfg.get("rising_mm_min", 3))
        self.fast_ms = ticks.ms(cfg.get("fast_s", 10))
        self.slow_ms = ticks.ms(cfg.get("slow_s", 60))
        self.rate_window_ms = ticks.ms(cfg.get("rate_window_s", 300))
        self.obstruction_ms = ticks.ms(cfg.get("obstruction_s", 300))
        self.obstructed_ms = ticks.ms(cfg.get("obstructed_fault_s", 600))
        self.dry_tau_ms = ticks.ms(cfg.get("dry_tau_s", 1800))
        self.dry_zero_mm = int(cfg.get("dry_zero_mm", 15))
        self.fault_after_ms = ticks.ms(cfg.get("fault_after_s", 60))
        self.zero_q8 = 0
        self.faults = FaultWatch(sensor, events, self.fault_after_ms)
        self.level = None
        self.level_t = None
        self.level_fault = None
        self.alert = 0
        self.mode = PENDING
        self.rate_mm_min = 0
        self._raw = None
        self._run_n = 0
        self._run_v = 0
        self._run_t = None
        self._run_ms = 0
        self._run_water = False
        self._obstructed_t = None
        self._obstruction_fault = False
        self._faulted = False
        self._pts_t = []
        self._pts_l = []

    def rise_bound(self, dt_ms):
        """The most a level can honestly move in `dt_ms` (0..LONG_MS), noise included."""
        return self.noise_mm + self.max_rise_mm_min * (dt_ms // 100) // 600

    def update(self, t, mm):
        """Take one burst result (distance mm, or a fault < 0)."""
        if mm < 0:
            self.fault(t, FAULT_NAMES.get(mm, "out_of_range"))
            return
        self._faulted = False
        self.faults.ok(t)
        r = self.mount_mm - mm - (self.zero_q8 >> 8)
        raw = self._raw
        if raw is not None and -self.noise_mm <= r - raw <= self.noise_mm:
            self._accept(t, r)
            return
        paired = False
        if self._run_n:
            dt = elapsed(t, self._run_t)
            step = r - self._run_v
            if -self.rise_bound(dt) <= step <= self.rise_bound(dt):
                self._run_n = min(self._run_n + 1, _RUN_READINGS)
                self._run_ms = min(self._run_ms + dt, self.obstruction_ms)
                paired = dt <= self.obstruction_ms or dt <= 2 * self.slow_ms
            else:
                self._run_n = 0
        if not self._run_n:
            self._run_n = 1
            self._run_ms = 0
            self._run_water = self._water_like(t, r)
        self._run_v = r
        self._run_t = t
        water_like = self._run_water
        if paired and water_like or (self._run_n >= _RUN_READINGS and self._run_ms >= self.obstruction_ms
                                     and (water_like or r <= self.max_level_mm + self.noise_mm)):
            self._accept(t, r)
        elif water_like:
            self.mode = PENDING
            self._obstructed_t = None
        else:
            self._still_obstructed(t)

    def _water_like(self, t, r):
        """Could water have moved from the last accepted reading to `r` by
        tick `t`? A fall always could. Above `max_level_mm` (and its noise)
        only a rise water makes within 2 * slow_s counts: deeper water is
        reached by rising through the levels below, which the node reads at
        least every slow_s, while a jump above it, however long after the
        last level, is something under the sensor."""
        raw = self._raw
        if raw is None:
            return r <= self.max_level_mm + self.noise_mm
        if r <= raw:
            return True
        dt = elapsed(t, self.level_t)
        if r > self.max_level_mm + self.noise_mm and dt > 2 * self.slow_ms:
            dt = 2 * self.slow_ms
        return r - raw <= self.rise_bound(dt)

    def fault(self, t, name):
        """A burst the driver could not take (`name` says why)."""
        self._faulted = True
        self.faults.fault(t, name)

    def restart(self, t):
        """Start again after a silence the node could not bridge, before
        the reading at tick `t`: forget the waiting run, the rate points and
        every timer (their intervals are unknown); keep the zero trim, the
        last level and the alert, which the next accepted level
        re-evaluates with the usual hysteresis. Emits no event."""
        self.level_t = None
        self.mode = PENDING
        self.rate_mm_min = 0
        self._run_n = 0
        self._run_t = None
        self._run_ms = 0
        self._obstructed_t = None
        self._pts_t = []
        self._pts_l = []
        active = self.faults.active
        self.faults = FaultWatch(self.sensor, self.events, self.fault_after_ms)
        self.faults.active = active

    def _still_obstructed(self, t):
        if self.mode != OBSTRUCTED or self._obstructed_t is None:
            self.mode = OBSTRUCTED
            self._obstructed_t = t
        if not self._obstruction_fault and elapsed(t, self._obstructed_t) >= self.obstructed_ms:
            self._obstruction_fault = True
            self._fault_event(t, "view_obstructed", True)

    def _fault_event(self, t, name, active):
        self.events.append({"t": t, "kind": "fault", "sensor": self.sensor, "fault": name, "active": active})

    def _accept(self, t, r):
        dt = 0 if self.level_t is None else elapsed(t, self.level_t)
        self._raw = r
        self.level = r if r <= self.max_level_mm else self.max_level_mm
        self.level_t = t
        self.mode = CLEAR
        self._run_n = 0
        self._obstructed_t = None
        if self._obstruction_fault:
            self._obstruction_fault = False
            self._fault_event(t, "view_obstructed", False)
        if self.level_fault is None and r > self.max_level_mm:
            self.level_fault = ABOVE_MAX
            self._fault_event(t, ABOVE_MAX, True)
        elif self.level_fault is not None and r < self.max_level_mm - self.noise_mm:
            self.level_fault = None
            self._fault_event(t, ABOVE_MAX, False)
        self._update_rate(t, self.level)
        self._update_alert(t, self.level)
        self._follow_dry_zero(r, dt)

    def _follow_dry_zero(self, r, dt):
        """While the road is dry and steady but reads below zero, lift it
        slowly (`dry_tau_s`) back to zero, by at most `dry_zero_mm`. This
        takes out a bias common to the whole day's readings (an enclosure
        warmed by the sun reads the air too warm, and the level too low),
        as FloodNet takes its offset from night-time readings. The trim only
        ever raises the level, so it can bring an alert earlier, never make
        one later, and standing water is never taken for the dry road.
        Water, an alert or movement freezes it."""
        if self.alert or r > self.noise_mm or -r > self.noise_mm:
            return
        rate = self.rate_mm_min
        if rate >= self.rising_mm_min or -rate >= self.rising_mm_min:
            return
        z = follow(self.zero_q8, self.zero_q8 + (r << 8), dt, self.dry_tau_ms)
        lim = -(self.dry_zero_mm << 8)
        self.zero_q8 = 0 if z > 0 else lim if z < lim else z

    def _update_rate(self, t, r):
        """`rate_mm_min` over about `rate_window_s` of accepted levels (at
        most _RATE_POINTS of them); a point whose tick is not before `t`
        (aliased) is dropped."""
        pts_t = self._pts_t
        pts_l = self._pts_l
        pts_t.append(t)
        pts_l.append(r)
        while len(pts_t) > 1:
            d0 = ticks.diff(t, pts_t[0])
            d1 = ticks.diff(t, pts_t[1])
            if not (len(pts_t) > _RATE_POINTS or d0 < 0 or d1 < 0
                    or (len(pts_t) > 2 and d1 >= self.rate_window_ms)):
                break
            pts_t.pop(0)
            pts_l.pop(0)
        span = ticks.diff(t, pts_t[0])
        if span >= self.fast_ms:
            rise = r - pts_l[0]
            # truncated toward zero, so a slight fall and a slight rise read alike
            if rise >= 0:
                self.rate_mm_min = rise * 60000 // span
            else:
                self.rate_mm_min = -(-rise * 60000 // span)
        else:
            self.rate_mm_min = 0

    def _update_alert(self, t, r):
        a = self.alert
        th = self.thresholds
        while a < 3 and r >= th[a]:
            a += 1
        while a > 0 and r < th[a - 1] - self.hyst_mm:
            a -= 1
        if a != self.alert:
            self.events.append({"t": t, "kind": "alert", "sensor": self.sensor,
                                "alert": ALERT_NAMES[a], "was": ALERT_NAMES[self.alert],
                                "level_mm": r, "rate_mm_min": self.rate_mm_min})
            self.alert = a

    def next_ms(self):
        """Milliseconds until the next measurement should be taken."""
        if self.level is None or self.mode != CLEAR or self.alert > 0:
            return self.fast_ms
        if self._faulted and self.faults.active is None:
            return self.fast_ms
        if self.level >= self.thresholds[0] - self.hyst_mm:
            return self.fast_ms
        r = self.rate_mm_min
        if r >= self.rising_mm_min or -r >= self.rising_mm_min:
            return self.fast_ms
        return self.slow_ms
