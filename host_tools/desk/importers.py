"""Real data into citynode recordings (docs/importing.md).

- `floodnet`: FloodNet's public flood-event table (NYC Open Data, "FloodNet
  street flooding events"; FloodNet is a project of NYU and CUNY with the
  City of New York). Each row, one event's depth profile, becomes a street
  node's recording: dry road before and after, a `water` sensor whose echo
  times come from the profile through the core's own speed-of-sound model,
  an `env` sensor with a plausible New York air model, and the profile as
  ground truth.
- `csv`: a user's own logger (time, distance or level, optional air and
  truth columns) becomes a recording, through a column mapping.

Every row is checked before anything is written; each bad row is one line
`FILE:LINE: column: what` (lines counted as in the file, header = line 1).
"""

import csv
import json
import math
import random
import re
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from citynode.board.recording import FORMAT
from citynode.sense.ranging import RANGERS, half_speed_q16, speed_mm_s
from host_tools import tomlfile
from host_tools.desk.score import _Truth
from host_tools.desk.synth import _bme, _Recording, _smooth

MM_PER_INCH = 25.4
NYC = ZoneInfo("America/New_York")  # FloodNet's local times carry no offset
DRIVER = "jsn-sr04t"  # waterproof single transducer, 250-6000 mm: the closest to the MB7389 (300-5000 mm)
PINGS = 7  # FloodNet takes 7 readings 150 ms apart and keeps their median
PING_SPACING_S = 0.15
# Dry road before the event: the node's first level needs two agreeing
# readings and its rate a full rate window (300 s); half an hour at the dry
# schedule (60 s) gives it a settled, steady level before the water comes.
PRE_S = 1800
# Dry road after: the frozen-level score looks an hour after the road is dry;
# half an hour more shows the level stays put.
POST_S = 5400
# Spacing of the dry-road samples at the profile's own times: FloodNet's
# sensors uplink every 60 s.
DRY_STEP_S = 60
# An event whose profile starts (or ends) wet is taken to rise from (or
# drain to) a dry road over one uplink interval.
EDGE_S = 60

# Ping noise of the MaxBotix HRXL-MaxSonar-WR family (MB7389; datasheet
# PD11500): 1 mm resolution; reading-to-reading stability of 1 mm at 1 m,
# taken here to grow in proportion to the range (σ = distance / 1000); when
# acoustic noise affects a reading "the effect is typically less than 5 mm":
# AFFECTED of the pings are moved by up to ±5 mm. A ping is lost (no echo)
# with probability DROPOUT (rain and splashes; no published figure: the
# rate of the synthetic street model in light rain). The 1 % factory accuracy
# is a fixed scale error that FloodNet's offset calibration (from night-time
# dry readings) takes out, so it is not modelled.
STABILITY_PER_MM = 1.0 / 1000.0
AFFECTED = 0.05
AFFECTED_MM = 5.0
DROPOUT = 0.02

# What a logger's env reading holds for an air quantity it does not log:
# 20 °C, 50 %RH and the standard atmosphere's 101 325 Pa (°C, %RH, Pa).
FILL_AIR = (20.0, 50.0, 101325.0)


class ImportFailed(Exception):
    """Bad input: `errors` is a list of one-line messages (FILE:LINE: column: what)."""

    def __init__(self, errors):
        super().__init__("\n".join(errors))
        self.errors = errors


def core_air(temp_c, humidity_pct, pressure_pa):
    """An env reading as the core takes it: hundredths of °C, ‰ RH, whole Pa
    (core.Core._feed_env)."""
    return int(round(temp_c * 100)), int(round(humidity_pct * 10)), int(round(pressure_pa))


def air_q16(air):
    """The core's half speed of sound (`ranging.half_speed_q16`) for `air`
    (hundredths of °C, ‰ RH, Pa; see `core_air`)."""
    return half_speed_q16(speed_mm_s(*air))


