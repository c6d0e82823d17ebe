"""Ultrasonic ranging: echo round-trip times (µs) to a distance (integer mm).

All arithmetic is on integers so the ESP32 (single-precision floats) and the
desk give the same millimetre for the same echo:

- The speed of sound comes from the air temperature, humidity and pressure
  (`speed_mm_s`), recomputed only when the environment changes.
- A burst of pings is reduced by its median after dropping outliers
  (`reduce_burst`); a ping that timed out, fell in the blind zone or beyond
  the range is never turned into a number. When fewer than half of the
  pings agree, the burst is a fault.

Faults are negative integers so a reading is one small int either way.
"""

NO_ECHO = -1
BLIND_ZONE = -2
OUT_OF_RANGE = -3
INCONSISTENT = -4

FAULT_NAMES = {
    NO_ECHO: "no_echo",
    BLIND_ZONE: "blind_zone",
    OUT_OF_RANGE: "out_of_range",
    INCONSISTENT: "inconsistent",
}

# Saturation vapour pressure of water in Pa, every 5 °C from -40 to +60 °C
# (Magnus form, Alduchov & Eskridge 1996).
_PSAT_PA = (19, 31, 51, 81, 126, 192, 287, 422, 611, 872, 1226, 1702, 2333,
            3162, 4237, 5618, 7375, 9590, 12361, 15796, 20023)

# Blind zone, farthest distance (mm) and echo timeout (µs) per ranging part.
RANGERS = {
    "hc-sr04": (20, 4000, 38000),
    "jsn-sr04t": (250, 6000, 38000),
    "a02yyuw": (30, 4500, 38000),
}

SPEED_DRY_0C_MM_S = 331300
HALF_SPEED_SHIFT = 16


def isqrt(n):
    """Integer square root (floor) of a non-negative int."""
    if n < 2:
        return n
    x = n
    y = (x + 1) >> 1
    while y < x:
        x = y
        y = (x + n // x) >> 1
    return x


def psat_pa(temp_cc):
    """Saturation vapour pressure (Pa) at `temp_cc` hundredths of a °C."""
    i = (temp_cc + 4000) // 500
    if i < 0:
        return _PSAT_PA[0]
    if i >= len(_PSAT_PA) - 1:
        return _PSAT_PA[-1]
    frac = (temp_cc + 4000) - i * 500
    lo = _PSAT_PA[i]
    return lo + (_PSAT_PA[i + 1] - lo) * frac // 500


def speed_mm_s(temp_cc, rh_permille=0, pressure_pa=101325):
    """Speed of sound in mm/s.

    Dry air: c = 331.3 m/s * sqrt(1 + T / 273.15). Water vapour with mole
    fraction h = RH * psat(T) / p lowers the molar mass and slightly the
    heat-capacity ratio; to first order c grows by 0.159 * h (about +0.5 %
    at 30 °C and 80 % RH, as in Cramer 1993).
    """
    dry = isqrt(SPEED_DRY_0C_MM_S * SPEED_DRY_0C_MM_S * (27315 + temp_cc) // 27315)
    if rh_permille <= 0 or pressure_pa <= 0:
        return dry
    h_ppm = rh_permille * psat_pa(temp_cc) * 1000 // pressure_pa
    return dry + dry * 159 * h_ppm // 1000000000


def half_speed_q16(c_mm_s):
    """Millimetres per microsecond of round trip, in 16-bit fixed point.

    distance_mm = (echo_us * q + 32768) >> 16 keeps every product under 2**30
    for echoes up to 65 ms.
    """
    return (c_mm_s << HALF_SPEED_SHIFT) // 2000000


def echo_to_mm(echo_us, q16):
    return (echo_us * q16 + 32768) >> HALF_SPEED_SHIFT


class Ranger:
    """One ultrasonic sensor's limits, and its burst reduction.

    `min_mm` is the blind zone, `max_mm` the farthest valid distance,
    `timeout_us` the echo wait (0 or anything at or past it is no echo),
    `tolerance_mm` how far from the median a ping may lie and still count.
    """

    def __init__(self, min_mm=20, max_mm=4000, timeout_us=38000, tolerance_mm=25):
        self.min_mm = min_mm
        self.max_mm = max_mm
        self.timeout_us = timeout_us
        self.tolerance_mm = tolerance_mm
        self._valid = []

    def reduce_burst(self, pings, q16=None):
        """Distance in mm from a burst, or a fault (< 0): `pings` are echo
        round-trip times (µs) converted with the half speed of sound `q16`,
        or, with no `q16`, distances a UART part measured itself (mm); 0 is
        a ping with no reading.

        The median of the pings within `tolerance_mm` (or 1/64 of the
        distance, if larger) of the median of all valid pings; a fault when
        those are not more than half of the burst.
        """
        valid = self._valid
        del valid[:]
        blind = 0
        far = 0
        timeout = self.timeout_us
        for v in pings:
            if v <= 0:
                continue
            if q16 is not None:
                if v >= timeout:
                    continue
                v = (v * q16 + 32768) >> HALF_SPEED_SHIFT  # echo_to_mm, inlined: the hot loop
            if v < self.min_mm:
                blind += 1
            elif v > self.max_mm:
                far += 1
            else:
                valid.append(v)
        return self._reduce(len(pings), blind, far)

    def _reduce(self, n, blind, far):
        valid = self._valid
        if 2 * len(valid) <= n:
            # The most common way the pings failed; a tie goes to the blind
            # zone, since it means something is close to the sensor.
            silent = n - len(valid) - blind - far
            if blind and blind >= far and blind >= silent:
                return BLIND_ZONE
            if far and far >= silent:
                return OUT_OF_RANGE
            return NO_ECHO
        valid.sort()
        med = _median_sorted(valid)
        tol = self.tolerance_mm
        if med >> 6 > tol:
            tol = med >> 6
        lo = 0
        hi = len(valid)
        while valid[lo] < med - tol:
            lo += 1
        while valid[hi - 1] > med + tol:
            hi -= 1
        if 2 * (hi - lo) <= n:
            return INCONSISTENT
        return _median_sorted(valid, lo, hi)


def _median_sorted(values, lo=0, hi=None):
    if hi is None:
        hi = len(values)
    m = (lo + hi) >> 1
    if (hi - lo) & 1:
        return values[m]
    return (values[m - 1] + values[m]) >> 1
