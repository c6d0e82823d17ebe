"""Remote commands: validate a command that arrived on `cmd/<name>`, apply
it to the core, keep the settings it changed across resets, and answer
with an acknowledgement.

    commands = Commands(core, "/settings.json")
    reason = commands.load()          # at boot: re-apply stored settings
    ...
    ack = commands.handle("cmd/set_interval", b'{"sensor": "bay-01", "period_s": 2}')
    # the caller publishes `ack`; the main loop checks `commands.reboot_requested`

Every payload is a JSON object; `"id"` (a string of at most 32 characters)
is optional and echoed in the ack. A command is checked in full before
anything is applied, so a rejected one changes nothing: not the core, not
the stored settings. Settings that are applied (thresholds, intervals) are
first written to the store (a JSON file, replaced atomically: written to a
`.tmp` file, then renamed over the old one); a write that fails rejects the
command. `recalibrate` and `reboot` are actions, not settings, and are not
stored. See docs/commands.md.

No I/O but the store; no clock. Written in the subset of Python that
MicroPython shares: `type(v) is int` (a bool is not a number here), no
reliance on dict order.
"""

import json

from citynode import ticks
from citynode.sensors import get as type_module
from citynode.storage import write_atomic

STORE_VERSION = 1
ID_MAX = 32

# Interval limits, seconds. A water sensor's intervals stop at an hour, where
# the flood logic's rise bound stops growing.
MIN_S = 0.1
MAX_PERIOD_S = 86400
MAX_WATER_S = 3600

# Fields each command accepts besides the optional "id"; required ones first.
_FIELDS = {
    "set_thresholds": ("sensor", "thresholds_mm", "hysteresis_mm"),
    "set_interval": ("sensor", "period_s", "fast_s", "slow_s"),
    "recalibrate": ("sensor",),
    "reboot": (),
    "status": (),
}
_REQUIRED = {
    "set_thresholds": ("sensor", "thresholds_mm"),
    "set_interval": ("sensor",),
    "recalibrate": ("sensor",),
    "reboot": (),
    "status": (),
}
_THRESHOLD_KEYS = ("thresholds_mm", "hysteresis_mm")
_INTERVAL_KEYS = ("period_s", "fast_s", "slow_s")


class _Reject(Exception):
    """A command (or a stored entry) that cannot be applied; args[0] says why."""


def _is_number(v):
    # v - v is nan for inf and nan, so only finite numbers pass
    return (type(v) is int or type(v) is float) and v - v == 0


def _seconds(ms):
    """Milliseconds as seconds: an int when whole."""
    return ms // 1000 if ms % 1000 == 0 else ms / 1000


def sensor_type(core, sid):
    """The configured type of sensor `sid` in `core`, or None if it has none."""
    return core.types.get(sid)


def _has_thresholds(kind):
    return "thresholds_mm" in kind.PARAMS


def _any(kind):
    return True


def _is_bay(kind):
    return kind.TOPIC == "bay"


def _set(plan):
    """Apply a checked plan: (target, name, value) triples, a target being a
    dict (an item is set) or an object (an attribute is set)."""
    for target, name, value in plan:
        if type(target) is dict:
            target[name] = value
        else:
            setattr(target, name, value)


