"""The node's logic: sensors in, decisions and messages out.

`Core` is built from the node's sensor list (the same list a recording's
header carries, checked first by `config.check_sensors`), takes one sample
at a time from a hardware layer (the ESP32's drivers or a recording), and
hands every message the node would publish to a `publish(t, topic,
payload)` callback. It also says when each sensor should be read next
(`due_at`), which is how adaptive sampling reaches the scheduler. It does no I/O of its own.

A sample is a dict, the same shape on the board and in a recording:
`{"echo_us": [...]}` for an ultrasonic burst (or `{"distance_mm": [...]}`
from a UART part that measures itself), `{"mag": [x, y, z]}` in raw
counts, `{"temp_c": .., "pressure_pa": .., "humidity_pct": ..}` from the
BME280, or `{"fault": "name"}` when the driver could not read the part.
A sample of any other shape (wrong types, absurd numbers) is a fault of
that sensor (`bad_sample`, or the air check's names for the BME280): the
core never raises on what a sample holds.

Silences. Intervals come from ticks that wrap (citynode.ticks), so a
silence longer than a few days cannot be measured by the core alone. The
core takes a silence to be any sample whose tick is more than `GAP_MS`
after the previous one (of the node, or of that sensor; a sensor whose
schedule is longer gets twice its period) or before it; the hardware
layer reports the longer ones the ticks alias (`silence`). On a silence
the clock is re-anchored, the detector of each sensor silenced (of every
sensor, when the whole node was) restarts (`restart(t)`) and the sensor
gets a `gap` event, and every sensor is read again at once.
"""

from citynode import ticks
from citynode.sense import payloads
from citynode.sense.air import AirCheck
from citynode.sense.flood import WaterLevel
from citynode.sense.ranging import FAULT_NAMES, RANGERS, Ranger, half_speed_q16, speed_mm_s

_DEFAULT_PERIOD_S = {"bay_ultrasonic": 1, "bay_magnetic": 1, "env": 60}
SLACK_MS = 250  # a reading this much early still counts as on time
# The longest interval between two samples that is not a silence: longer than
# any schedule the node runs (60 s at most by default) and than a sparse
# 10-minute logger's, far shorter than the 6.2 days ticks can measure.
GAP_MS = 3600000
_MAX_PINGS = 32
_MAG_LIMIT = 32768  # raw counts of a 16-bit magnetometer
_BAD = {"fault": "bad_sample"}


