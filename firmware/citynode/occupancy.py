"""Parking-bay occupancy from an ultrasonic distance or a magnetometer.

Both detectors share one shape: learn the empty bay (calibration), measure
how far each reading departs from it, compare with an enter threshold while
free and a lower exit threshold while occupied (hysteresis), and change
state only after the evidence has held for a dwell time (`filters.Dwell`).
The empty-bay reference follows slow drift, but only while the bay is free
and the reading is quiet, so a parked car is never learned as "empty".

Events (dicts with `t`, `kind`, `sensor`) are appended to a shared list.
"""

from citynode import ticks
from citynode.filters import Dwell, FaultWatch, follow
from citynode.ranging import BLIND_ZONE, FAULT_NAMES


def _ms(cfg, key, default_s):
    return ticks.ms(cfg.get(key, default_s))


class _Bay:

    def __init__(self, sensor, events, cfg):
        self.sensor = sensor
        self.events = events
        self.dwell = Dwell(_ms(cfg, "dwell_on_s", 3), _ms(cfg, "dwell_off_s", 3))
        self.faults = FaultWatch(sensor, events, _ms(cfg, "fault_after_s", 30))
        self.cal_ms = _ms(cfg, "calibrate_s", 5)
        self.tau_ms = _ms(cfg, "drift_tau_s", 300)
        self.last_t = None

    @property
    def occupied(self):
        return self.dwell.state

    def fault(self, t, name):
        """A reading the driver could not take (`name` says why)."""
        self.faults.fault(t, name)

    def _decide(self, t, want):
        if self.dwell.update(t, want):
            self.events.append({"t": t, "kind": "occupancy", "sensor": self.sensor,
                                "state": "occupied" if self.dwell.state else "free"})

    def _dt(self, t):
        dt = 0 if self.last_t is None else ticks.diff(t, self.last_t)
        self.last_t = t
        return dt


