"""Synthetic recordings drawn from documented physical models, with a seed.

Four scenarios (docs/synthetic-models.md states the models and sources):

- `parking-day`: a day in a car park; two bays under ceiling ultrasonic
  sensors and two with in-ground magnetometers; arrivals and departures,
  people walking through, tall vans, cars manoeuvring into the next bay,
  cars passing in the aisle, magnetometer drift with temperature, a sensor
  outage.
- `flood-event`: a hot day (10–40 °C) ending in a convective storm that
  floods the street past every alert level; people and vehicles under the
  sensor, echo dropouts in heavy rain, ±1 cm ultrasonic noise.
- `dry-week`: seven dry days with puddles from showers, parked cars and
  vans, bins, pedestrians, traffic, a sensor outage: no flood.
- `street-faults`: what real street loggers show besides water: a stretch
  with something in the ultrasonic's blind zone, a BME280 that fails
  (-146 °C, then constant plausible garbage), pairs of false echoes from
  evening sun on the transducer at a 10-minute logger's spacing and at the
  node's 10 s, a 10-day outage with no samples at all, and a flood after it.
- `street-soak`: the same effects over 40 days, with a 7-day blind stretch
  and the 10-day outage before a flood (not bundled: a test makes it).
- `parking-interference`: in-ground magnetometer bays read at 11 Hz (or
  any rate: the same cars and field) by a signalled street: short sessions,
  interference of 1-15 µT (mains hum, passing traffic, electrical bursts),
  weak one-axis cars, parked-car dips, empty fields that move after a
  departure.

Output is a recording in the citynode format (docs/recording-format.md).
The same seed gives the same bytes.
"""

import bisect
import gzip
import json
import math
import random

from citynode.board.recording import MAX_START
from host_tools.desk import physics

FORMAT = "citynode-recording"
VERSION = 1
DEFAULT_START = 1783987200  # 2026-07-14T00:00:00Z; synthetic local time is UTC

QMC_LSB_PER_UT = 120  # QMC5883L at ±2 G: 12000 LSB/G, 1 G = 100 µT
CEILING_MM = 2600  # ceiling-mounted bay sensors: floor distance
STREET_MOUNT_MM = 3500  # street sensor height above the dry road


def _hour(t_s):
    return (t_s % 86400) / 3600.0


def _smooth(x):
    """0 → 1 smoothstep on [0, 1]."""
    x = min(1.0, max(0.0, x))
    return x * x * (3 - 2 * x)


class _Recording:
    """Collects records, then writes them in time order."""

    def __init__(self, header):
        self.header = header
        self.records = []

    def add(self, t_ms, rec):
        rec = dict(t=int(t_ms), **rec)
        self.records.append((rec["t"], len(self.records), rec))

    def lines(self):
        yield json.dumps(self.header, separators=(",", ":"))
        for _, _, rec in sorted(self.records, key=lambda r: (r[0], r[1])):
            yield json.dumps(rec, separators=(",", ":"))

    def write(self, path):
        gz = str(path).endswith(".gz")
        with gzip.GzipFile(path, "wb", mtime=0) if gz else open(path, "wb") as f:
            for line in self.lines():
                f.write(line.encode() + b"\n")


def _header(node, board, start, duration_s, sensors, seed, scenario, notes):
    return {
        "format": FORMAT, "version": VERSION, "node": node, "board": board,
        "start": start, "duration_s": duration_s, "sensors": sensors,
        "units": {"t": "ms since start", "echo_us": "µs round trip, 0 = no echo",
                  "mag": "raw counts", "temp_c": "°C", "pressure_pa": "Pa",
                  "humidity_pct": "%RH", "level_mm": "mm above the dry road"},
        "generator": {"name": "citynode synth", "scenario": scenario, "seed": seed},
        "notes": notes,
    }


def _burst(rng, distances_mm, air, noise_mm, p_drop):
    """Echo times (µs) for pings at the given true distances."""
    temp_c, rh, p = air
    out = []
    for d in distances_mm:
        if rng.random() < p_drop:
            out.append(0)
        else:
            out.append(int(round(physics.echo_us(d + rng.gauss(0.0, noise_mm), temp_c, rh, p))))
    return out


def _bme(rng, temp_c, rh, p, bias_c=0.0):
    return {"temp_c": round(temp_c + bias_c + rng.gauss(0, 0.15), 2),
            "pressure_pa": round(p + rng.gauss(0, 12.0), 1),
            "humidity_pct": round(min(100.0, max(0.0, rh + rng.gauss(0, 1.0))), 1)}


def _poisson_times(rng, t0, t1, rate_per_h):
    """Event times in seconds on [t0, t1) for an hour-dependent rate (thinning)."""
    peak = max(rate_per_h(h / 4.0) for h in range(96))
    if peak <= 0:
        return []
    out = []
    t = t0
    while True:
        t += rng.expovariate(peak / 3600.0)
        if t >= t1:
            return out
        if rng.random() * peak < rate_per_h(_hour(t)):
            out.append(t)