class Core:
    def __init__(self, sensors, clock, publish):
        self.clock = clock
        self._publish = publish
        self.events = []
        self.detectors = {}
        self.rangers = {}
        self.period_ms = {}
        self.due_at = {}
        self.types = {}  # sensor id: its type's name (citynode.sensors)
        self._feeders = {}
        self._announced = []
        self.air = None  # (temp_cc, rh_permille, pressure_pa): the air the ranging uses, None: the default
        self.env_faults = {}  # env sensor id: its AirCheck (plausibility and fault watch)
        self._env_sent = {}
        self.gap_ms = {}  # sensor id: the longest interval between its samples that is not a silence
        self.gap_limit = GAP_MS  # the same for the node (any sensor)
        self._last = None  # tick of the node's last sample
        self._seen = {}  # sensor id: tick of its last sample
        self.speed_mm_s = speed_mm_s(2000, 500)
        self.q16 = half_speed_q16(self.speed_mm_s)
        for s in sensors:
            self._add(s)
        if self.gap_ms:
            self.gap_limit = min(self.gap_ms.values())

    def _add(self, s):
        sid = s["id"]
        kind = self.types[sid] = s["type"]
        self.due_at[sid] = None
        self.gap_ms[sid] = GAP_MS
        if kind in _DEFAULT_PERIOD_S:
            self.period_ms[sid] = ticks.ms(s.get("period_s", _DEFAULT_PERIOD_S[kind]))
            if 2 * self.period_ms[sid] > GAP_MS:
                self.gap_ms[sid] = 2 * self.period_ms[sid]
        if kind in ("bay_ultrasonic", "water"):
            limits = RANGERS[s.get("driver", "hc-sr04")]
            self.rangers[sid] = Ranger(limits[0], limits[1], limits[2], s.get("tolerance_mm", 25))
        if kind == "bay_ultrasonic":
            from citynode.sense.occupancy import UltrasonicBay  # only a parking node needs the bay code

            self.detectors[sid] = UltrasonicBay(sid, self.events, s)
            self._feeders[sid] = self._feed_ultrasonic_bay
        elif kind == "bay_magnetic":
            from citynode.sense.occupancy import MagneticBay

            self.detectors[sid] = MagneticBay(sid, self.events, s)
            self._feeders[sid] = self._feed_magnetic_bay
        elif kind == "water":
            self.detectors[sid] = WaterLevel(sid, self.events, s)
            self._feeders[sid] = self._feed_water
        elif kind == "env":
            self.env_faults[sid] = AirCheck(sid, self.events, ticks.ms(s.get("fault_after_s", 180)))
            self._feeders[sid] = self._feed_env
        else:
            raise ValueError("sensor %s: unknown type %s" % (sid, kind))

    def feed(self, sid, t, sample):
        """Take one sample of sensor `sid` read at tick `t`; afterwards
        `due_at[sid]` is the tick at which to read it next."""
        last = self._last
        seen = self._seen.get(sid)
        if last is not None:
            d = ticks.diff(t, last)
            if d > self.gap_limit or d < 0:
                self.silence(t, d if d > 0 else None)
            elif seen is not None:
                d = ticks.diff(t, seen)
                if d > self.gap_ms[sid] or d < 0:
                    self.silence(t, d if d > 0 else None, sid)
        self._last = t
        self._seen[sid] = t
        self.clock.keep(t)
        if type(sample) is not dict or ("fault" in sample and type(sample["fault"]) is not str):
            sample = _BAD
        self._feeders[sid](sid, t, sample)
        if self.events:
            self._flush()

    def silence(self, t, gap_ms=None, sensor=None):
        """Nothing was sampled for `gap_ms` ms (None: unknown) before tick `t`,
        by the whole node or, with `sensor`, by that sensor alone; called by
        `feed` and by a hardware layer that knows of a silence the ticks
        alias. The clock takes tick `t` as `gap_ms` after the node's last
        sample (as that sample's time when the gap is unknown, so no
        message is ever stamped earlier than one before it); the detector of
        each sensor silenced restarts at `t` and the sensor gets a `gap`
        event, sent at once; every sensor is read again at once (a due time kept across the
        silence may alias into the future)."""
        sids = self.due_at if sensor is None else (sensor,)
        if sensor is None and self._last is not None:
            self.clock.advance(self._last, t, 0 if gap_ms is None else gap_ms)
        self._last = None
        for sid in sids:
            det = self.detectors.get(sid)
            if det is None:
                det = self.env_faults[sid]
                if sid in self._env_sent:
                    del self._env_sent[sid]
            det.restart(t)
            self._seen[sid] = None
            self.events.append({"t": t, "kind": "gap", "sensor": sid,
                                "gap_s": None if gap_ms is None else gap_ms // 1000})
        for sid in self.due_at:
            self.due_at[sid] = None
        self._flush()  # before the messages of the reading that follows

    def recalibrate(self, sid):
        """Forget a bay's empty reference and learn it again (bay must be
        free); its state is published again once it is known."""
        self.detectors[sid].recalibrate()
        if sid in self._announced:
            self._announced.remove(sid)

    def _feed_ultrasonic_bay(self, sid, t, sample):
        det = self.detectors[sid]
        mm = self._range(sid, sample)
        if mm is None:
            det.fault(t, sample.get("fault", "bad_sample"))
        else:
            det.update(t, mm)
            self._announce(t, sid, det)
        self.due_at[sid] = ticks.add(t, self.period_ms[sid])

    def _range(self, sid, sample):
        """mm (or a fault < 0) from a burst: echo times, compensated with the
        air's speed of sound, or distances a UART part measured itself;
        None for a fault line or a sample that holds no burst of integers."""
        echoes = sample.get("echo_us")
        if echoes is not None:
            return self.rangers[sid].reduce_burst(echoes, self.q16) if _ints(echoes) else None
        mm = sample.get("distance_mm")
        if mm is not None and _ints(mm):
            return self.rangers[sid].reduce_burst(mm)
        return None

    def _feed_magnetic_bay(self, sid, t, sample):
        det = self.detectors[sid]
        m = sample.get("mag")
        if (type(m) is not list and type(m) is not tuple) or len(m) != 3 or not _ints(m, _MAG_LIMIT):
            det.fault(t, sample.get("fault", "bad_sample"))
        else:
            det.update(t, m[0], m[1], m[2])
            self._announce(t, sid, det)
        self.due_at[sid] = ticks.add(t, self.period_ms[sid])

    def _feed_water(self, sid, t, sample):
        det = self.detectors[sid]
        mm = self._range(sid, sample)
        if mm is None:
            fault = sample.get("fault", "bad_sample")
            det.fault(t, fault)
        else:
            det.update(t, mm)
            fault = FAULT_NAMES[mm] if mm < 0 else None
        if det.level is not None:
            self._send(t, "water", payloads.water(det, fault, self._air_state()))
        due = ticks.add(t, det.next_ms())
        self.due_at[sid] = due
        # The next burst is compensated with a fresh BME280 reading: in a storm
        # the air cools fast enough for a minute-old one to bias the level.
        for env in self.env_faults:
            env_due = self.due_at[env]
            if env_due is not None and ticks.diff(due, env_due) < 0:
                self.due_at[env] = due

    def _air_state(self):
        """How the air the ranging uses stands, for the water payload: None
        when the latest BME280 reading was plausible, "held" while the part
        fails or reads implausibly (its last good reading is in use),
        "default" when none was ever good (20 °C, 50 %RH, sea level)."""
        if self.air is None:
            return "default"
        for sid in self.env_faults:
            if self.env_faults[sid].verdict is not None:
                return "held"
        return None

    def _feed_env(self, sid, t, sample):
        """A plausible BME280 reading (citynode.sense.air) sets the speed of sound
        for every ultrasonic sensor; while the part fails or reads
        implausibly, the last good reading stays in use. It is read every
        `period_s`, or with every water burst if those come sooner, and
        published at most every `period_s`."""
        self.due_at[sid] = ticks.add(t, self.period_ms[sid])
        check = self.env_faults[sid]
        if not check.check(t, sample):
            return
        temp_cc, rh, p = self.air = check.good
        self.speed_mm_s = speed_mm_s(temp_cc, rh, p)
        self.q16 = half_speed_q16(self.speed_mm_s)
        last = self._env_sent.get(sid)
        if last is None or ticks.diff(t, last) >= self.period_ms[sid] - SLACK_MS:
            self._env_sent[sid] = t
            self._send(t, "env", payloads.env(temp_cc, rh, p, self.speed_mm_s))

    def _announce(self, t, sid, det):
        """Publish a bay's state once, as soon as it is known."""
        if det.ready and sid not in self._announced:
            self._announced.append(sid)
            self._send(t, "bay/" + sid, payloads.bay(det))

    def _flush(self):
        events = self.events
        while events:
            ev = events.pop(0)
            t = ev.pop("t")
            self._send(t, "event", ev)
            if ev["kind"] == "occupancy":
                self._send(t, "bay/" + ev["sensor"], payloads.bay(self.detectors[ev["sensor"]]))

    def _send(self, t, topic, payload):
        payload["ts"] = self.clock.epoch(t)
        self._publish(t, topic, payload)


def _ints(values, limit=None):
    """True for a list of 1 to _MAX_PINGS ints (each within ±`limit`, if given)."""
    if (type(values) is not list and type(values) is not tuple) or not 0 < len(values) <= _MAX_PINGS:
        return False
    return all(type(v) is int and (limit is None or -limit <= v <= limit) for v in values)
