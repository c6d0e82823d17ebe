"""Plausibility of the air readings (BME280) that set the speed of sound.

Whatever the source (the driver on the board, a recording on the desk),
a reading is judged before it reaches the ranging, in this order:

- `air_out_of_range`: not a number, not finite, or outside the part's
  operating range: -40...85 °C, 0...100 %RH, 30...110 kPa (Bosch BME280
  datasheet, section 1). No number, however absurd, raises.
- `air_stuck`: temperature, humidity and pressure all exactly as in the
  previous reading for `STUCK_MS` (30 min). A working BME280 resolves
  0.01 °C and about 2 Pa, and outdoor air moves it by more than that in
  minutes; a failed one repeats a register value.
- `air_far_from_history`: more than `T_FAR_CC` (30 °C) or `P_FAR_PA`
  (60 hPa) from the slow history of accepted readings (a first-order mean
  with a one-day time constant, `HISTORY_TAU_MS`, started once accepted
  readings have run unbroken for `HISTORY_MIN_MS`, 2 h). The widest diurnal
  range at a street site is about 30 °C (±15 °C about the daily mean),
  so 30 °C leaves room for a front on top; the sea-level pressure at one
  site has a standard deviation of about 10 hPa and only the deepest
  cyclones go 60 hPa below normal.
- `air_jump`: a change from the last accepted reading faster than air
  changes: more than 1 °C plus 2 °C per minute, or more than 1 hPa plus
  3 hPa per minute. The fastest common natural changes are storm outflows
  (10-15 °C in 10-30 minutes, under 1.5 °C/min) and the pressure jump of a
  squall line (a few hPa in minutes); the fixed part covers the sensor's
  noise (0.15 °C, 1.2 Pa rms) and rounding.

A failed part that reports an absurd value and then plausible garbage
(-146 °C, then -38 °C, 928 hPa, 100 %RH) thus starts with a jump, stays far
from the history and soon repeats itself: it never becomes the air, while
a part that comes back within the bounds is taken again at once. Only
accepted readings feed the history, so garbage cannot pull it along.

Units: temperature in hundredths of a °C (`_cc`), humidity in tenths of a
% (permille), pressure in Pa, ticks in ms; all integers once judged.
"""

from citynode import ticks
from citynode.sense.filters import FaultWatch, follow

T_MIN_C = -40
T_MAX_C = 85
P_MIN_PA = 30000
P_MAX_PA = 110000
T_STEP_CC = 100
T_RATE_CC_MIN = 200
P_STEP_PA = 100
P_RATE_PA_MIN = 300
T_FAR_CC = 3000
P_FAR_PA = 6000
STUCK_MS = 1800000
HISTORY_TAU_MS = 86400000
HISTORY_MIN_MS = 7200000
_HISTORY_DT_MS = 3600000  # the history moves by at most an hour's worth per reading


def _number(v, lo, hi):
    """True for an int or float within [lo, hi] (NaN and infinities never are)."""
    return (type(v) is int or type(v) is float) and lo <= v <= hi


def reading(sample):
    """(temp_cc, rh_permille, pressure_pa) from a BME280 sample dict, or None
    when any value is missing, not a number or outside the part's range."""
    t = sample.get("temp_c")
    rh = sample.get("humidity_pct")
    p = sample.get("pressure_pa")
    if not (_number(t, T_MIN_C, T_MAX_C) and _number(rh, 0, 100) and _number(p, P_MIN_PA, P_MAX_PA)):
        return None
    return int(round(t * 100)), int(round(rh * 10)), int(round(p))


