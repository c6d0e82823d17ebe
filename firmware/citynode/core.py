"""The node's logic: sensors in, decisions and messages out.

`Core` is built from the node's sensor list (the same list a recording's
header carries), takes one sample at a time from a hardware layer (the
ESP32's drivers or a recording), and hands every message the node would
publish to a `publish(t, topic, payload)` callback. It also says when each
sensor should be read next (`due`), which is how adaptive sampling reaches
the scheduler. It does no I/O of its own.

A sample is a dict, the same shape on the board and in a recording:
`{"echo_us": [...]}` for an ultrasonic burst, `{"mag": [x, y, z]}` in raw
counts, `{"temp_c": .., "pressure_pa": .., "humidity_pct": ..}` from the
BME280, or `{"fault": "name"}` when the driver could not read the part.
"""

from citynode import payloads, ticks
from citynode.flood import WaterLevel
from citynode.occupancy import MagneticBay, UltrasonicBay
from citynode.ranging import Ranger, half_speed_q16, speed_mm_s

# Blind zone, farthest distance (mm) and echo timeout (µs) per ranging part.
RANGERS = {
    "hc-sr04": (20, 4000, 38000),
    "jsn-sr04t": (250, 6000, 38000),
    "a02yyuw": (30, 4500, 38000),
}

SENSOR_TYPES = ("bay_ultrasonic", "bay_magnetic", "water", "env")

_DEFAULT_PERIOD_S = {"bay_ultrasonic": 1, "bay_magnetic": 1, "env": 60}


class Core:
    def __init__(self, sensors, clock, publish):
        self.clock = clock
        self._publish = publish
        self.events = []
        self.detectors = {}
        self.rangers = {}
        self.types = {}
        self.period_ms = {}
        self._due = {}
        self.air = None
        self.speed_mm_s = speed_mm_s(2000, 500)
        self.q16 = half_speed_q16(self.speed_mm_s)
        for s in sensors:
            self._add(s)

    def _add(self, s):
        sid = s["id"]
        kind = s["type"]
        if kind not in SENSOR_TYPES:
            raise ValueError("sensor %s: unknown type %s" % (sid, kind))
        if sid in self.types:
            raise ValueError("sensor %s: defined twice" % sid)
        self.types[sid] = kind
        self._due[sid] = None
        if kind in _DEFAULT_PERIOD_S:
            self.period_ms[sid] = int(s.get("period_s", _DEFAULT_PERIOD_S[kind]) * 1000)
        if kind in ("bay_ultrasonic", "water"):
            limits = RANGERS.get(s.get("driver", "hc-sr04"))
            if limits is None:
                raise ValueError("sensor %s: unknown ranging driver %s" % (sid, s.get("driver")))
            self.rangers[sid] = Ranger(limits[0], limits[1], limits[2],
                                       s.get("tolerance_mm", 25))
        if kind == "bay_ultrasonic":
            self.detectors[sid] = UltrasonicBay(sid, self.events, s)
        elif kind == "bay_magnetic":
            self.detectors[sid] = MagneticBay(sid, self.events, s)
        elif kind == "water":
            self.detectors[sid] = WaterLevel(sid, self.events, s)

    def due(self, sid):
        """The tick at which `sid` should next be read (None: now)."""
        return self._due[sid]

    def feed(self, sid, t, sample):
        """Take one sample of sensor `sid` read at tick `t`."""
        kind = self.types[sid]
        fault = sample.get("fault")
        if kind == "env":
            self._env(t, sample)
            self._due[sid] = ticks.add(t, self.period_ms[sid])
            return
        det = self.detectors[sid]
        if kind == "bay_magnetic":
            if fault is not None:
                det.fault(t, fault)
            else:
                m = sample["mag"]
                was = det.base
                det.update(t, m[0], m[1], m[2])
                if was is None and det.base is not None:
                    self._send(t, "bay/" + sid, payloads.bay(det))
            self._due[sid] = ticks.add(t, self.period_ms[sid])
        else:
            mm = self.rangers[sid].reduce_burst(sample["echo_us"], self.q16)
            if kind == "water":
                det.update(t, mm)
                if det.level is not None:
                    self._send(t, "water", payloads.water(det, mm))
                self._due[sid] = ticks.add(t, det.next_ms())
            else:
                was = det.base_q8
                det.update(t, mm)
                if was is None and det.base_q8 is not None:
                    self._send(t, "bay/" + sid, payloads.bay(det))
                self._due[sid] = ticks.add(t, self.period_ms[sid])
        self._flush()

    def recalibrate(self, sid):
        """Forget a bay's empty reference and learn it again (bay must be free)."""
        self.detectors[sid].recalibrate()

    def _env(self, t, sample):
        if sample.get("fault") is not None:
            return
        temp_cc = int(round(sample["temp_c"] * 100))
        rh = int(round(sample["humidity_pct"] * 10))
        p = int(round(sample["pressure_pa"]))
        self.air = (temp_cc, rh, p)
        self.speed_mm_s = speed_mm_s(temp_cc, rh, p)
        self.q16 = half_speed_q16(self.speed_mm_s)
        self._send(t, "env", payloads.env(temp_cc, rh, p, self.speed_mm_s))

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