class _Blips:
    """Objects under a sensor: (start_s, end_s, height_mm) each; `height(t)`
    is the tallest present at t."""

    SHORT_S = 120.0

    def __init__(self):
        self.items = []

    def add(self, start, dur, height):
        self.items.append((start, start + dur, height))

    def finish(self):
        self.items.sort()
        self._short = [i for i in self.items if i[1] - i[0] <= self.SHORT_S]
        self._starts = [i[0] for i in self._short]
        self._long = [i for i in self.items if i[1] - i[0] > self.SHORT_S]

    def height(self, t):
        h = 0.0
        i = bisect.bisect_right(self._starts, t) - 1
        while i >= 0 and self._starts[i] > t - self.SHORT_S:
            a, b, hh = self._short[i]
            if t < b and hh > h:
                h = hh
            i -= 1
        for a, b, hh in self._long:
            if a <= t < b and hh > h:
                h = hh
        return h


# ---------------------------------------------------------------- parking day


def _arrival_rate(h):
    if h < 6:
        return 0.03
    if h < 7:
        return 0.4
    if h < 9.5:
        return 1.6
    if h < 12:
        return 0.7
    if h < 14:
        return 1.3
    if h < 17:
        return 0.7
    if h < 19:
        return 0.9
    if h < 22:
        return 0.35
    return 0.05


def _visits(rng, duration_s):
    """(stop_s, leave_s, clear_s, vehicle) per visit; one bay, no overlap."""
    visits = []
    free_from = 0.0
    for t in _poisson_times(rng, 60.0, duration_s - 600.0, _arrival_rate):
        if t < free_from:
            continue
        h = _hour(t)
        u = rng.random()
        if 7.0 <= h < 9.5 and u < 0.45:
            stay = rng.uniform(6.5, 9.0) * 3600
        elif u < 0.7:
            stay = rng.lognormvariate(math.log(50 * 60), 0.6)
        else:
            stay = rng.uniform(5, 20) * 60
        v = rng.random()
        if v < 0.10:
            vehicle = {"kind": "van", "roof": rng.uniform(2380, 2480), "hood": rng.uniform(1100, 1300)}
        elif v < 0.20:
            vehicle = {"kind": "suv", "roof": rng.uniform(1700, 1900), "hood": rng.uniform(1000, 1150)}
        else:
            vehicle = {"kind": "car", "roof": rng.uniform(1350, 1600), "hood": rng.uniform(850, 1000)}
        vehicle["approach"] = rng.uniform(2.0, 5.0)
        vehicle["exit"] = rng.uniform(2.0, 5.0)
        vehicle["field"] = _random_vector(rng, rng.uniform(15.0, 60.0))
        vehicle["transient"] = _random_vector(rng, rng.uniform(5.0, 25.0))
        leave = min(t + stay, duration_s - 120.0)
        if leave - t < 120:
            continue
        clear = leave + vehicle["exit"]
        visits.append((t, leave, clear, vehicle))
        free_from = clear + rng.uniform(60, 300)
    return visits


def _random_vector(rng, magnitude):
    z = rng.uniform(-0.3, 1.0)
    a = rng.uniform(0, 2 * math.pi)
    r = math.sqrt(max(0.0, 1 - z * z))
    return (magnitude * r * math.cos(a), magnitude * r * math.sin(a), magnitude * z)


def _passing(v, frac, edge, first, then):
    """Height under the sensor while a car moves across it: `first` until
    `edge` of the way, the sloped windscreen (which may swallow the echo)
    for the next fifth, then `then`."""
    if frac < edge:
        return v[first], False
    if frac < edge + 0.2:
        return (v["hood"] + v["roof"]) / 2, True
    return v[then], False


def _car_height(visits, t):
    """Height (mm) a ceiling sensor over the bay centre sees at t, and
    whether the echo may be swallowed."""
    for stop, leave, clear, v in visits:
        a = stop - v["approach"]
        if t < a:
            return 0.0, False
        if t < stop:
            return _passing(v, (t - a) / v["approach"], 0.4, "hood", "roof")
        if t < leave:
            return v["roof"], False
        if t < clear:
            return _passing(v, (t - leave) / v["exit"], 0.5, "roof", "hood")
    return 0.0, False


def _presence(t, stop, leave, car):
    """How far a car is in its bay at t (within its visit): 0 → 1 while it
    pulls in (`approach` seconds before `stop`), 1 while parked, 1 → 0 while
    it pulls out (`exit` seconds after `leave`)."""
    if t < stop:
        return (t - (stop - car["approach"])) / car["approach"]
    if t < leave:
        return 1.0
    return 1.0 - (t - leave) / car["exit"]


def _car_field(visits, t):
    """Field (µT vector) a car adds to the magnetometer under its bay at t."""
    for stop, leave, clear, v in visits:
        if t < stop - v["approach"]:
            break
        if t >= clear:
            continue
        p = _presence(t, stop, leave, v)
        s = _smooth(p)
        bump = math.sin(math.pi * p) if p < 1.0 else 0.0
        f, w = v["field"], v["transient"]
        return (f[0] * s + w[0] * bump, f[1] * s + w[1] * bump, f[2] * s + w[2] * bump)
    return (0.0, 0.0, 0.0)


