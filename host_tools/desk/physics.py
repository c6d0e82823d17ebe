"""Physical models the synthetic recordings are drawn from (floats, CPython).

These are the *world*; the firmware core has its own integer versions and
must recover the world from raw echoes — the replay scores how well.
"""

import math

KELVIN = 273.15


def psat_pa(temp_c):
    """Saturation vapour pressure over water, Pa (Magnus form,
    Alduchov & Eskridge 1996)."""
    return 610.94 * math.exp(17.625 * temp_c / (temp_c + 243.04))


def speed_of_sound(temp_c, rh_pct=0.0, pressure_pa=101325.0):
    """Speed of sound in moist air, m/s.

    Dry air 331.3 * sqrt(1 + T/273.15); water vapour of mole fraction h
    changes the molar mass by -0.378 h and the heat-capacity ratio by
    about -0.061 h, so c grows by about 0.159 h (Cramer 1993 gives +0.5 %
    at 30 °C, 80 % RH).
    """
    dry = 331.3 * math.sqrt(1.0 + temp_c / KELVIN)
    h = rh_pct / 100.0 * psat_pa(temp_c) / pressure_pa
    gamma_ratio = 1.0 - 0.0606 * h
    molar_ratio = 1.0 - 0.378 * h
    return dry * math.sqrt(gamma_ratio / molar_ratio)


def echo_us(distance_mm, temp_c, rh_pct, pressure_pa):
    """Round-trip echo time (µs) for a target `distance_mm` away."""
    return 2.0 * distance_mm / speed_of_sound(temp_c, rh_pct, pressure_pa) * 1000.0
