"""Parking-bay occupancy from an ultrasonic distance or a magnetometer.

Both detectors share one shape: learn the empty bay (calibration), measure
how far each reading departs from it, compare with an enter threshold while
free and a lower exit threshold while occupied (hysteresis), and change
state only after the evidence has held for a dwell time (`Dwell`).
The empty-bay reference follows slow drift, but only while the bay is free
and the reading is quiet, so a parked car is never learned as "empty".

Events (dicts with `t`, `kind`, `sensor`) are appended to a shared list.
"""

from citynode import ticks
from citynode.sense.filters import FaultWatch, follow
from citynode.sense.ranging import BLIND_ZONE, FAULT_NAMES, isqrt

# ---- filters only the bays use


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


# ---- the bays


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
        """Weigh one reading's evidence; True (and an event) when the state flips."""
        if self.dwell.update(t, want):
            self._emit(t)
            return True
        return False

    def _emit(self, t):
        self.events.append({"t": t, "kind": "occupancy", "sensor": self.sensor,
                            "state": "occupied" if self.dwell.state else "free"})

    def _dt(self, t):
        """ms since the last reading: 0 for the first one and for a negative
        (aliased) difference."""
        dt = 0 if self.last_t is None else ticks.diff(t, self.last_t)
        self.last_t = t
        return dt if dt > 0 else 0

    def restart(self, t):
        """After a silence the core cannot bridge: forget every interval-based
        quantity (evidence, the last tick, a calibration under way) and keep
        what is still true of the site (the empty reference, the noise, the
        state). Emits nothing."""
        self.last_t = None
        self.dwell.reset(self.dwell.state)
        self._restart()


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

    def _restart(self):
        self._cal = []
        self._cal_t = None

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


_RAW_LIMIT = 32767  # a 16-bit magnetometer's range: anything beyond is clamped
_AXIS_LIMIT = 16383  # |deviation| per axis kept in products: 3 · 16383² < 2**30


def _clamp(v, limit):
    return limit if v > limit else -limit if v < -limit else v


def _raw(v):
    """A reading as an int within a 16-bit part's range (NaN counts as the low end)."""
    if -_RAW_LIMIT <= v <= _RAW_LIMIT:
        return int(v)
    return _RAW_LIMIT if v > 0 else -_RAW_LIMIT


def _dot(a, b):
    """a·b for vectors of counts clamped to ±_AXIS_LIMIT (< 2**30)."""
    return _clamp(a[0], _AXIS_LIMIT) * _clamp(b[0], _AXIS_LIMIT) + \
        _clamp(a[1], _AXIS_LIMIT) * _clamp(b[1], _AXIS_LIMIT) + \
        _clamp(a[2], _AXIS_LIMIT) * _clamp(b[2], _AXIS_LIMIT)


def _diff(a, b):
    """(a − b) in counts for two Q4 vectors."""
    return [(a[0] - b[0]) >> 4, (a[1] - b[1]) >> 4, (a[2] - b[2]) >> 4]


def _median3(a, b, c):
    if a > b:
        a, b = b, a
    return a if c < a else b if c > b else c


def _counts(ut, lsb):
    c = int(round(ut * lsb))
    return c if c < _AXIS_LIMIT else _AXIS_LIMIT