class Commands:
    """Remote commands for `core` (a `citynode.sense.core.Core`), with settings
    stored in the file `store_path`. `handle()` never raises for anything a
    sender can put in a command; `reboot_requested` turns True when a reboot
    was asked for."""

    def __init__(self, core, store_path, max_bytes=1024):
        self.core = core
        self.store_path = store_path
        self.max_bytes = max_bytes
        self.reboot_requested = False
        self._saved = {}  # sensor id -> {field: value} as stored
        # Each sensor's type module, loaded now: not in the middle of a run,
        # where a module arriving with the first command fragments the heap.
        self._kinds = {}
        for sid in core.types:
            self._kinds[sid] = type_module(core.types[sid])

    # -- commands -----------------------------------------------------------

    def handle(self, topic_suffix, payload_bytes):
        """Check and apply the command on topic suffix `cmd/<name>` whose
        payload is `payload_bytes` (bytes or str; None for a payload the
        MQTT client skipped as too large); returns the ack dict:
        `cmd`, `id` (None when the command carried none), `ok`, and `reason`
        when rejected (`status` adds `status`)."""
        name = topic_suffix[4:] if topic_suffix.startswith("cmd/") else topic_suffix
        ack = {"cmd": name, "id": None, "ok": False}
        try:
            if not topic_suffix.startswith("cmd/"):
                raise _Reject("not a command topic (cmd/<name>)")
            payload = self._parse(payload_bytes)
            if "id" in payload:
                cid = payload["id"]
                if type(cid) is not str or len(cid) > ID_MAX:
                    raise _Reject("field 'id' must be a string of at most %d characters" % ID_MAX)
                ack["id"] = cid
            if name not in _FIELDS:
                raise _Reject("unknown command '%s' (one of %s)" % (name, ", ".join(sorted(_FIELDS))))
            self._check_fields(name, payload)
            result = getattr(self, "_cmd_" + name)(payload)
        except _Reject as e:
            ack["reason"] = e.args[0]
            return ack
        ack["ok"] = True
        if result is not None:
            ack["status"] = result
        return ack

    def _parse(self, data):
        if data is None:  # the MQTT client skipped a payload too large to keep
            raise _Reject("payload too large (over the MQTT client's packet limit, limit %d)"
                          % self.max_bytes)
        n = len(data)
        if n > self.max_bytes:
            raise _Reject("payload too large (%d bytes, limit %d)" % (n, self.max_bytes))
        if type(data) is not str:
            try:
                data = bytes(data).decode()
            except UnicodeError:
                raise _Reject("not UTF-8") from None
        try:
            payload = json.loads(data)
        except ValueError:
            raise _Reject("not JSON") from None
        except (RuntimeError, MemoryError):  # CPython's recursion limit; MicroPython's heap
            raise _Reject("payload nested too deeply to parse") from None
        if type(payload) is not dict:
            raise _Reject("payload must be a JSON object")
        return payload

    def _check_fields(self, name, payload):
        allowed = _FIELDS[name]
        for key in sorted(payload):
            if key != "id" and key not in allowed:
                raise _Reject("unknown field '%s' for %s" % (key, name))
        for key in _REQUIRED[name]:
            if key not in payload:
                raise _Reject("missing field '%s'" % key)

    def _sensor(self, payload, fits, what):
        """The sensor id the command names, checked to be of a type (its
        module, citynode.sensors) for which `fits` is true."""
        sid = payload["sensor"]
        if type(sid) is not str:
            raise _Reject("field 'sensor' must be a string")
        kind = self._kinds.get(sid)
        if kind is None:
            raise _Reject("unknown sensor '%s'" % sid)
        if not fits(kind):
            raise _Reject("sensor '%s' is %s: %s needs %s" % (sid, kind.NAME, what[0], what[1]))
        return sid

    def _cmd_set_thresholds(self, payload):
        sid = self._sensor(payload, _has_thresholds, ("set_thresholds", "a water sensor"))
        fields = {}
        for key in _THRESHOLD_KEYS:
            if key in payload:
                fields[key] = payload[key]
        plan = self._plan_thresholds(sid, fields)
        self._store(sid, fields)
        _set(plan)

    def _cmd_set_interval(self, payload):
        sid = self._sensor(payload, _any, ("set_interval", "a sensor"))
        fields = {}
        for key in _INTERVAL_KEYS:
            if key in payload:
                fields[key] = payload[key]
        plan = self._plan_intervals(sid, fields)
        self._store(sid, fields)
        _set(plan)

    def _cmd_recalibrate(self, payload):
        sid = self._sensor(payload, _is_bay, ("recalibrate", "a parking bay"))
        self.core.recalibrate(sid)

    def _cmd_reboot(self, payload):
        self.reboot_requested = True

    def _cmd_status(self, payload):
        return self.status()

    def status(self):
        """The node's sensors and their settings: {"sensors": [...] sorted by
        id, "reboot_requested": bool}."""
        core = self.core
        sids = []
        for sid in core.detectors:
            sids.append(sid)
        for sid in core.env_faults:
            sids.append(sid)
        sensors = []
        for sid in sorted(sids):
            kind = sensor_type(core, sid)
            entry = {"id": sid, "type": kind}
            if kind == "water":
                det = core.detectors[sid]
                entry["thresholds_mm"] = list(det.thresholds)
                entry["hysteresis_mm"] = det.hyst_mm
                entry["fast_s"] = _seconds(det.fast_ms)
                entry["slow_s"] = _seconds(det.slow_ms)
            else:
                entry["period_s"] = _seconds(core.period_ms[sid])
            sensors.append(entry)
        return {"sensors": sensors, "reboot_requested": self.reboot_requested}

    # -- checks: each returns a plan, changing nothing ------------------------

    def _plan_thresholds(self, sid, fields):
        det = self.core.detectors[sid]
        if "thresholds_mm" not in fields:
            raise _Reject("missing field 'thresholds_mm'")
        th = fields["thresholds_mm"]
        if type(th) is not list or len(th) != 3 or any(type(x) is not int for x in th):
            raise _Reject("field 'thresholds_mm' must be a list of 3 integers (mm: watch, warning, danger)")
        if not 0 < th[0] < th[1] < th[2]:
            raise _Reject("field 'thresholds_mm' must rise and start above 0")
        if th[2] > det.max_level_mm:
            raise _Reject("field 'thresholds_mm' must stay at or below max_level_mm (%d) of sensor '%s'"
                          % (det.max_level_mm, sid))
        hyst = fields.get("hysteresis_mm", det.hyst_mm)
        if type(hyst) is not int:
            raise _Reject("field 'hysteresis_mm' must be an integer")
        if not 0 <= hyst < th[0]:
            raise _Reject("field 'hysteresis_mm' must be 0 or more and below the watch threshold (%d)"
                          % th[0])
        return [(det, "thresholds", (th[0], th[1], th[2])), (det, "hyst_mm", hyst)]

    def _plan_intervals(self, sid, fields):
        kind = sensor_type(self.core, sid)
        if not fields:
            raise _Reject("nothing to set: give %s" % (
                "fast_s and/or slow_s" if kind == "water" else "period_s"))
        wanted = ("fast_s", "slow_s") if kind == "water" else ("period_s",)
        top = MAX_WATER_S if kind == "water" else MAX_PERIOD_S
        for key in sorted(fields):
            if key not in wanted:
                raise _Reject("sensor '%s' is %s: it has no %s (use %s)"
                              % (sid, kind, key, " or ".join(wanted)))
            v = fields[key]
            if not _is_number(v):
                raise _Reject("field '%s' must be a number" % key)
            if not MIN_S <= v <= top:
                raise _Reject("field '%s' must be between %s and %d seconds" % (key, MIN_S, top))
        if kind != "water":
            return [(self.core.period_ms, sid, ticks.ms(fields["period_s"]))]
        det = self.core.detectors[sid]
        fast = ticks.ms(fields["fast_s"]) if "fast_s" in fields else det.fast_ms
        slow = ticks.ms(fields["slow_s"]) if "slow_s" in fields else det.slow_ms
        if fast > slow:
            raise _Reject("fast_s (%s) must not exceed slow_s (%s)" % (_seconds(fast), _seconds(slow)))
        return [(det, "fast_ms", fast), (det, "slow_ms", slow)]

    def _plan_entry(self, sid, entry):
        """The plan for one stored sensor entry, checked like the commands."""
        kind = sensor_type(self.core, sid)
        if kind is None:
            raise _Reject("unknown sensor '%s'" % sid)
        if type(entry) is not dict or not entry:
            raise _Reject("sensor '%s': entry must be a non-empty object" % sid)
        th = {}
        iv = {}
        for key in sorted(entry):
            if key in _THRESHOLD_KEYS:
                th[key] = entry[key]
            elif key in _INTERVAL_KEYS:
                iv[key] = entry[key]
            else:
                raise _Reject("sensor '%s': unknown field '%s'" % (sid, key))
        plan = []
        if th:
            if kind != "water":
                raise _Reject("sensor '%s' is %s: it has no thresholds" % (sid, kind))
            plan.extend(self._plan_thresholds(sid, th))
        if iv:
            plan.extend(self._plan_intervals(sid, iv))
        return plan

    # -- the store ----------------------------------------------------------

    def _store(self, sid, fields):
        """Write the stored settings with `fields` merged into sensor `sid`'s;
        a failed write rejects the command and leaves the RAM copy as it was."""
        saved = {}
        for k in self._saved:
            saved[k] = dict(self._saved[k])
        entry = saved.get(sid, {})
        for key in fields:
            entry[key] = fields[key]
        saved[sid] = entry
        try:
            self._write({"version": STORE_VERSION, "sensors": saved})
        except OSError as e:
            raise _Reject("could not store the setting (%s)" % e) from None
        self._saved = saved

    def _write(self, doc):
        write_atomic(self.store_path, json.dumps(doc))

    def load(self):
        """Re-apply the stored settings (at boot, before the first reading).
        Returns None when all were applied or there were none, else a reason:
        a store that cannot be read or parsed is ignored whole; an entry that
        no longer fits the sensor list (a sensor removed, retyped, or a value
        out of range) is skipped alone. Never raises."""
        try:
            with open(self.store_path) as f:
                text = f.read()
        except OSError as e:
            if e.args and e.args[0] == 2:  # ENOENT: nothing stored yet
                return None
            return "store unreadable (%s): ignored" % e
        except UnicodeError:
            return "store is not UTF-8 text: ignored"
        try:
            doc = json.loads(text)
        except (ValueError, RuntimeError, MemoryError):
            return "store is not JSON: ignored"
        if (type(doc) is not dict or doc.get("version") != STORE_VERSION
                or type(doc.get("sensors")) is not dict):
            return "store is not a version %d settings object: ignored" % STORE_VERSION
        skipped = []
        for sid in sorted(doc["sensors"]):
            entry = doc["sensors"][sid]
            try:
                plan = self._plan_entry(sid, entry)
            except _Reject as e:
                skipped.append("%s (%s)" % (sid, e.args[0]))
                continue
            _set(plan)
            self._saved[sid] = dict(entry)
        if skipped:
            return "skipped stored settings: " + "; ".join(skipped)
        return None