def _bound(step, rate_min, dt_ms):
    """step + rate_min per minute over `dt_ms` (a long interval counts as a day)."""
    if dt_ms < 0 or dt_ms > 86400000:
        dt_ms = 86400000
    return step + rate_min * (dt_ms // 1000) // 60


class AirCheck:
    """The air of one env sensor: `good` (the last accepted reading, or None)
    and its tick `good_t`; `verdict` is None after an accepted reading, else
    the name of what was wrong with the latest one. Faults lasting
    `after_ms` become events through a FaultWatch."""

    def __init__(self, sensor, events, after_ms):
        self.faults = FaultWatch(sensor, events, after_ms)
        self.good = None
        self.good_t = None
        self.verdict = None
        self.hist_t_q8 = None  # the history, Q8 (value << 8)
        self.hist_p_q8 = None
        self._run_t = None  # while the history is being seeded: when the run of accepted readings began
        self._prev = None
        self._stuck_since = None

    def check(self, t, sample):
        """Judge one sample (a dict) taken at tick `t`; True if it is now the
        air. A driver fault (`{"fault": name}`) is judged as that fault."""
        name = sample.get("fault")
        air = None
        if name is None:
            air = reading(sample)
            name = self._judge(t, air)
        if name is None:
            self.verdict = None
            self.faults.ok(t)
            self._accept(t, air)
            return True
        self.verdict = name if type(name) is str else "bad_sample"
        if self._run_t is not None:
            self.hist_t_q8 = self._run_t = None
        self.faults.fault(t, self.verdict)
        return False

    def _judge(self, t, air):
        if air is None:
            self._prev = None
            self._stuck_since = None
            return "air_out_of_range"
        prev = self._prev
        self._prev = air
        if prev != air:
            self._stuck_since = None
        elif self._stuck_since is None:
            self._stuck_since = t
        if self._stuck_since is not None and ticks.diff(t, self._stuck_since) >= STUCK_MS:
            return "air_stuck"
        hist_t = self.hist_t_q8
        if self._run_t is None and hist_t is not None and (
                abs(air[0] - (hist_t >> 8)) > T_FAR_CC or abs(air[2] - (self.hist_p_q8 >> 8)) > P_FAR_PA):
            return "air_far_from_history"
        good = self.good
        if good is not None and self.good_t is not None:
            dt = ticks.diff(t, self.good_t)
            if (abs(air[0] - good[0]) > _bound(T_STEP_CC, T_RATE_CC_MIN, dt)
                    or abs(air[2] - good[2]) > _bound(P_STEP_PA, P_RATE_PA_MIN, dt)):
                return "air_jump"
        return None

    def _accept(self, t, air):
        run = self._run_t
        if self.hist_t_q8 is None or run is not None:
            # Seeding: the history is the latest reading until accepted
            # readings have run unbroken for HISTORY_MIN_MS, so a part that
            # starts with garbage cannot become the site's history.
            self.hist_t_q8 = air[0] << 8
            self.hist_p_q8 = air[2] << 8
            if run is None:
                self._run_t = t
            elif ticks.diff(t, run) >= HISTORY_MIN_MS:
                self._run_t = None
        else:
            dt = _HISTORY_DT_MS if self.good_t is None else ticks.diff(t, self.good_t)
            if dt < 0 or dt > _HISTORY_DT_MS:
                dt = _HISTORY_DT_MS
            self.hist_t_q8 = follow(self.hist_t_q8, air[0] << 8, dt, HISTORY_TAU_MS)
            self.hist_p_q8 = follow(self.hist_p_q8, air[2] << 8, dt, HISTORY_TAU_MS)
        self.good = air
        self.good_t = t

    def restart(self, t):
        """After a silence: forget what was timed before `t` (the previous
        reading, a stuck run, how long a fault has lasted, the age of the last
        good reading, which then bounds no jump); keep the last good reading
        (still the best guess of the air) and the history (the site's air)."""
        self._prev = None
        self._stuck_since = None
        if self._run_t is not None:
            self.hist_t_q8 = self._run_t = None
        if self.good is not None:
            self.good_t = None
        w = self.faults
        self.faults = FaultWatch(w.sensor, w.events, w.after_ms)
        self.faults.active = w.active
