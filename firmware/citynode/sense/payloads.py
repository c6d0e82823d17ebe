"""What the node publishes, as plain dicts (the MQTT layer adds topics'
prefix, sequence numbers and JSON). Units are in the key names; see
docs/payloads.md. Every payload gets `ts`, UTC epoch seconds, from the core.
"""

from citynode.sense.flood import ALERT_NAMES, MODE_NAMES


def bay(det):
    return {"state": "occupied" if det.occupied else "free"}


def water(det, fault=None, air=None):
    """The level the flood logic holds; `fault` names why this measurement
    failed, if it did (the level is then the last accepted one), else the
    level's own fault (`above_max`: deeper than credible, published as
    `max_level_mm`); `air` says
    the speed of sound did not come from a good, current BME280 reading
    ("held": its last good one, "default": none was ever good)."""
    p = {"sensor": det.sensor, "level_mm": det.level, "rate_mm_min": det.rate_mm_min,
         "alert": ALERT_NAMES[det.alert], "state": MODE_NAMES[det.mode]}
    if fault is None:
        fault = det.level_fault
    if fault is not None:
        p["fault"] = fault
    if air is not None:
        p["air"] = air
    return p


def env(temp_cc, rh_permille, pressure_pa, speed_mm_s):
    return {"temp_c": temp_cc / 100, "humidity_pct": rh_permille / 10,
            "pressure_pa": pressure_pa, "sound_mm_s": speed_mm_s}
