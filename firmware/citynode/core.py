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
"""

from citynode import payloads, ticks
from citynode.filters import FaultWatch
from citynode.flood import WaterLevel
from citynode.occupancy import MagneticBay, UltrasonicBay
from citynode.ranging import FAULT_NAMES, RANGERS, Ranger, half_speed_q16, speed_mm_s

_DEFAULT_PERIOD_S = {"bay_ultrasonic": 1, "bay_magnetic": 1, "env": 60}
SLACK_MS = 250  # a reading this much early still counts as on time


class Core:
    def __init__(self, sensors, clock, publish):
        self.clock = clock
        self._publish = publish
        self.events = []
        self.detectors = {}
        self.rangers = {}
        self.period_ms = {}
        self.due_at = {}
        self._feeders = {}
        self._announced = []
        self.air = None
        self.env_faults = {}
        self._env_sent = {}
        self.speed_mm_s = speed_mm_s(2000, 500)
        self.q16 = half_speed_q16(self.speed_mm_s)
        for s in sensors:
            self._add(s)

    def _add(self, s):
        sid = s["id"]
        kind = s["type"]
        self.due_at[sid] = None
        if kind in _DEFAULT_PERIOD_S:
            self.period_ms[sid] = ticks.ms(s.get("period_s", _DEFAULT_PERIOD_S[kind]))
        if kind in ("bay_ultrasonic", "water"):
            limits = RANGERS[s.get("driver", "hc-sr04")]
            self.rangers[sid] = Ranger(limits[0], limits[1], limits[2], s.get("tolerance_mm", 25))
        if kind == "bay_ultrasonic":
            self.detectors[sid] = UltrasonicBay(sid, self.events, s)
            self._feeders[sid] = self._feed_ultrasonic_bay
        elif kind == "bay_magnetic":
            self.detectors[sid] = MagneticBay(sid, self.events, s)
            self._feeders[sid] = self._feed_magnetic_bay
        elif kind == "water":
            self.detectors[sid] = WaterLevel(sid, self.events, s)
            self._feeders[sid] = self._feed_water
        elif kind == "env":
            self.env_faults[sid] = FaultWatch(sid, self.events, ticks.ms(s.get("fault_after_s", 180)))
            self._feeders[sid] = self._feed_env
        else:
            raise ValueError("sensor %s: unknown type %s" % (sid, kind))

    def feed(self, sid, t, sample):
        """Take one sample of sensor `sid` read at tick `t`; afterwards
        `due_at[sid]` is the tick at which to read it next."""
        self._feeders[sid](sid, t, sample)
        if self.events:
            self._flush()

    def recalibrate(self, sid):
        """Forget a bay's empty reference and learn it again (bay must be
        free); its state is published again once it is known."""
        self.detectors[sid].recalibrate()
        if sid in self._announced:
            self._announced.remove(sid)

    def _feed_ultrasonic_bay(self, sid, t, sample):
        det = self.detectors[sid]
        if "fault" in sample:
            det.fault(t, sample["fault"])
        else:
            det.update(t, self._range(sid, sample))
            self._announce(t, sid, det)
        self.due_at[sid] = ticks.add(t, self.period_ms[sid])

    def _range(self, sid, sample):
        """mm (or a fault < 0) from a burst: echo times, compensated with the
        air's speed of sound, or distances a UART part measured itself."""
        echoes = sample.get("echo_us")
        if echoes is not None:
            return self.rangers[sid].reduce_burst(echoes, self.q16)
        return self.rangers[sid].reduce_burst(sample["distance_mm"])

    def _feed_magnetic_bay(self, sid, t, sample):
        det = self.detectors[sid]
        if "fault" in sample:
            det.fault(t, sample["fault"])
        else:
            m = sample["mag"]
            det.update(t, m[0], m[1], m[2])
            self._announce(t, sid, det)
        self.due_at[sid] = ticks.add(t, self.period_ms[sid])

    def _feed_water(self, sid, t, sample):
        det = self.detectors[sid]
        fault = sample.get("fault")
        if fault is not None:
            det.fault(t, fault)
        else:
            mm = self._range(sid, sample)
            det.update(t, mm)
            if mm < 0:
                fault = FAULT_NAMES[mm]
        if det.level is not None:
            self._send(t, "water", payloads.water(det, fault))
        due = ticks.add(t, det.next_ms())
        self.due_at[sid] = due
        # The next burst is compensated with a fresh BME280 reading: in a storm
        # the air cools fast enough for a minute-old one to bias the level.
        for env in self.env_faults:
            env_due = self.due_at[env]
            if env_due is not None and ticks.diff(due, env_due) < 0:
                self.due_at[env] = due

    def _feed_env(self, sid, t, sample):
        """A BME280 reading sets the speed of sound for every ultrasonic
        sensor; while it fails, the last good one stays in use. It is read
        every `period_s`, or with every water burst if those come sooner,
        and published at most every `period_s`."""
        self.due_at[sid] = ticks.add(t, self.period_ms[sid])
        if "fault" in sample:
            self.env_faults[sid].fault(t, sample["fault"])
            return
        self.env_faults[sid].ok(t)
        temp_cc = int(round(sample["temp_c"] * 100))
        rh = int(round(sample["humidity_pct"] * 10))
        p = int(round(sample["pressure_pa"]))
        self.air = (temp_cc, rh, p)
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