def parking_day(seed=1, start=DEFAULT_START, hours=24.0):
    rng = random.Random(seed)
    duration_s = int(hours * 3600)
    us_ids = ("bay-01", "bay-02")
    mag_ids = ("bay-03", "bay-04")
    sensors = [{"id": b, "type": "bay_ultrasonic", "driver": "jsn-sr04t", "pings": 3,
                "period_s": 1, "empty_mm": CEILING_MM} for b in us_ids]
    sensors += [{"id": b, "type": "bay_magnetic", "driver": "qmc5883l", "period_s": 1,
                 "lsb_per_ut": QMC_LSB_PER_UT} for b in mag_ids]
    sensors.append({"id": "env", "type": "env", "driver": "bme280", "period_s": 60})
    header = _header("park-demo-1", "esp32-devkitc", start, duration_s, sensors, seed, "parking-day",
                     "Synthetic: bays 01-02 under ceiling ultrasonic sensors (2.6 m), "
                     "bays 03-04 in-ground magnetometers; neighbours 01|02 and 03|04.")
    rec = _Recording(header)
    visits = {b: _visits(rng, duration_s) for b in us_ids + mag_ids}

    # Truth: the moment a car has stopped in the bay, and the moment it has
    # left the bay.
    for b in us_ids + mag_ids:
        rec.add(0, {"truth": b, "occupied": False})
        for stop, _leave, clear, v in visits[b]:
            rec.add(stop * 1000, {"truth": b, "occupied": True, "note": v["kind"]})
            rec.add(clear * 1000, {"truth": b, "occupied": False})

    people = {}
    for b in us_ids:
        blips = _Blips()
        for t in _poisson_times(rng, 0, duration_s, lambda h: 5.0 if 7 <= h < 21 else 0.3):
            blips.add(t, rng.uniform(0.8, 2.2), rng.uniform(1550, 1900))
        people[b] = blips
    # A car manoeuvring into the neighbouring ceiling bay briefly swings under this sensor.
    for b, other in (("bay-01", "bay-02"), ("bay-02", "bay-01")):
        for stop, leave, _clear, v in visits[other]:
            for moment in (stop - v["approach"], leave):
                if rng.random() < 0.35:
                    people[b].add(moment + rng.uniform(-1, 1), rng.uniform(0.8, 2.0), v["hood"])
    for blips in people.values():
        blips.finish()

    aisle = _Blips()  # cars passing close to the in-ground sensors
    for t in _poisson_times(rng, 0, duration_s, lambda h: 25.0 if 7 <= h < 20 else 2.0):
        aisle.add(t, rng.uniform(0.8, 2.0), rng.uniform(2.0, 7.0))
    aisle.finish()
    aisle_dir = {b: _random_vector(rng, 1.0) for b in mag_ids}
    earth = {b: (rng.uniform(18, 24), rng.uniform(-4, 4), rng.uniform(38, 46)) for b in mag_ids}
    drift = {b: _random_vector(rng, 0.12) for b in mag_ids}  # µT per °C of sensor temperature
    outage_at = 14.25 * 3600  # bay-04's sensor stops answering for three minutes
    outage = (outage_at, outage_at + 180)

    for s in range(duration_s):
        t_ms = s * 1000
        h = _hour(s)
        air_t = 19.0 + 4.0 * math.sin(2 * math.pi * (h - 9) / 24)
        air_rh = 55.0 - 8.0 * math.sin(2 * math.pi * (h - 9) / 24)
        air_p = 101300.0 + 250.0 * math.sin(2 * math.pi * s / (30 * 3600))
        air = (air_t, air_rh, air_p)
        if s % 60 == 0:
            rec.add(t_ms, dict(s="env", **_bme(rng, air_t, air_rh, air_p)))
        for b in us_ids:
            car_h, glancing = _car_height(visits[b], s)
            height = max(car_h, people[b].height(s))
            dist = CEILING_MM - height
            p_drop = 0.35 if glancing else 0.01
            rec.add(t_ms, {"s": b, "echo_us": _burst(rng, (dist, dist, dist), air, 5.0, p_drop)})
        ground_t = 18.0 + 8.0 * math.sin(2 * math.pi * (h - 10) / 24)
        for i, b in enumerate(mag_ids):
            if outage[0] <= s < outage[1] and b == "bay-04":
                rec.add(t_ms, {"s": b, "fault": "no_answer"})
                continue
            own = _car_field(visits[b], s)
            other = _car_field(visits[mag_ids[1 - i]], s)
            near = aisle.height(s)
            e, d, ad = earth[b], drift[b], aisle_dir[b]
            counts = []
            for k in range(3):
                ut = (e[k] + d[k] * (ground_t - 18.0) + own[k] + 0.04 * other[k]
                      + near * ad[k] + rng.gauss(0, 0.2))
                counts.append(int(round(ut * QMC_LSB_PER_UT)))
            rec.add(t_ms, {"s": b, "mag": counts})
    return rec


