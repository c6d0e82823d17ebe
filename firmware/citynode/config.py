"""Checks of the node's sensor list, run once before the core is built
(at boot on the node, before a replay on the desk), so the core itself can
trust its configuration and stay small.

Every error is a ValueError whose text names the sensor and the field.
"""

from citynode.ranging import RANGERS
from citynode.sensors import get as type_module

# Which fields each sensor type takes, and which must be above 0, is the
# type's own (citynode.sensors); all but `id`, `type` and `driver` are
# numbers (`thresholds_mm`: a list of three).
_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"


def check_sensor(s):
    """Raise ValueError naming the sensor and field if entry `s` is malformed."""
    sid = s.get("id")
    if type(sid) is not str or not sid or any(c not in _ID_CHARS for c in sid):
        raise ValueError("sensor id %r: use letters, digits, '-' and '_' (it becomes an MQTT topic level)"
                         % (sid,))
    kind = s.get("type")
    try:
        t = type_module(kind)
    except ValueError as e:
        raise ValueError("sensor %s: %s" % (sid, e)) from None
    allowed = t.PARAMS
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
        elif v < 0 or (v == 0 and key in t.POSITIVE):
            raise ValueError("sensor %s: field '%s' must be %s" % (
                sid, key, "above 0" if key in t.POSITIVE else "0 or more"))
    driver = s.get("driver", t.DRIVER)
    if t.RANGED and driver not in RANGERS:
        raise ValueError("sensor %s: unknown ranging driver %s (one of %s)"
                         % (sid, s.get("driver"), ", ".join(sorted(RANGERS))))
    if driver not in t.DRIVERS:
        raise ValueError("sensor %s: unknown driver %s for sensor type %s (one of %s)"
                         % (sid, driver, kind, ", ".join(t.DRIVERS)))


def check_sensors(sensors):
    """Check every entry of a node's sensor list, and that ids are unique."""
    seen = []
    for s in sensors:
        check_sensor(s)
        if s["id"] in seen:
            raise ValueError("sensor %s: defined twice" % s["id"])
        seen.append(s["id"])
