"""Water level and street-flood alerts from a downward-looking ultrasonic sensor.

level_mm = mount_mm - distance_mm (0 on the dry road, positive under water).

Water moves at a bounded rate and its surface has no edges; what passes
under the sensor (a person, a truck) makes a sudden step *up* that water
cannot make. So each reading is classified against the accepted level L:

- within `noise_mm` of L: accepted at once (steady water tracks with no lag);
- a larger change that water could make since L was accepted (at most
  `max_rise_mm_min`, 254 mm/min = 4.23 mm/s as in FloodNet's server filter,
  plus the noise): *pending*, accepted only when the next reading agrees
  with it; a single-sample spike, up or down, never becomes the level;
- a rise faster than water can rise, or a level above `max_level_mm`
  (800 mm: the deepest water credible at the site): *obstructed*. The level is held, and
  the obstruction ends only when a reading steps back down to a level water
  could have reached. An obstruction that outlasts `obstructed_fault_s`
  (600 s) raises a `view_obstructed` fault, never a flood alert.

Alerts: `thresholds_mm` for watch, warning, danger (50, 150, 300 mm); a
level rises to an alert at its threshold and falls back only below the
threshold minus `hysteresis_mm` (20 mm), so a level hovering at a
threshold does not flap.

Adaptive sampling: `next_ms()` asks for the next measurement after
`fast_s` (10 s) while anything is moving, pending, obstructed, within
`hysteresis_mm` of the watch threshold, alerting or checking a faulted
burst, and after `slow_s` (60 s) when dry and steady. The rise bound over a slow interval stays far
below any vehicle or person, which is what lets an obstruction be told from
water.
"""

from citynode import ticks
from citynode.filters import FaultWatch, follow
from citynode.ranging import FAULT_NAMES

ALERT_NAMES = ("normal", "watch", "warning", "danger")

CLEAR = 0
PENDING = 1
OBSTRUCTED = 2
MODE_NAMES = ("clear", "pending", "obstructed")

_RATE_POINTS = 32


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
        self.obstructed_ms = ticks.ms(cfg.get("obstructed_fault_s", 600))
        self.dry_tau_ms = ticks.ms(cfg.get("dry_tau_s", 1800))
        self.dry_zero_mm = int(cfg.get("dry_zero_mm", 15))
        self.zero_q8 = 0
        self.faults = FaultWatch(sensor, events, ticks.ms(cfg.get("fault_after_s", 60)))
        self.level = None
        self.level_t = None
        self.alert = 0
        self.mode = PENDING
        self.rate_mm_min = 0
        self._prev = None
        self._prev_t = None
        self._obstructed_t = None
        self._obstruction_fault = False
        self._faulted = False
        self._pts_t = []
        self._pts_l = []

    def rise_bound(self, dt_ms):
        """The most a level can honestly rise in `dt_ms`, noise included."""
        if dt_ms > 3600000:
            dt_ms = 3600000
        return self.noise_mm + self.max_rise_mm_min * (dt_ms // 100) // 600

    def update(self, t, mm):
        """Take one burst result (distance mm, or a fault < 0)."""
        if mm < 0:
            self.fault(t, FAULT_NAMES[mm])
            return
        self._faulted = False
        self.faults.ok(t)
        r = self.mount_mm - mm - (self.zero_q8 >> 8)
        prev = self._prev
        prev_t = self._prev_t
        self._prev = r
        self._prev_t = t
        if self.level is None:
            if prev is not None and abs(r - prev) <= self.noise_mm and r <= self.max_level_mm:
                self._accept(t, r)
            return
        change = r - self.level
        if self.mode == OBSTRUCTED:
            stepped_down = prev - r > self.rise_bound(ticks.diff(t, prev_t))
            if (not stepped_down or r > self.max_level_mm
                    or change > self.rise_bound(ticks.diff(t, self.level_t))):
                self._still_obstructed(t)
                return
            self._end_obstruction(t)
            self.mode = PENDING if abs(change) > self.noise_mm else CLEAR
            if self.mode == CLEAR:
                self._accept(t, r)
            return
        if -self.noise_mm <= change <= self.noise_mm:
            self._accept(t, r)
        elif r > self.max_level_mm or change > self.rise_bound(ticks.diff(t, self.level_t)):
            self.mode = OBSTRUCTED
            self._obstructed_t = t
        elif self.mode == PENDING and abs(r - prev) <= self.rise_bound(ticks.diff(t, prev_t)):
            self._accept(t, r)
        else:
            self.mode = PENDING

    def fault(self, t, name):
        """A burst the driver could not take (`name` says why)."""
        self._faulted = True
        self.faults.fault(t, name)

    def _still_obstructed(self, t):
        if not self._obstruction_fault and ticks.diff(t, self._obstructed_t) >= self.obstructed_ms:
            self._obstruction_fault = True
            self.events.append({"t": t, "kind": "fault", "sensor": self.sensor,
                                "fault": "view_obstructed", "active": True})

    def _end_obstruction(self, t):
        if self._obstruction_fault:
            self._obstruction_fault = False
            self.events.append({"t": t, "kind": "fault", "sensor": self.sensor,
                                "fault": "view_obstructed", "active": False})

    def _accept(self, t, r):
        dt = 0 if self.level_t is None else ticks.diff(t, self.level_t)
        self.level = r
        self.level_t = t
        self.mode = CLEAR
        self._update_rate(t, r)
        self._update_alert(t, r)
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
        pts_t = self._pts_t
        pts_l = self._pts_l
        pts_t.append(t)
        pts_l.append(r)
        while len(pts_t) > _RATE_POINTS or (
                len(pts_t) > 2 and ticks.diff(t, pts_t[1]) >= self.rate_window_ms):
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