# ------------------------------------------------- parking under interference


def _sessions(rng, duration_s):
    """Short sessions in one bay, back to back: (stop_s, leave_s, clear_s, car).
    Each has its own interference and ends with the empty field moved."""
    out = []
    t = rng.uniform(75, 150)  # the first gap also covers the node's calibration
    while True:
        approach = rng.uniform(2.0, 5.0)
        stop = t + approach
        stay = rng.uniform(60, 300)
        exit_s = rng.uniform(2.0, 5.0)
        if stop + stay + exit_s + 30 > duration_s:
            return out
        if rng.random() < 0.3:  # a weak signature on one axis
            axis = rng.randrange(3)
            field = [0.0, 0.0, 0.0]
            field[axis] = rng.choice((-1, 1)) * rng.uniform(5.0, 10.0)
            transient = _random_vector(rng, rng.uniform(2.0, 6.0))
        else:
            field = _random_vector(rng, rng.uniform(15.0, 60.0))
            transient = _random_vector(rng, rng.uniform(5.0, 25.0))
        car = {"approach": approach, "exit": exit_s, "field": tuple(field), "transient": transient,
               "offset": _random_vector(rng, rng.uniform(0.0, 6.0)), "dips": []}
        d = stop - approach
        while d < stop + stay:  # moments the parked car's deviation drops (about 60 ms each)
            d += rng.expovariate(1.5)
            car["dips"].append((d, rng.uniform(0.03, 0.09), rng.uniform(0.0, 0.6)))
        out.append((stop, stop + stay, stop + stay + exit_s, car))
        t = stop + stay + exit_s + rng.uniform(45, 150)


def _interference_cuts(sessions, duration_s):
    """When the interference changes (s): at the start, then halfway through
    each empty stretch after a departure. Site conditions vary from session
    to session, but nothing ties their change to the instant a car leaves."""
    starts = [stop - car["approach"] for stop, _l, _c, car in sessions[1:]] + [duration_s]
    return [0.0] + [(clear + nxt) / 2 for (_s, _l, clear, _c), nxt in zip(sessions, starts, strict=True)]


def _interference(rng, start_s, end_s):
    """One session's interference: sensor noise, mains hum from nearby
    cables, vehicles passing in the next lane (in platoons released by a
    traffic signal) and close by in the aisle (at random), and bursts of
    electrical noise."""
    passes = []
    cycle = rng.uniform(60, 120)
    strength = math.exp(rng.uniform(math.log(0.5), math.log(4.0)))  # µT, a car 1.5-3 m away
    t = start_s + rng.uniform(0, cycle)
    while t < end_s:
        k = t
        for _ in range(rng.randint(2, 6)):
            passes.append((k, rng.uniform(0.4, 2.5), _random_vector(rng, strength * rng.uniform(0.3, 1.0))))
            k += rng.uniform(1.5, 3.0)
        t += cycle
    aisle = rng.uniform(0.0, 60.0)
    for t in _poisson_times(rng, start_s, end_s, lambda h: aisle):
        passes.append((t, rng.uniform(0.4, 1.5), _random_vector(rng, rng.uniform(5.0, 20.0))))
    passes.sort(key=lambda p: p[0])
    bursts = []
    burst_rate = rng.uniform(0.0, 12.0)
    for t in _poisson_times(rng, start_s, end_s, lambda h: burst_rate):
        bursts.append((t, t + rng.uniform(5, 30), rng.uniform(3.0, 15.0)))
    level = math.exp(rng.uniform(math.log(1.0), math.log(15.0)))  # σ per axis, µT, of noise and hum
    hum = rng.uniform(0.0, 1.0)  # the share of the variance that is mains hum
    return {"start": start_s, "noise": math.hypot(0.2, level * math.sqrt(1.0 - hum)),
            "hum": _random_vector(rng, level * math.sqrt(6.0 * hum)),  # σ per axis of a sine: |hum| / √6
            "hum_phase": rng.uniform(0, 2 * math.pi),
            "passes": passes, "pass_starts": [p[0] - 3.0 for p in passes], "bursts": bursts}


def _session_field(sessions, t):
    """The parked (or moving) car's field at t (µT), and the empty field's
    offset from the site's first one."""
    offset = [0.0, 0.0, 0.0]
    for stop, leave, clear, car in sessions:
        if t < stop - car["approach"]:
            break
        o = car["offset"]
        if t >= clear:
            offset = [offset[k] + o[k] for k in range(3)]
            continue
        p = _presence(t, stop, leave, car)
        if t >= leave:
            g = _smooth(1.0 - p)
            offset = [offset[k] + o[k] * g for k in range(3)]
        s = _smooth(p)
        bump = math.sin(math.pi * p) if p < 1.0 else 0.0
        if p >= 1.0:
            for d0, dur, keep in car["dips"]:
                if d0 <= t < d0 + dur:
                    s = keep
                    break
        f, w = car["field"], car["transient"]
        return [f[k] * s + w[k] * bump for k in range(3)], offset
    return [0.0, 0.0, 0.0], offset