class UltrasonicBay(_Bay):
    """A bay watched by a distance sensor above it (or facing it).

    Config (mm and seconds): `empty_mm` (the distance to the empty bay's
    floor; learned over `calibrate_s` when absent), `enter_mm` (how much
    closer than empty a reading must be to call the bay occupied, default
    400), `exit_mm` (closer than empty by less than this frees it, default
    250), `dwell_on_s`/`dwell_off_s` (3 s), `drift_tau_s` (300 s),
    `fault_after_s` (30 s). A burst in the blind zone counts as something
    close (a tall van), not as a fault.
    """

    def __init__(self, sensor, events, cfg):
        super().__init__(sensor, events, cfg)
        self.enter_mm = cfg.get("enter_mm", 400)
        self.exit_mm = cfg.get("exit_mm", 250)
        empty = cfg.get("empty_mm")
        self.base_q8 = None if empty is None else int(empty) << 8
        self._cal = []
        self._cal_t = None
        self.last_mm = None

    @property
    def empty_mm(self):
        return None if self.base_q8 is None else self.base_q8 >> 8

    @property
    def ready(self):
        """True once the empty reference is known and a reading was taken."""
        return self.base_q8 is not None and self.last_mm is not None

    def recalibrate(self):
        self.base_q8 = None
        self.last_mm = None
        self._cal = []
        self._cal_t = None
        self.dwell.reset()

    def update(self, t, mm):
        if mm < 0 and mm != BLIND_ZONE:
            self.fault(t, FAULT_NAMES[mm])
            return
        self.faults.ok(t)
        dt = self._dt(t)
        self.last_mm = mm
        if self.base_q8 is None:
            self._calibrate(t, mm)
            return
        empty = self.base_q8 >> 8
        closer = empty if mm == BLIND_ZONE else empty - mm
        want = closer > self.exit_mm if self.dwell.state else closer >= self.enter_mm
        self._decide(t, want)
        if not self.dwell.state and -self.exit_mm < 2 * closer < self.exit_mm:
            self.base_q8 = follow(self.base_q8, mm << 8, dt, self.tau_ms)

    def _calibrate(self, t, mm):
        if mm == BLIND_ZONE:
            return
        if self._cal_t is None:
            self._cal_t = t
        self._cal.append(mm)
        if ticks.diff(t, self._cal_t) >= self.cal_ms and len(self._cal) >= 3:
            self._cal.sort()
            self.base_q8 = self._cal[len(self._cal) // 2] << 8
            self._cal = []


_AXIS_LIMIT = 16383


def _clamped_square(d):
    if d > _AXIS_LIMIT or d < -_AXIS_LIMIT:
        return _AXIS_LIMIT * _AXIS_LIMIT
    return d * d


class MagneticBay(_Bay):
    """A bay watched by a magnetometer in the ground (QMC5883L class).

    Works in the sensor's raw counts; `lsb_per_ut` converts the config's µT
    (default 120: a QMC5883L at ±2 G, 12000 LSB per gauss).
    The empty-bay field (Q8 per axis) and the noise variance of |B - base|
    (counts²) are learned over `calibrate_s` (10 s) and then follow drift with
    `drift_tau_s` (300 s) while the bay is free and quiet. Thresholds on
    |B - base|: enter at max(3σ, `enter_ut`, default 6 µT), exit at
    max(1.5σ, `exit_ut`, default 3 µT); the floors keep a car in the next
    bay (a few µT) from flipping this one. All comparisons are on squared
    integers: no float, no square root.
    """

    def __init__(self, sensor, events, cfg):
        cfg_cal = dict(cfg)
        cfg_cal.setdefault("calibrate_s", 10)
        super().__init__(sensor, events, cfg_cal)
        lsb = cfg.get("lsb_per_ut", 120)
        enter = int(round(cfg.get("enter_ut", 6) * lsb))
        exit_ = int(round(cfg.get("exit_ut", 3) * lsb))
        self.enter_floor2 = enter * enter
        self.exit_floor2 = exit_ * exit_
        floor_sigma = lsb // 10 + 1
        self.var_min = floor_sigma * floor_sigma
        self.recalibrate()

    def recalibrate(self):
        self.base = None
        self.var = self.var_min
        self._cal = []
        self._cal_t = None
        self.last_dev2 = 0
        self.dwell.reset()

    @property
    def ready(self):
        """True once the empty-bay field is known and decisions are made."""
        return self.base is not None

    def thresholds2(self):
        """(enter², exit²) in counts² for the current noise estimate."""
        v9 = 9 * self.var
        enter2 = v9 if v9 > self.enter_floor2 else self.enter_floor2
        exit2 = v9 >> 2
        if exit2 < self.exit_floor2:
            exit2 = self.exit_floor2
        return enter2, exit2

    def dev2(self, x, y, z):
        """|B - base|² in counts², each axis clamped to keep it a small int."""
        b = self.base
        return _clamped_square(x - (b[0] >> 8)) + _clamped_square(y - (b[1] >> 8)) + \
            _clamped_square(z - (b[2] >> 8))

    def update(self, t, x, y, z):
        self.faults.ok(t)
        dt = self._dt(t)
        if self.base is None:
            self._calibrate(t, x, y, z)
            return
        d2 = self.dev2(x, y, z)
        self.last_dev2 = d2
        enter2, exit2 = self.thresholds2()
        want = d2 > exit2 if self.dwell.state else d2 >= enter2
        self._decide(t, want)
        if not self.dwell.state and d2 < exit2:
            b = self.base
            b[0] = follow(b[0], x << 8, dt, self.tau_ms)
            b[1] = follow(b[1], y << 8, dt, self.tau_ms)
            b[2] = follow(b[2], z << 8, dt, self.tau_ms)
            v = follow(self.var, d2, dt, self.tau_ms)
            self.var = v if v > self.var_min else self.var_min

    def _calibrate(self, t, x, y, z):
        if self._cal_t is None:
            self._cal_t = t
        self._cal.append((x, y, z))
        n = len(self._cal)
        if ticks.diff(t, self._cal_t) < self.cal_ms or n < 3:
            return
        base = [0, 0, 0]
        for s in self._cal:
            for i in range(3):
                base[i] += s[i]
        self.base = [(base[i] << 8) // n for i in range(3)]
        var = 0
        for s in self._cal:
            var += self.dev2(s[0], s[1], s[2])
        var //= n
        self.var = var if var > self.var_min else self.var_min
        self._cal = []
