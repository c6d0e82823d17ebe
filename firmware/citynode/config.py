"""Checks of the node's sensor list, run once before the core is built
(at boot on the node, before a replay on the desk), so the core itself can
trust its configuration and stay small.

Every error is a ValueError whose text names the sensor and the field.
"""

from citynode.ranging import RANGERS

# Every parameter a sensor entry may carry, per type; all but `id`, `type`
# and `driver` are numbers (`thresholds_mm`: a list of three). A water
# sensor has no `period_s`: its schedule is adaptive (`fast_s`, `slow_s`).
_COMMON = ("id", "type", "driver", "fault_after_s")
_BAY = ("period_s", "dwell_on_s", "dwell_off_s", "drift_tau_s", "calibrate_s")
PARAMS = {
    "bay_ultrasonic": _COMMON + _BAY + ("pings", "tolerance_mm", "empty_mm", "enter_mm", "exit_mm"),
    "bay_magnetic": _COMMON + _BAY + ("lsb_per_ut", "enter_ut", "exit_ut", "smooth_s", "noise_tau_s",
                                      "settle_ut", "weak_ut"),
    "water": _COMMON + ("pings", "tolerance_mm", "mount_mm", "thresholds_mm", "hysteresis_mm", "noise_mm",
                        "max_rise_mm_min", "max_level_mm", "rising_mm_min", "fast_s", "slow_s",
                        "rate_window_s", "obstruction_s", "obstructed_fault_s", "dry_tau_s", "dry_zero_mm"),
    "env": _COMMON + ("period_s",),
}

# Numbers that divide or schedule: zero would stall or crash the node.
_POSITIVE = ("period_s", "drift_tau_s", "fast_s", "slow_s", "rate_window_s", "dry_tau_s", "lsb_per_ut",
             "pings", "mount_mm")

_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"


def check_sensor(s):
    """Raise ValueError naming the sensor and field if entry `s` is malformed."""
    sid = s.get("id")
    if type(sid) is not str or not sid or any(c not in _ID_CHARS for c in sid):
        raise ValueError("sensor id %r: use letters, digits, '-' and '_' (it becomes an MQTT topic level)"
                         % (sid,))
    kind = s.get("type")
    if kind not in PARAMS:
        raise ValueError("sensor %s: unknown type %s (one of %s)" % (sid, kind, ", ".join(sorted(PARAMS))))
    allowed = PARAMS[kind]
    for key in s:
        if key not in allowed:
            raise ValueError("sensor %s: unknown field '%s' for sensor type %s" % (sid, key, kind))
        v = s[key]
        if key == "driver":
            if type(v) is not str:
                raise ValueError("sensor %s: field 'driver' must be a string" % sid)
        elif key == "thresholds_mm":
            if (type(v) is not list or len(v) != 3 or any(type(x) is not int for x in v)
                    or not 0 < v[0] < v[1] < v[2]):
                raise ValueError("sensor %s: field 'thresholds_mm' must be 3 rising integers above 0 (mm: "
                                 "watch, warning, danger)" % sid)
        elif key in ("id", "type"):
            continue
        elif (type(v) is not int and type(v) is not float) or v - v != 0:
            raise ValueError("sensor %s: field '%s' must be a number" % (sid, key))
        elif v < 0 or (v == 0 and key in _POSITIVE):
            raise ValueError("sensor %s: field '%s' must be %s" % (
                sid, key, "above 0" if key in _POSITIVE else "0 or more"))
    if kind in ("bay_ultrasonic", "water") and s.get("driver", "hc-sr04") not in RANGERS:
        raise ValueError("sensor %s: unknown ranging driver %s (one of %s)"
                         % (sid, s.get("driver"), ", ".join(sorted(RANGERS))))


def check_sensors(sensors):
    """Check every entry of a node's sensor list, and that ids are unique."""
    seen = []
    for s in sensors:
        check_sensor(s)
        if s["id"] in seen:
            raise ValueError("sensor %s: defined twice" % s["id"])
        seen.append(s["id"])