def _interference_at(inter, t, rng):
    """Interference field (µT) at t, with the measurement noise of one reading."""
    i = bisect.bisect_right([x["start"] for x in inter], t) - 1
    s = inter[max(0, i)]
    hum = math.sin(2 * math.pi * 50.0 * t + s["hum_phase"])
    v = [s["hum"][k] * hum for k in range(3)]
    j = bisect.bisect_right(s["pass_starts"], t)
    for c, dur, vec in s["passes"][max(0, j - 12):j]:
        g = math.exp(-0.5 * ((t - c) / (dur / 4)) ** 2)
        for k in range(3):
            v[k] += vec[k] * g
    sigma = s["noise"]
    for a, b, sb in s["bursts"]:
        if a <= t < b:
            sigma = math.hypot(sigma, sb)
    return [v[k] + rng.gauss(0, sigma) for k in range(3)]


def parking_interference(seed=4, start=DEFAULT_START, rate_hz=11.0, minutes=20.0, bays=2):
    """In-ground magnetometer bays under real-world interference, read at
    `rate_hz`: the same seed gives the same cars and the same field at any
    rate; only the sampling (and each reading's own noise) differs."""
    world = random.Random(seed)
    duration_s = int(minutes * 60)
    ids = ["bay-%02d" % (11 + i) for i in range(bays)]
    period_ms = 1000.0 / rate_hz
    sensors = [{"id": b, "type": "bay_magnetic", "driver": "qmc5883l", "period_s": round(period_ms) / 1000,
                "lsb_per_ut": QMC_LSB_PER_UT} for b in ids]
    header = _header("park-demo-2", "esp32-devkitc", start, duration_s, sensors, seed, "parking-interference",
                     "Synthetic: in-ground magnetometer bays by a signalled street, read at %g Hz; short "
                     "sessions (one car each), interference of 1-15 uT, weak one-axis cars, parked-car "
                     "dips, empty fields that move after a departure." % rate_hz)
    header["generator"]["rate_hz"] = rate_hz
    rec = _Recording(header)
    plan = {}
    for b in ids:
        sessions = _sessions(world, duration_s)
        cuts = _interference_cuts(sessions, duration_s)
        inter = [_interference(world, a, b2) for a, b2 in zip(cuts, cuts[1:] + [duration_s], strict=False)]
        earth = (world.uniform(18, 24), world.uniform(-4, 4), world.uniform(38, 46))
        plan[b] = (sessions, inter, earth)
        rec.add(0, {"truth": b, "occupied": False})
        for stop, _leave, clear, _car in sessions:
            rec.add(stop * 1000, {"truth": b, "occupied": True})
            rec.add(clear * 1000, {"truth": b, "occupied": False})
    reading = random.Random(seed * 1000003 + int(rate_hz * 1000))
    n = int(duration_s * rate_hz)
    for b in ids:
        sessions, inter, earth = plan[b]
        for k in range(n):
            t = (k * period_ms + reading.uniform(-10.0, 10.0)) / 1000.0  # the read loop's jitter
            if t < 0:
                t = 0.0
            car, offset = _session_field(sessions, t)
            noise = _interference_at(inter, t, reading)
            ut = [earth[i] + offset[i] + car[i] + noise[i] for i in range(3)]
            counts = [int(round(v * QMC_LSB_PER_UT)) for v in ut]
            rec.add(round(t * 1000), {"s": b, "mag": counts})
    return rec


# ---------------------------------------------------------------- street water


def _reservoir(rain_mm_h, duration_s, tau_s, peak_mm):
    """Street water level (mm) from rain intensity by a linear reservoir
    dL/dt = k·rain − L/τ, scaled so the highest level is `peak_mm`."""
    level = [0.0] * duration_s
    lv = 0.0
    for s in range(duration_s):
        lv += rain_mm_h(s) - lv / tau_s
        level[s] = lv
    top = max(level)
    if top <= 0:
        return level
    k = peak_mm / top
    return [v * k for v in level]


def _storm(cells):
    """Rain intensity (mm/h) of gaussian rain cells (centre_s, width_s, peak)."""
    def rain(s):
        return sum(p * math.exp(-0.5 * ((s - c) / w) ** 2) for c, w, p in cells)
    return rain


def _street_header(scenario, node, start, duration_s, seed, notes):
    sensors = [
        {"id": "street", "type": "water", "driver": "jsn-sr04t", "pings": 7,
         "mount_mm": STREET_MOUNT_MM, "thresholds_mm": [50, 150, 300]},
        {"id": "env", "type": "env", "driver": "bme280", "period_s": 60},
    ]
    return _header(node, "esp32-devkitc", start, duration_s, sensors, seed, scenario, notes)


