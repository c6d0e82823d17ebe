"""What the node publishes, as plain dicts (the MQTT layer adds topics'
prefix, sequence numbers and JSON). Units are in the key names; see
docs/payloads.md. Every payload gets `ts`, UTC epoch seconds, from the core.
"""

from citynode.flood import ALERT_NAMES, MODE_NAMES
from citynode.ranging import FAULT_NAMES


def bay(det):
    return {"state": "occupied" if det.occupied else "free"}


def water(det, mm):
    p = {"level_mm": det.level, "rate_mm_min": det.rate_mm_min,
         "alert": ALERT_NAMES[det.alert], "state": MODE_NAMES[det.mode]}
    if mm < 0:
        p["fault"] = FAULT_NAMES[mm]
    return p


def env(temp_cc, rh_permille, pressure_pa, speed_mm_s):
    return {"temp_c": temp_cc / 100, "humidity_pct": rh_permille / 10,
            "pressure_pa": pressure_pa, "sound_mm_s": speed_mm_s}