def echo_us(distance_mm, q16):
    """The echo round trip (µs, an int) that the core turns back into exactly
    `distance_mm` (an int) with half speed of sound `q16` (`air_q16`): the
    core's own model (`ranging.speed_mm_s`, `half_speed_q16`, `echo_to_mm`)
    inverted: the smallest e with (e·q16 + 32768) >> 16 ≥ distance_mm. One µs
    is under 0.2 mm, so that e gives exactly distance_mm."""
    return -((32768 - (distance_mm << 16)) // q16)


def ping_burst(rng, distance_mm, air, pings=PINGS):
    """Echo times (µs) of a burst at a true `distance_mm` (float) in `air`,
    by the MaxBotix noise model above; 0 is a lost ping."""
    q16 = air_q16(air)
    out = []
    for _ in range(pings):
        if rng.random() < DROPOUT:
            out.append(0)
            continue
        d = distance_mm + rng.gauss(0.0, distance_mm * STABILITY_PER_MM)
        if rng.random() < AFFECTED:
            d += rng.uniform(-AFFECTED_MM, AFFECTED_MM)
        out.append(echo_us(max(1, int(round(d))), q16))
    return out


def nyc_air(epoch_s, wet):
    """Plausible New York City air (°C, %RH, Pa) at UTC `epoch_s`; `wet` (0-1)
    is how much of the storm is overhead. Daily mean temperature from Central
    Park's 1991-2020 normals (0.9 °C late January to 25.3 °C late July, a
    cosine between), ±4 °C over the day (coolest at 03:00, warmest at
    15:00 local); 65 %RH dry, 95 %RH in the rain, which also cools the air by
    3 °C; 101.5 kPa falling by 0.8 kPa under the storm. The level does not
    depend on it: echoes are made from the readings written."""
    local = datetime.fromtimestamp(epoch_s, NYC)
    doy = local.timetuple().tm_yday
    hour = local.hour + local.minute / 60.0
    temp = 13.1 - 12.2 * math.cos(2 * math.pi * (doy - 20) / 365.25)
    temp -= 4.0 * math.cos(2 * math.pi * (hour - 3) / 24) + 3.0 * wet
    return temp, 65.0 + 30.0 * wet, 101500.0 - 800.0 * wet


# ------------------------------------------------------------------ FloodNet

FLOODNET_COLUMNS = ("sensor_id", "flood_start_time", "flood_profile_depth_inches", "flood_profile_time_secs")


def _json_numbers(where, raw, what):
    try:
        v = json.loads(raw)
    except ValueError:
        raise ValueError("%s: not a JSON list of %s: %s" % (where, what, _short(raw))) from None
    if type(v) is not list or not v:
        raise ValueError("%s: not a non-empty JSON list of %s: %s" % (where, what, _short(raw)))
    for i, x in enumerate(v):
        if type(x) not in (int, float) or not math.isfinite(x):
            raise ValueError("%s: item %d is not a number: %s" % (where, i, json.dumps(x)))
        if x < 0:
            raise ValueError("%s: item %d is negative (%s)" % (where, i, json.dumps(x)))
    return v


def _short(raw, n=40):
    raw = str(raw)
    return repr(raw if len(raw) <= n else raw[:n] + "...")


def parse_time(raw, tz=UTC):
    """UTC epoch seconds (float) from ISO 8601 (a time without an offset is
    in `tz`) or from a plain number (epoch seconds); ValueError otherwise."""
    raw = raw.strip()
    try:
        v = float(raw)
    except ValueError:
        pass
    else:
        if not math.isfinite(v) or v < 0:
            raise ValueError("not a time: %s" % _short(raw))
        return v
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError("not an ISO 8601 time or epoch seconds: %s" % _short(raw)) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.timestamp()


class FloodnetEvent:
    """One checked row of the FloodNet table."""

    def __init__(self, path, line, row, mount_mm):
        self.path, self.line = str(path), line
        for col in FLOODNET_COLUMNS:
            if row.get(col) is None or not row[col].strip():
                raise ValueError("%s: missing value" % col)
        self.sensor_id = row["sensor_id"].strip()
        self.sensor_name = (row.get("sensor_name") or "").strip()
        try:
            self.start = parse_time(row["flood_start_time"], NYC)
        except ValueError as e:
            raise ValueError("flood_start_time: %s" % e) from None
        depth = _json_numbers("flood_profile_depth_inches", row["flood_profile_depth_inches"], "depths")
        times = _json_numbers("flood_profile_time_secs", row["flood_profile_time_secs"], "seconds")
        if len(depth) != len(times):
            raise ValueError("flood_profile_time_secs: %d times for %d depths (flood_profile_depth_inches)"
                             % (len(times), len(depth)))
        for i in range(1, len(times)):
            if times[i] < times[i - 1]:
                raise ValueError("flood_profile_time_secs: item %d goes back in time (%s after %s)"
                                 % (i, times[i], times[i - 1]))
        blind = RANGERS[DRIVER][0]
        deepest = max(depth) * MM_PER_INCH
        if deepest > mount_mm - blind:
            raise ValueError("flood_profile_depth_inches: %.0f mm of water reaches the sensor's blind zone "
                             "(%d mm) at a %d mm mount" % (deepest, blind, mount_mm))
        self.depth_in, self.times_s = depth, times

    def name(self):
        stamp = datetime.fromtimestamp(self.start, UTC).strftime("%Y%m%dT%H%M%SZ")
        return "%s_%s" % (re.sub(r"[^A-Za-z0-9_-]", "-", self.sensor_id), stamp)

    def truth(self, start_s):
        """The true level (t_ms since `start_s`, mm) at the profile's points,
        with the dry road before and after."""
        t0 = (self.start - start_s) * 1000.0
        pts = [(int(round(t0 + s * 1000)), round(d * MM_PER_INCH, 3))
               for s, d in zip(self.times_s, self.depth_in, strict=True)]
        if pts[0][1] > 0:
            pts.insert(0, (pts[0][0] - EDGE_S * 1000, 0.0))
        if pts[-1][1] > 0:
            pts.append((pts[-1][0] + EDGE_S * 1000, 0.0))
        pts.insert(0, (0, 0.0))
        pts.append((pts[-1][0] + POST_S * 1000, 0.0))
        return pts


def read_floodnet(path, mount_mm):
    """The checked events of a FloodNet table: a list of (line, FloodnetEvent);
    raises ImportFailed naming every bad row."""
    events, errors = [], []
    for line, row in _csv_rows(path, FLOODNET_COLUMNS, errors):
        try:
            events.append((line, FloodnetEvent(path, line, row, mount_mm)))
        except ValueError as e:
            errors.append("%s:%d: %s" % (path, line, e))
    if errors:
        raise ImportFailed(errors)
    if not events:
        raise ImportFailed(["%s: no events in the file" % path])
    return events


def _csv_rows(path, required, errors):
    """(line, row dict) for every data row; a missing column in the header
    line is an error (and no rows)."""
    try:
        f = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115 - closed below
    except OSError as e:
        raise ImportFailed(["%s: %s" % (path, e.strerror or e)]) from None
    with f:
        reader = csv.DictReader(f)
        try:
            fields = reader.fieldnames or []
        except (csv.Error, UnicodeDecodeError) as e:
            raise ImportFailed(["%s:1: %s" % (path, e)]) from None
        missing = [c for c in required if c not in fields]
        if missing:
            errors += ["%s:1: %s: missing column" % (path, c) for c in missing]
            return
        line = reader.line_num + 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as e:
                errors.append("%s:%d: %s" % (path, line, e))
                return
            if None in row:
                errors.append("%s:%d: %d values for %d columns" % (path, line, len(fields) + len(row[None]),
                                                                   len(fields)))
            else:
                yield line, row
            line = reader.line_num + 1


def floodnet_recording(event, mount_mm=3000, every_s=None, seed=0):
    """The recording (a synth `_Recording`) of one FloodNet event."""
    start = int(math.floor(event.start)) - PRE_S
    pts = event.truth(start)
    truth = _Truth(pts)  # the scorer's own linear interpolation
    end = pts[-1][0]
    if every_s:
        step = int(round(every_s * 1000))
        times = range(0, end + 1, step)
    else:
        first, last = pts[1][0], pts[-2][0]
        times = list(range(0, first, DRY_STEP_S * 1000))
        times += [int(round((event.start - start + s) * 1000)) for s in event.times_s]
        times += range(last + DRY_STEP_S * 1000, end + 1, DRY_STEP_S * 1000)
    wet_from, wet_to = pts[1][0] / 1000.0, pts[-2][0] / 1000.0
    sensors = [{"id": "street", "type": "water", "driver": DRIVER, "pings": PINGS, "mount_mm": mount_mm},
               {"id": "env", "type": "env", "driver": "bme280", "period_s": 60}]
    header = {
        "format": FORMAT, "version": 1, "node": event.sensor_id, "board": "floodnet-mb7389",
        "site": "floodnet-nyc", "start": start, "duration_s": end // 1000, "sensors": sensors,
        "mount": {"height_mm": mount_mm, "looks_at": "street"},
        "units": {"t": "ms since start", "echo_us": "µs round trip, 0 = no echo", "temp_c": "°C",
                  "pressure_pa": "Pa", "humidity_pct": "%RH", "level_mm": "mm above the dry road"},
        "plan": {"recorded_every_s": {"street": every_s or "FloodNet profile times",
                                      "env": every_s or "FloodNet profile times"}},
        "generator": {"name": "citynode import floodnet", "source": Path(event.path).name,
                      "line": event.line, "seed": seed, "every_s": every_s},
        "notes": "FloodNet flood event at %s (%s), starting %s local time, %.2f in (%.0f mm) deep at most; "
                 "depth profile from NYC Open Data 'FloodNet street flooding events' (FloodNet: NYU, CUNY); "
                 "echo times, ping noise and air modelled by citynode import."
                 % (event.sensor_name or event.sensor_id, event.sensor_id,
                    datetime.fromtimestamp(event.start, NYC).strftime("%Y-%m-%d %H:%M"),
                    max(event.depth_in), max(event.depth_in) * MM_PER_INCH),
    }
    rec = _Recording(header)
    rng = random.Random(seed * 1000003 + event.line)
    for t, level in pts:
        rec.add(t, {"truth": "street", "level_mm": level})
    for t in times:
        s = t / 1000.0
        wet = _smooth((s - wet_from + 1800) / 1800) * (1 - _smooth((s - wet_to) / 1800))
        reading = _bme(rng, *nyc_air(start + s, wet))
        air = core_air(reading["temp_c"], reading["humidity_pct"], reading["pressure_pa"])
        rec.add(t, dict(s="env", **reading))
        rec.add(t, {"s": "street", "echo_us": ping_burst(rng, mount_mm - truth.at(t), air)})
    return rec


def write_floodnet(job):
    """Write one event's recording; `job` is (event, out_dir, mount_mm,
    every_s, seed, name). Returns the path (a worker process's task)."""
    event, out_dir, mount_mm, every_s, seed, name = job
    path = Path(out_dir) / (name + ".jsonl")
    floodnet_recording(event, mount_mm, every_s, seed).write(path)
    return str(path)


def floodnet_jobs(path, out_dir, mount_mm=3000, every_s=None, seed=0):
    """The checked work of a FloodNet import: one job per event for
    `write_floodnet`; raises ImportFailed naming every bad row."""
    if every_s is not None and not every_s > 0:
        raise ImportFailed(["`every` must be above 0 seconds"])
    if not mount_mm > 0:
        raise ImportFailed(["`mount_mm` must be above 0"])
    events = read_floodnet(path, mount_mm)
    names = {}
    jobs = []
    for _line, ev in events:
        name = ev.name()
        names[name] = names.get(name, 0) + 1
        if names[name] > 1:
            name = "%s-%d" % (name, names[name])
        jobs.append((ev, str(out_dir), mount_mm, every_s, seed, name))
    return jobs


def import_floodnet(path, out_dir, mount_mm=3000, every_s=None, seed=0, workers=1, progress=None):
    """Check FloodNet table `path`, then write one recording per event to
    `out_dir` on `workers` processes; returns the paths written.
    `progress(done, total)` is called as each is written."""
    jobs = floodnet_jobs(path, out_dir, mount_mm, every_s, seed)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    paths = []
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:  # no process starts unless used
        parallel = workers > 1 and len(jobs) > 1
        for p in pool.map(write_floodnet, jobs, chunksize=4) if parallel else map(write_floodnet, jobs):
            paths.append(p)
            if progress:
                progress(len(paths), len(jobs))
    return paths


# ------------------------------------------------------------------ own logger CSV

# Mapping keys: the recording's quantity -> the CSV column holding it.
DISTANCE_KEYS = {"distance_mm": 1.0, "distance_cm": 10.0, "distance_m": 1000.0}
LEVEL_KEYS = {"level_mm": 1.0, "level_cm": 10.0}
AIR_KEYS = ("temp_c", "humidity_pct", "pressure_pa", "pressure_hpa")
TRUTH_KEYS = {"truth_mm": 1.0, "truth_cm": 10.0}
MAP_KEYS = ("time",) + tuple(DISTANCE_KEYS) + tuple(LEVEL_KEYS) + AIR_KEYS + tuple(TRUTH_KEYS)


def parse_map(text=None, toml_path=None):
    """The column mapping from `--map key=column,...` or a TOML file of
    `key = "column"` lines; checked: `time` and exactly one distance or level
    key are required, and only known keys."""
    mapping = {}
    if toml_path is not None:
        try:
            data = tomlfile.loads(Path(toml_path).read_text(encoding="utf-8"))
        except OSError as e:
            raise ImportFailed(["%s: %s" % (toml_path, e.strerror or e)]) from None
        except UnicodeDecodeError:
            raise ImportFailed(["%s: not UTF-8 text" % toml_path]) from None
        except tomlfile.TOMLDecodeError as e:
            raise ImportFailed(["%s: not TOML: %s" % (toml_path, e)]) from None
        for k, v in data.items():
            if type(v) is not str:
                raise ImportFailed(["%s: %s: the column name must be a string" % (toml_path, k)])
            mapping[k] = v
        where = str(toml_path)
    else:
        for part in (text or "").split(","):
            if not part.strip():
                continue
            k, sep, v = part.partition("=")
            if not sep or not k.strip() or not v.strip():
                raise ImportFailed(["`map`: %r is not key=column" % part])
            mapping[k.strip()] = v.strip()
        where = "`map`"
    unknown = [k for k in mapping if k not in MAP_KEYS]
    if unknown:
        raise ImportFailed(["%s: unknown key %r (keys: %s)" % (where, unknown[0], ", ".join(MAP_KEYS))])
    if "time" not in mapping:
        raise ImportFailed(["%s: 'time' is required (the column with the time of each reading)" % where])
    ranged = [k for k in mapping if k in DISTANCE_KEYS or k in LEVEL_KEYS]
    if len(ranged) != 1:
        raise ImportFailed(["%s: give exactly one of %s" % (where, ", ".join(tuple(DISTANCE_KEYS)
                                                                          + tuple(LEVEL_KEYS)))])
    if "pressure_pa" in mapping and "pressure_hpa" in mapping:
        raise ImportFailed(["%s: give pressure_pa or pressure_hpa, not both" % where])
    if len([k for k in mapping if k in TRUTH_KEYS]) > 1:
        raise ImportFailed(["%s: give one truth column" % where])
    return mapping


def _number(row, key, col, allow_empty=True):
    raw = (row.get(col) or "").strip()
    if not raw:
        if allow_empty:
            return None
        raise ValueError("%s (%s): missing value" % (col, key))
    try:
        v = float(raw)
    except ValueError:
        raise ValueError("%s (%s): not a number: %s" % (col, key, _short(raw))) from None
    if not math.isfinite(v):
        raise ValueError("%s (%s): not a finite number: %s" % (col, key, _short(raw)))
    return v


def csv_recording(path, mapping, mount_mm=3000, node=None, seed=0):
    """A recording (synth `_Recording`, version 2) of a user's logger CSV;
    raises ImportFailed naming every bad row. Each reading is one
    `distance_mm` ping: the logger measured the distance itself, so the
    core takes it as it is (as from a UART ranging part) and the air only
    goes to the `env` sensor."""
    if not mount_mm > 0:
        raise ImportFailed(["`mount_mm` must be above 0"])
    errors = []
    rows = []
    lo, hi = RANGERS[DRIVER][0], RANGERS[DRIVER][1]
    ranged = next(k for k in mapping if k in DISTANCE_KEYS or k in LEVEL_KEYS)
    truth_key = next((k for k in mapping if k in TRUTH_KEYS), None)
    air_keys = [k for k in AIR_KEYS if k in mapping]
    last_t = None
    for line, row in _csv_rows(path, list(mapping.values()), errors):
        try:
            col = mapping["time"]
            raw_t = (row.get(col) or "").strip()
            if not raw_t:
                raise ValueError("%s (time): missing value" % col)
            try:
                t = parse_time(raw_t)
            except ValueError as e:
                raise ValueError("%s (time): %s" % (col, e)) from None
            if last_t is not None and t < last_t:
                raise ValueError("%s (time): goes back in time" % col)
            last_t = t
            v = _number(row, ranged, mapping[ranged])
            dist = None
            if v is not None:
                if v < 0 and ranged in DISTANCE_KEYS:  # a level a little below the dry road is noise
                    raise ValueError("%s (%s): negative (%s)" % (mapping[ranged], ranged, _short(v)))
                dist = (v * DISTANCE_KEYS[ranged] if ranged in DISTANCE_KEYS
                        else mount_mm - v * LEVEL_KEYS[ranged])
                if not lo <= dist <= hi:
                    raise ValueError("%s (%s): %.0f mm from the sensor is outside what a %s ranges "
                                     "(%d-%d mm)" % (mapping[ranged], ranged, dist, DRIVER, lo, hi))
            air = {k: _number(row, k, mapping[k]) for k in air_keys}
            truth = None
            if truth_key:
                truth = _number(row, truth_key, mapping[truth_key])
                truth = None if truth is None else truth * TRUTH_KEYS[truth_key]
            rows.append((t, dist, air, truth))
        except ValueError as e:
            errors.append("%s:%d: %s" % (path, line, e))
    if errors:
        raise ImportFailed(errors)
    if not rows:
        raise ImportFailed(["%s: no readings in the file" % path])
    start = int(math.floor(rows[0][0]))
    sensors = [{"id": "street", "type": "water", "driver": DRIVER, "pings": 1, "mount_mm": mount_mm}]
    if air_keys:
        sensors.append({"id": "env", "type": "env", "driver": "bme280", "period_s": 60})
    header = {
        "format": FORMAT, "version": 2, "node": node or Path(path).stem, "board": "logger",
        "start": start, "duration_s": int(math.ceil(rows[-1][0] - start)), "sensors": sensors,
        "mount": {"height_mm": mount_mm, "looks_at": "street"},
        "units": {"t": "ms since start", "distance_mm": "sensor to surface, 0 = no reading",
                  "level_mm": "mm above the dry road"},
        "generator": {"name": "citynode import csv", "source": Path(path).name, "map": mapping},
        "notes": "Imported from %s, one reading a line." % Path(path).name,
    }
    rec = _Recording(header)
    for t, dist, air, truth in rows:
        t_ms = int(round((t - start) * 1000))
        if truth is not None:
            rec.add(t_ms, {"truth": "street", "level_mm": round(truth, 3)})
        if air_keys:
            if all(v is not None for v in air.values()):
                reading = _full_air(air)
                rec.add(t_ms, {"s": "env", "temp_c": reading[0], "humidity_pct": reading[1],
                               "pressure_pa": reading[2]})
            else:
                rec.add(t_ms, {"s": "env", "fault": "no_reading"})
        rec.add(t_ms, {"s": "street", "distance_mm": [0 if dist is None else int(round(dist))]})
    return rec


def _full_air(air):
    """(°C, %RH, Pa) from the mapped air columns; what is not mapped is
    FILL_AIR. Implausible values are kept: judging them is the core's work,
    as for a BME280 on a board."""
    temp = air.get("temp_c", FILL_AIR[0])
    rh = air.get("humidity_pct", FILL_AIR[1])
    p = air["pressure_hpa"] * 100.0 if "pressure_hpa" in air else air.get("pressure_pa", FILL_AIR[2])
    return temp, rh, p