def _street_truth(rec, level, duration_s):
    """Truth lines of the street's level (`level(s)`, mm): whenever it has
    moved by 1 mm, and at least every 10 minutes."""
    last_truth = None
    last_truth_t = -1e9
    for s in range(0, duration_s):
        lv = level(s)
        if last_truth is None or abs(lv - last_truth) >= 1.0 or s - last_truth_t >= 600:
            rec.add(s * 1000, {"truth": "street", "level_mm": round(lv, 1)})
            last_truth, last_truth_t = lv, s


def _street(rng, scenario, node, start, duration_s, period_s, env_period_s, seed, level, rain,
            air_fn, clutter, outages, notes):
    header = _street_header(scenario, node, start, duration_s, seed, notes)
    header["plan"] = {"recorded_every_s": {"street": period_s, "env": env_period_s}}
    rec = _Recording(header)
    _street_truth(rec, level, duration_s)
    for s in range(0, duration_s):
        lv = level(s)
        if s % period_s and s % env_period_s:
            continue
        temp_c, rh, p, bias = air_fn(s)
        if s % env_period_s == 0:
            rec.add(s * 1000, dict(s="env", **_bme(rng, temp_c, rh, p, bias)))
        if s % period_s:
            continue
        if any(a <= s < b for a, b in outages):
            rec.add(s * 1000, {"s": "street", "echo_us": [0] * 7})
            continue
        r = rain(s)
        dists = []
        for k in range(7):  # pings 150 ms apart
            tp = s + 0.15 * k
            top = max(level(s), clutter.height(tp))
            dists.append(STREET_MOUNT_MM - top)
        wet = lv > 2.0
        noise = 6.0 if wet else 5.0
        p_drop = 0.02 + (0.2 if r > 50 else 0.0)
        rec.add(s * 1000, {"s": "street", "echo_us": _burst(rng, dists, (temp_c, rh, p), noise, p_drop)})
    return rec


def _street_clutter(rng, duration_s, parked):
    """People, traffic and the parked things listed in `parked`
    ((start_s, duration_s, height_mm))."""
    c = _Blips()
    for t in _poisson_times(rng, 0, duration_s, lambda h: 12.0 if 7 <= h < 22 else 1.0):
        c.add(t, rng.uniform(0.8, 2.5), rng.uniform(1450, 1900))  # pedestrians
    for t in _poisson_times(rng, 0, duration_s, lambda h: 5.0 if 6 <= h < 23 else 0.5):
        c.add(t, rng.uniform(0.6, 1.8), rng.uniform(1300, 1700))  # cars pulling in and out
    for t in _poisson_times(rng, 0, duration_s, lambda h: 0.5 if 7 <= h < 20 else 0.0):
        c.add(t, rng.uniform(2.0, 6.0), rng.uniform(350, 600))  # dogs, pushchairs, bins wheeled past
    for a, d, hgt in parked:
        c.add(a, d, hgt)
    c.finish()
    return c


def flood_event(seed=2, start=DEFAULT_START):
    rng = random.Random(seed)
    duration_s = 24 * 3600
    cells = [(16.4 * 3600, 900, 35.0), (17.6 * 3600, 1300, 90.0)]
    rain = _storm(cells)
    levels = _reservoir(rain, duration_s, tau_s=2400.0, peak_mm=420.0)

    def level(s):
        return levels[min(int(s), duration_s - 1)]

    def air(s):
        h = _hour(s)
        temp = 25.0 - 15.0 * math.cos(2 * math.pi * (h - 3) / 24)
        rh = 90.0 - 1.6 * (temp - 10.0)
        cool = _smooth((h - 16.0) / 0.5) * (1 - _smooth((h - 21.0) / 3.0))
        temp -= 12.0 * cool
        rh += (95.0 - rh) * cool
        p = 100900.0 - 300.0 * cool
        sun = max(0.0, math.sin(math.pi * (h - 7) / 12)) * (1 - cool)
        return temp, rh, p, 1.0 * sun

    parked = [(10.2 * 3600, 8 * 60, 2350.0),   # delivery van
              (12.5 * 3600, 35 * 60, 1450.0),  # car parked under the sensor
              (17.3 * 3600, 40, 1750.0)]       # someone waiting under it in the flood
    clutter = _street_clutter(rng, duration_s, parked)
    return _street(rng, "flood-event", "street-demo-1", start, duration_s, 10, 10, seed, level, rain, air,
                   clutter,
                   outages=[(8.0 * 3600, 8.0 * 3600 + 240)],
                   notes="Synthetic: a hot day (10-40 °C) ending in two storm cells; the street "
                         "floods past watch, warning and danger, then recedes.")