class MagneticBay(_Bay):
    """A bay watched by a magnetometer in the ground (QMC5883L class).

    Works in the sensor's raw counts; `lsb_per_ut` converts the config's µT
    (default 120: a QMC5883L at ±2 G, 12000 LSB per gauss). Design and
    sources: docs/detectors-bays.md.

    - Every axis is the median of the last three readings (an isolated
      reading, such as a parked car's momentary dip, never passes), then a
      first-order low-pass (`smooth_s`, 0.5 s: about a 1 s window, the
      same filter at any sample rate) so fast periodic interference does
      not reach the decisions. A slower copy of it (the *level*, time
      constant 4 × `smooth_s`) is re-anchored on the smoothed field
      whenever the two part by more than 3σ; while it is not, the field is
      *steady*.
    - The empty-bay field (`base`) is the level once the field has been
      steady for `calibrate_s` (10 s); it then follows drift (`drift_tau_s`)
      while the bay is free and quiet. The noise is the mean |smoothed −
      base| while free (clipped at 3 × itself: a robust mean absolute
      deviation over `noise_tau_s`, 30 s, that follows noise rising for
      good); σ = mean / 1.6 for three axes of Gaussian noise. While 3σ
      exceeds `weak_ut` (10 µT) the `noisy` fault is active. While free,
      noise that rises is learnt within seconds from the smoothed field's
      spread about the level (a change of variance, not of the mean).
    - Thresholds on the vector deviation d = |smoothed − base|: enter at
      max(3σ, `enter_ut` 4 µT) with σ also taken from the recent spread,
      exit at max(2.5σ, `exit_ut` 2 µT); the
      floors keep a car in the next bay from flipping this one.
    - Arrival: evidence is d ≥ enter while steady (or d ≥ 2 × enter),
      accumulated over `dwell_on_s` by `Dwell`. The first steady
      level after it is the car's signature.
    - Departure: evidence is d ≤ exit, or a steady level that is not this
      car's (more than half of its signature gone, or moved from it by an
      enter threshold) within `settle_ut` (10 µT) of the old empty field;
      accumulated over `dwell_off_s`; or the mean field since the arrival
      (over `noise_tau_s` / 3) back at the empty one (it was interference).
      Freed by the second kind, the bay learns that level as its new empty
      field. A car that sits still keeps
      its signature and is never learnt as empty.

    All arithmetic is on ints below 2**30; the state is a few small ints.
    """

    def __init__(self, sensor, events, cfg):
        cfg_cal = dict(cfg)
        cfg_cal.setdefault("calibrate_s", 10)
        super().__init__(sensor, events, cfg_cal)
        lsb = cfg.get("lsb_per_ut", 120)
        enter = _counts(cfg.get("enter_ut", 4), lsb)
        exit_ = _counts(cfg.get("exit_ut", 2), lsb)
        settle = _counts(cfg.get("settle_ut", 10), lsb)
        self.weak = _counts(cfg.get("weak_ut", 10), lsb)
        self.noisy = False
        self.enter_floor2 = enter * enter
        self.exit_floor2 = exit_ * exit_
        self.settle2 = settle * settle
        self.smooth_ms = max(1, _ms(cfg, "smooth_s", 0.5))
        self.noise_ms = max(1, _ms(cfg, "noise_tau_s", 30))
        self.tau_ms = max(1, self.tau_ms)
        self.mean_min = (int(lsb) // 10 + 1) << 4  # 0.1 µT, in Q4 counts
        self.recalibrate()

    def recalibrate(self):
        self.base = None
        self.mean = self.mean_min
        self.car = None
        self.fresh_ms = 0
        self._slow_ms = 0
        self.last2 = None
        self.sm = None
        self.level = None
        self.mean_sm = None
        self.spread = 0
        self.anchor = None
        self.steady_ms = 0
        self.last_dev2 = 0
        self.dwell.reset()

    def _restart(self):
        self._slow_ms = 0
        self.sm = None
        self.last2 = None
        self.level = None
        self.steady_ms = 0

    @property
    def ready(self):
        """True once the empty-bay field is known and decisions are made."""
        return self.base is not None

    def sigma(self, mean=None):
        """The noise σ of the smoothed field, in counts (mean |d| / 1.6, of
        `self.mean` or the Q4 `mean` given), at most a quarter of the axis
        limit so 9σ² stays a small int."""
        s = (self.mean if mean is None else mean) * 5 >> 7
        return s if s < _AXIS_LIMIT // 4 else _AXIS_LIMIT // 4

    def thresholds2(self):
        """(enter², exit²) in counts² for the current noise estimate."""
        s = self.sigma()
        e2 = 9 * s * s
        x2 = 25 * s * s >> 2
        return (e2 if e2 > self.enter_floor2 else self.enter_floor2,
                x2 if x2 > self.exit_floor2 else self.exit_floor2)

    def steady2(self):
        """The field's steady tolerance², counts²: 3σ (noise alone passes it
        at 99 % of the independent values, so a steady run of many seconds
        is as likely at 1 Hz as at 11 Hz), at least the exit floor."""
        s = self.sigma()
        return 9 * s * s if 9 * s * s > self.exit_floor2 else self.exit_floor2

    def update(self, t, x, y, z):
        self.faults.ok(t)
        dt = self._dt(t)
        raw = [_raw(x), _raw(y), _raw(z)]
        sm = self.sm
        if sm is None:
            self.last2 = [raw, raw]
            self.sm = sm = [raw[0] << 4, raw[1] << 4, raw[2] << 4]
            self.level = list(sm)
        else:
            a, b = self.last2
            self.last2 = [b, raw]
            for i in range(3):
                sm[i] = lowpass(sm[i], _median3(a[i], b[i], raw[i]) << 4, dt, self.smooth_ms)
        enter2, exit2 = self.thresholds2()
        level = self.level
        moved = _diff(sm, level)
        moved2 = _dot(moved, moved)
        if moved2 > self.steady2():
            self.level = level = list(sm)
            # while calibrating, steadiness is evidence over time: a moment
            # of interference takes back its own interval, not the whole run
            cal = self.base is None and self.steady_ms > dt
            self.steady_ms = self.steady_ms - dt if cal else 0
            steady = False
        else:
            for i in range(3):
                level[i] = lowpass(level[i], sm[i], dt, 4 * self.smooth_ms)
            steady = True
            if self.steady_ms < self.tau_ms + self.cal_ms:
                self.steady_ms += dt
        if self.base is None:
            self._calibrate(dt, moved)
            return
        d = _diff(sm, self.base)
        d2 = _dot(d, d)
        self.last_dev2 = d2
        if not self.dwell.state:
            self._rise(t, dt, moved2)
            # an arrival is a shift beyond 3σ of the noise at both time scales:
            # the slow estimate and the spread of the last seconds (5/4 of
            # which is the mean |d| of steady noise)
            s = self.sigma(self.spread * 5 >> 2)
            if 9 * s * s > enter2:
                enter2 = 9 * s * s
            # a car rolling in is not steady yet, but it moves the field one
            # way: far beyond enter and moving by less than a quarter of that counts
            rolling = d2 >= enter2 << 2 and moved2 << 4 < d2
            if self._decide(t, d2 >= enter2 and (steady or rolling)):
                self.car = None  # the car's signature: its first steady level
                self.mean_sm = list(sm)
                return
            self._learn(t, dt, d2, exit2)
        else:
            r = _diff(level, self.base)
            gone = steady and self.car is not None and self._gone(r)
            # the mean field since the arrival (over `noise_tau_s` / 3): back
            # at the empty field, what was seen was interference, not a car
            ms = self.mean_sm
            if ms is None:
                self.mean_sm = ms = list(sm)
            for i in range(3):
                ms[i] = lowpass(ms[i], sm[i], dt, self.noise_ms // 3 + 1)
            back = _diff(ms, self.base)
            back = _dot(back, back) <= exit2
            if self._decide(t, d2 > exit2 and not gone and not back):
                self.fresh_ms = self.cal_ms  # gone: learn the empty field anew
                if gone:
                    self.base = list(level)
                self.anchor = list(self.base)
            elif self.steady_ms >= self.dwell.off_ms:
                self._track(r, dt)

    def _learn(self, t, dt, d2, exit2):
        """While free. For `calibrate_s` after a departure the empty field
        settles onto the field wherever it goes within `settle_ut` of the
        empty field at the departure (the car has just gone: what is left
        is the empty bay). Otherwise: the noise
        from every deviation, clipped at 3 × the mean (a burst or a car
        arriving moves it by a bounded step, noise that rose for good is
        followed) and, when quiet, drift of the empty field.
        The slow filters step at most once a second (with the time since
        their last step), so their integer steps do not vanish at fast
        sampling."""
        b = self.base
        sm = self.sm
        if self.fresh_ms > 0:
            self.fresh_ms -= dt
            a = _diff(sm, self.anchor)
            if _dot(a, a) <= self.settle2:  # within settle_ut of the field at the departure
                for i in range(3):
                    b[i] = lowpass(b[i], sm[i], dt, 4 * self.smooth_ms)
        self._slow_ms += dt
        if self._slow_ms < 1000:
            return
        dt = self._slow_ms
        self._slow_ms = 0
        m = isqrt(d2) << 4
        cap = 3 * self.mean
        m = smooth(self.mean, m if m < cap else cap, dt, self.noise_ms)
        self.mean = m if m > self.mean_min else self.mean_min
        self._check_noise(t)
        if d2 < exit2 and self.fresh_ms <= 0:
            for i in range(3):
                b[i] = smooth(b[i], sm[i], dt, self.tau_ms)

    def _rise(self, t, dt, moved2):
        """While free, noise that rises is learnt fast from the smoothed
        field's spread about its own level (|smoothed − level|, averaged over
        4 × `smooth_s`; on steady noise it is about 0.8 of the mean |d| at
        11 Hz and at 1 Hz alike). A change of the noise is a change of
        variance with no lasting shift of the mean, so the level cannot
        follow it and the spread grows with it; a car is a coherent shift
        that the level re-anchors on within a moment. Whenever the spread
        exceeds the mean, the mean follows it with a time constant of
        `noise_tau_s` / 10 (an envelope follower's fast attack; the decay
        stays the slow estimate of `_learn`), so noise that sets in is
        learnt before it can pass for a car. Each reading counts at most
        3 × the mean. Not while occupied: a departing car's field moves in
        a ramp that is a shift, not noise."""
        v = isqrt(moved2) << 4
        cap = 3 * self.mean
        self.spread = s = lowpass(self.spread, v if v < cap else cap, dt, 4 * self.smooth_ms)
        if s > self.mean:
            self.mean = lowpass(self.mean, s, dt, self.noise_ms // 10 + 1)
            self._check_noise(t)

    def _check_noise(self, t):
        """Raise the `noisy` fault while the enter threshold (3σ) exceeds
        `weak_ut` (10 µT, the strongest of the weak signatures real cars
        show): a car that weak is then not seen, and is not claimed. It
        clears below 4/5 of that, so an estimate wavering at the limit does
        not chatter."""
        s = 3 * self.sigma()
        noisy = s > self.weak if not self.noisy else 5 * s > 4 * self.weak
        if noisy != self.noisy:
            self.noisy = noisy
            self.events.append({"t": t, "kind": "fault", "sensor": self.sensor, "fault": "noisy",
                                "active": noisy})

    def _gone(self, r):
        """True if the steady level `r` (counts from the empty field) is not
        this car's: more than half of its signature has gone (or the field
        has moved from it by an enter threshold), and what is left is an
        offset an empty bay can show (`settle_ut`)."""
        car = self.car
        if _dot(r, r) > self.settle2:
            return False
        cc = _dot(car, car)
        moved = [r[0] - car[0], r[1] - car[1], r[2] - car[2]]
        return _dot(r, car) < cc >> 1 or _dot(moved, moved) >= self.thresholds2()[0]

    def _track(self, r, dt):
        """Steady while occupied: the first steady level is the car's
        signature; a car that finished rolling in shows a stronger one (by
        more than the field's steady tolerance: noise does not ratchet it up);
        one that sits still only drifts slowly. Another vehicle's field (not
        this car's, and too far from the empty field for a departure)
        becomes the signature to judge its departure by."""
        car = self.car
        if car is None:
            self.car = r
            return
        moved = [r[0] - car[0], r[1] - car[1], r[2] - car[2]]
        if _dot(r, r) > _dot(car, car) and _dot(r, car) > 0 and _dot(moved, moved) > self.thresholds2()[1]:
            self.car = r
        elif self._gone(r):
            return
        elif _dot(r, car) >= _dot(car, car) >> 1:
            for i in range(3):
                car[i] = smooth(car[i] << 4, r[i] << 4, dt, self.tau_ms) >> 4
        else:
            self.car = r

    def _calibrate(self, dt, moved):
        """Until the field has been steady for `calibrate_s`: that level is
        the empty field; the noise starts from how far the smoothed field
        strays from it."""
        m = isqrt(_dot(moved, moved)) << 4
        m = smooth(self.mean, m, dt, self.cal_ms // 4 + 1)
        self.mean = m if m > self.mean_min else self.mean_min
        if self.steady_ms >= self.cal_ms:
            self.base = list(self.level)