def dry_week(seed=3, start=DEFAULT_START):
    rng = random.Random(seed)
    days = 7
    duration_s = days * 86400
    day_min = [rng.uniform(11, 19) for _ in range(days + 1)]
    day_max = [rng.uniform(30, 40) for _ in range(days + 1)]
    showers = [(d * 86400 + rng.uniform(13, 18) * 3600, rng.uniform(300, 700), rng.uniform(8, 18))
               for d in (1, 3, 5)]
    rain = _storm(showers)
    levels = _reservoir(rain, duration_s, tau_s=1500.0, peak_mm=28.0)

    def level(s):
        return levels[min(int(s), duration_s - 1)]

    def air(s):
        d = int(s // 86400)
        h = _hour(s)
        f = h / 24.0  # blend into the next day's extremes: no jump at midnight
        lo = day_min[d] * (1 - f) + day_min[d + 1] * f
        hi = day_max[d] * (1 - f) + day_max[d + 1] * f
        temp = (lo + hi) / 2 - (hi - lo) / 2 * math.cos(2 * math.pi * (h - 3) / 24)
        rh = 85.0 - 1.4 * (temp - 10.0)
        p = 101200.0 + 400.0 * math.sin(2 * math.pi * s / (3.5 * 86400))
        sun = max(0.0, math.sin(math.pi * (h - 7) / 12))
        return temp, rh, p, 1.0 * sun

    parked = []
    for d in range(days):
        base = d * 86400
        if d in (1, 4):  # a car parked overnight under the sensor
            parked.append((base + 22.0 * 3600, 9.0 * 3600, rng.uniform(1400, 1550)))
        for _ in range(rng.randint(2, 4)):  # delivery vans
            parked.append((base + rng.uniform(8, 18) * 3600, rng.uniform(4, 20) * 60,
                           rng.uniform(2100, 2600)))
        if d == 2:  # bins out for collection
            parked.append((base + 6.0 * 3600, 2.5 * 3600, 1050.0))
        parked.append((base + rng.uniform(9, 17) * 3600, rng.uniform(15, 40), rng.uniform(2800, 3100)))
    clutter = _street_clutter(rng, duration_s, parked)
    return _street(rng, "dry-week", "street-demo-2", start, duration_s, 30, 30, seed, level, rain, air,
                   clutter,
                   outages=[(2.5 * 86400, 2.5 * 86400 + 900)],
                   notes="Synthetic: seven dry days, three light showers (puddles under 3 cm), "
                         "parked cars, vans, bins, people and traffic under the sensor.")


# ---------------------------------------------------------------- street faults

BLIND_MM = 180  # a distance inside the jsn-sr04t's 250 mm blind zone
_FAILED_BME280 = {"temp_c": -38.0, "pressure_pa": 92800.0, "humidity_pct": 100.0}


class _Plan:
    """What happens when in a street-faults recording; times in s from start.

    `spans`: (start, end, street_every_s, env_every_s), the recording's
    spacing; outside them nothing is recorded (an outage). `blind`, `sun`,
    `bme_broken`: (start, end) of each effect; `sun` also carries the false
    level (mm). `cells`: rain cells as in `_storm`."""

    def __init__(self, duration_s, spans, blind, sun, bme_broken, cells, peak_mm):
        self.duration_s = duration_s
        self.spans = spans
        self.blind = blind
        self.sun = sun
        self.bme_broken = bme_broken
        self.cells = cells
        self.peak_mm = peak_mm


def _steady_air(rng, days):
    """Overcast, steady weather: each day's mean 12-16 °C and a diurnal swing
    of ±1 °C, humid, pressure slowly changing (a rainy spell)."""
    means = [rng.uniform(12.0, 16.0) for _ in range(days + 2)]

    def air(s):
        d = int(s // 86400)
        f = (s % 86400) / 86400.0
        mean = means[d] * (1 - f) + means[d + 1] * f
        temp = mean - 1.0 * math.cos(2 * math.pi * (_hour(s) - 3) / 24)
        return temp, 88.0 - 2.0 * (temp - mean), 100800.0 + 600.0 * math.sin(2 * math.pi * s / (4 * 86400))
    return air


def _street_faults(rng, scenario, node, start, seed, plan, notes):
    header = _street_header(scenario, node, start, plan.duration_s, seed, notes)
    header["plan"] = {"recorded_every_s": [{"from_s": a, "to_s": b, "street": se, "env": ee}
                                           for a, b, se, ee in plan.spans]}
    rec = _Recording(header)
    duration = plan.duration_s
    storm = _storm(plan.cells)
    reach = [(c - 6 * w, c + 6 * w) for c, w, _ in plan.cells]

    def rain(s):
        return storm(s) if any(a <= s < b for a, b in reach) else 0.0

    levels = _reservoir(rain, duration, tau_s=2400.0, peak_mm=plan.peak_mm)
    air = _steady_air(rng, duration // 86400 + 1)
    clutter = _street_clutter(rng, duration, [])
    _street_truth(rec, levels.__getitem__, duration)
    broken_seen = set()
    for a, b, every_street, every_env in plan.spans:
        for s in range(a, b, math.gcd(every_street, every_env)):
            temp_c, rh, p = air(s)
            if s % every_env == 0:
                broken = next((x for x in plan.bme_broken if x[0] <= s < x[1]), None)
                if broken is None:
                    rec.add(s * 1000, dict(s="env", **_bme(rng, temp_c, rh, p)))
                elif broken not in broken_seen:  # the failure starts with one absurd reading
                    broken_seen.add(broken)
                    rec.add(s * 1000, dict(_FAILED_BME280, s="env", temp_c=-146.0))
                else:
                    rec.add(s * 1000, dict(s="env", **_FAILED_BME280))
            if s % every_street:
                continue
            blind = any(x <= s < y for x, y in plan.blind)
            false_mm = next((f[2] for f in plan.sun if f[0] <= s < f[1]), None)
            dists = []
            for k in range(7):  # pings 150 ms apart
                if blind:
                    dists.append(BLIND_MM)
                elif false_mm is not None:
                    dists.append(STREET_MOUNT_MM - false_mm)
                else:
                    dists.append(STREET_MOUNT_MM - max(levels[s], clutter.height(s + 0.15 * k)))
            p_drop = 0.02 + (0.2 if rain(s) > 50 else 0.0)
            rec.add(s * 1000, {"s": "street", "echo_us": _burst(rng, dists, (temp_c, rh, p), 5.0, p_drop)})
    return rec


_H = 3600
_D = 86400


def street_faults(seed=4, start=DEFAULT_START):
    """16 days, most of them an outage (cheap to bundle)."""
    rng = random.Random(seed)
    sun_10s = (18 * _H + 600, 18 * _H + 600 + 150, rng.uniform(150, 350))  # 2.5 min at 10 s
    sun_log = (_D + 18 * _H + 300, _D + 18 * _H + 300 + 900, rng.uniform(150, 350))  # two 10-min readings
    plan = _Plan(
        duration_s=16 * _D,
        spans=[(0, 16 * _H, 60, 300), (16 * _H, 20 * _H, 10, 60), (20 * _H, _D, 60, 300),
               (_D, 4 * _D, 600, 600),  # a sparse logger: the paired echoes, the BME280, the blind zone
               (14 * _D, 15 * _D + 13 * _H, 60, 300),  # back after a 10-day outage
               (15 * _D + 13 * _H, 15 * _D + 20 * _H, 10, 60), (15 * _D + 20 * _H, 16 * _D, 60, 300)],
        blind=[(2 * _D, 3 * _D + 12 * _H)],
        sun=[sun_10s, sun_log],
        bme_broken=[(_D + 22 * _H, 4 * _D)],
        cells=[(15 * _D + 15 * _H, 1200, 80.0)],
        peak_mm=380.0)
    return _street_faults(rng, "street-faults", "street-demo-3", start, seed, plan,
                          "Synthetic: sun false echoes at 10 s and at a 10-minute logger's spacing, a "
                          "BME280 failing into constant garbage, two days in the blind zone, a 10-day "
                          "outage, then a flood.")


def street_soak(seed=5, start=DEFAULT_START):
    """40 days: a 7-day blind stretch, a 10-day outage, then a flood."""
    rng = random.Random(seed)
    plan = _Plan(
        duration_s=40 * _D,
        spans=[(0, 17 * _D, 60, 300), (27 * _D, 32 * _D, 60, 300), (32 * _D, 33 * _D, 10, 60),
               (33 * _D, 40 * _D, 60, 300)],
        blind=[(9 * _D, 16 * _D)],
        sun=[],
        bme_broken=[],
        cells=[(32 * _D + 14 * _H, 1500, 90.0)],
        peak_mm=420.0)
    return _street_faults(rng, "street-soak", "street-demo-4", start, seed, plan,
                          "Synthetic: 40 days with a 7-day blind stretch and a 10-day outage, then a "
                          "flood past danger.")


SCENARIOS = {"parking-day": parking_day, "flood-event": flood_event, "dry-week": dry_week,
             "parking-interference": parking_interference, "street-faults": street_faults,
             "street-soak": street_soak}
DEFAULT_SEEDS = {"parking-day": 1, "flood-event": 2, "dry-week": 3, "parking-interference": 4,
                 "street-faults": 4, "street-soak": 5}


def synth(scenario, path, seed=None, start=DEFAULT_START, rate_hz=None):
    """Write a synthetic recording of `scenario` to `path`; returns its
    record count. `rate_hz` (readings a second, 0.1-50) is for the scenarios
    whose sampling can change (`parking-interference`)."""
    if scenario not in SCENARIOS:
        raise ValueError("unknown scenario %r (choose from %s)" % (scenario, ", ".join(SCENARIOS)))
    if type(start) is not int or not 0 <= start <= MAX_START:
        raise ValueError("start %s: give UTC epoch seconds from 0 to %d" % (start, MAX_START))
    if seed is None:
        seed = DEFAULT_SEEDS[scenario]
    if rate_hz is None:
        rec = SCENARIOS[scenario](seed=seed, start=start)
    elif scenario != "parking-interference":
        raise ValueError("scenario %s has a fixed sampling: `rate_hz` is for parking-interference" % scenario)
    elif not 0.1 <= rate_hz <= 50:
        raise ValueError("`rate_hz` must be between 0.1 and 50 readings a second, not %g" % rate_hz)
    else:
        rec = parking_interference(seed=seed, start=start, rate_hz=rate_hz)
    rec.write(path)
    return len(rec.records)
