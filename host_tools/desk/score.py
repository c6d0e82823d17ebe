"""Score a replay against a recording's ground truth.

Occupancy: each true transition (a car has stopped in the bay / has left
it) is matched to the first detected transition to the same state within
[-MATCH_BEFORE_S, +MATCH_AFTER_S] of it; matches are true positives, the
rest of the detections false positives, the rest of the truth misses.
Latency = detection time − true time (negative: seen before the car stopped).

Water: the mean absolute error of every published level against the true
level interpolated at the same moment (a level flagged `above_max` is a
lower bound, wrong only where the truth is below it); for each upward crossing of an alert
threshold by the true level, the delay until the node's alert reached that
level, in seconds and in sampling intervals (the gap between the node's
measurements around the crossing): missed when it never did, late when it
took more than 2 intervals. An alert raised while the true level was below
its threshold less the hysteresis is early when the true level reached the
threshold within FALSE_ALERT_WINDOW_S after it, and false when the true level
never came within the hysteresis of the threshold in that window either side.
A level is frozen when, FROZEN_AFTER_S after the true level went dry (and
stayed dry that long), the level the node publishes is still more than
FROZEN_MM off the truth.

Times: a message's `t` is the node's tick, which wraps at 2**30 ms (12.4
days), while truth times are milliseconds since the recording's start. Every
score works on unwrapped message times (`unwrap`): each tick is lifted by the
multiple of 2**30 that brings it within 2**29 ms of the moment its payload's
`ts` (UTC epoch seconds) names, so recordings of any length score right.

`aggregate` adds up the scores of many replays into one table.
"""

import bisect
import statistics

from citynode import sensors as registry
from citynode import ticks
from citynode.sense.flood import ABOVE_MAX, ALERT_NAMES, WaterLevel

# What the sensing core is held to (the report marks each figure against these).
F1_TARGET = 0.99
LATENCY_MEDIAN_TARGET_S = 5.0
LATENCY_P90_TARGET_S = 10.0
WATER_MAE_TARGET_MM = 10.0

MATCH_BEFORE_S = 15.0
MATCH_AFTER_S = 60.0
FALSE_ALERT_WINDOW_S = 600.0
DRY_MM = 10.0  # a true level below this is a dry road (and the wet MAE leaves it out)
FROZEN_AFTER_S = 3600.0
FROZEN_MM = 50.0
PERCENTILES = (50, 90, 99)


def _median(xs):
    return statistics.median(xs) if xs else None


def percentile(xs, q):
    """The `q` th percentile (0-100) of `xs` by linear interpolation between
    order statistics (numpy's default), or None for no values."""
    if not xs:
        return None
    xs = sorted(xs)
    pos = (len(xs) - 1) * q / 100.0
    i = int(pos)
    if i + 1 >= len(xs):
        return xs[-1]
    return xs[i] + (xs[i + 1] - xs[i]) * (pos - i)


def unwrap(header, messages):
    """`messages` ((t, topic, payload), t the node's tick in ms) with each `t`
    unwrapped to milliseconds since the header's `start`: t + k·2**30 with k
    chosen so the result lies within ±2**29 ms of (ts − start)·1000, `ts`
    being the payload's UTC epoch seconds. A payload without `ts` is placed
    against the message before it (or against 0 for the first)."""
    start = header.get("start", 0)
    out = []
    ref = 0
    for t, topic, p in messages:
        ts = p.get("ts") if isinstance(p, dict) else None
        if type(ts) in (int, float):
            ref = (ts - start) * 1000
        u = t + round((ref - t) / ticks.PERIOD) * ticks.PERIOD
        out.append((u, topic, p))
        ref = u
    return out


def _prf(tp, fp, fn):
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f1


def occupancy(messages, truth, bays):
    """Scores per bay and overall. `messages`: (t_ms, topic, payload);
    `truth`: truth records (dicts with t, truth, occupied)."""
    per_bay = {}
    tot_tp = tot_fp = tot_fn = 0
    latencies = []
    for bay in bays:
        true_tr = [(r["t"] / 1000.0, r["occupied"]) for r in truth if r.get("truth") == bay]
        if not true_tr:
            continue
        true_tr = [tr for i, tr in enumerate(true_tr) if i and tr[1] != true_tr[i - 1][1]]
        found = [(t / 1000.0, p["state"] == "occupied") for t, topic, p in messages
                 if topic == "event" and p.get("kind") == "occupancy" and p.get("sensor") == bay]
        used = [False] * len(found)
        tp = 0
        lat = []
        detail = []
        for tt, state in true_tr:
            match = None
            for i, (ft, fstate) in enumerate(found):
                if used[i] or fstate != state:
                    continue
                if tt - MATCH_BEFORE_S <= ft <= tt + MATCH_AFTER_S:
                    used[i] = True
                    tp += 1
                    lat.append(ft - tt)
                    match = ft
                    break
            detail.append({"true_t_s": round(tt, 3), "state": "occupied" if state else "free",
                           "detected_t_s": match,
                           "latency_s": None if match is None else round(match - tt, 3)})
        fp = used.count(False)
        fn = len(true_tr) - tp
        p, r, f1 = _prf(tp, fp, fn)
        per_bay[bay] = {"transitions": len(true_tr), "tp": tp, "fp": fp, "fn": fn,
                        "precision": p, "recall": r, "f1": f1,
                        "latency_median_s": _median(lat),
                        "latency_max_s": max(lat) if lat else None,
                        "per_transition": detail}
        tot_tp += tp
        tot_fp += fp
        tot_fn += fn
        latencies += lat
    if not per_bay:
        return None
    return _occupancy_totals(tot_tp, tot_fp, tot_fn, latencies, bays=per_bay)


def _occupancy_totals(tp, fp, fn, latencies, **extra):
    p, r, f1 = _prf(tp, fp, fn)
    out = dict(extra, transitions=tp + fn, tp=tp, fp=fp, fn=fn, precision=p, recall=r, f1=f1,
               latency_median_s=_median(latencies), latency_max_s=max(latencies) if latencies else None)
    for q in PERCENTILES:
        out["latency_p%d_s" % q] = percentile(latencies, q)
    return out


class _Truth:
    """A true level series, linearly interpolated."""

    def __init__(self, points):
        self.t = [p[0] for p in points]
        self.v = [p[1] for p in points]

    def at(self, t):
        i = bisect.bisect_right(self.t, t)
        if i == 0:
            return self.v[0]
        if i == len(self.t):
            return self.v[-1]
        t0, t1 = self.t[i - 1], self.t[i]
        v0, v1 = self.v[i - 1], self.v[i]
        return v0 + (v1 - v0) * (t - t0) / (t1 - t0) if t1 > t0 else v1

    def max_between(self, a, b):
        i = max(0, bisect.bisect_left(self.t, a) - 1)
        j = bisect.bisect_right(self.t, b)
        return max(self.v[i:j + 1])

    def dry_spells(self, dry_mm, hold_s):
        """Times (s) the level fell below `dry_mm` after being at or above it
        and then stayed below it for at least `hold_s` (the truth must cover
        that long)."""
        out = []
        for i in range(1, len(self.t)):
            if self.v[i - 1] >= dry_mm > self.v[i]:
                v0, v1, t0, t1 = self.v[i - 1], self.v[i], self.t[i - 1], self.t[i]
                td = t0 + (t1 - t0) * (v0 - dry_mm) / (v0 - v1)
                end = td + hold_s
                inside = self.v[bisect.bisect_right(self.t, td):bisect.bisect_left(self.t, end)]
                if end <= self.t[-1] and max(inside + [self.at(end)]) < dry_mm:
                    out.append(td)
        return out

    def crossings(self, threshold, hyst):
        """Times (s) the level rises through `threshold`, re-armed only
        after it has fallen below threshold − hyst."""
        out = []
        armed = self.v[0] < threshold
        for i in range(1, len(self.t)):
            v0, v1 = self.v[i - 1], self.v[i]
            if armed and v1 >= threshold > v0:
                t0, t1 = self.t[i - 1], self.t[i]
                out.append(t0 + (t1 - t0) * (threshold - v0) / (v1 - v0))
                armed = False
            elif v1 < threshold - hyst:
                armed = True
        return out


def _level_error(payload, true_mm):
    """How far a published level is from the truth. A level flagged
    `above_max` says "at least max_level_mm" (the deepest level the site
    trusts, published in place of a deeper reading): it is wrong only by
    how far the truth lies below it."""
    level = payload["level_mm"]
    if payload.get("fault") == ABOVE_MAX:
        return max(0.0, level - true_mm)
    return abs(level - true_mm)


def water(messages, truth, sensor_cfg):
    sid = sensor_cfg["id"]
    points = [(r["t"] / 1000.0, float(r["level_mm"])) for r in truth if r.get("truth") == sid]
    if not points:
        return None
    cfg = WaterLevel(sid, [], sensor_cfg)
    true = _Truth(points)
    water_msgs = [(t / 1000.0, p) for t, topic, p in messages
                  if topic == "water" and p.get("sensor", sid) == sid]
    levels = [(t, p["level_mm"]) for t, p in water_msgs]
    alerts = [(t / 1000.0, ALERT_NAMES.index(p["alert"]), ALERT_NAMES.index(p["was"]))
              for t, topic, p in messages
              if topic == "event" and p.get("kind") == "alert" and p.get("sensor") == sid]
    errors = [_level_error(p, true.at(t)) for t, p in water_msgs]
    wet = [_level_error(p, true.at(t)) for t, p in water_msgs if true.at(t) > DRY_MM]
    times = [t for t, _ in levels]

    crossings = []
    for k, th in enumerate(cfg.thresholds):
        for tc in true.crossings(th, cfg.hyst_mm):
            level_state = [a for a in alerts if a[0] <= tc]
            reached = None
            if level_state and level_state[-1][1] >= k + 1:
                reached = level_state[-1][0]
            else:
                for ta, new, _was in alerts:
                    if ta > tc and new >= k + 1:
                        reached = ta
                        break
            i = bisect.bisect_left(times, tc)
            interval = times[i] - times[i - 1] if 0 < i < len(times) else None
            delay = None if reached is None else reached - tc
            crossings.append({
                "alert": ALERT_NAMES[k + 1], "threshold_mm": th, "true_t_s": round(tc, 1),
                "alert_t_s": reached, "delay_s": None if delay is None else round(delay, 1),
                "interval_s": interval,
                "within_2_intervals": delay is not None and interval is not None and delay <= 2 * interval,
            })
    false_alerts = []
    early = []
    for ta, new, was in alerts:
        if new <= was:
            continue
        th = cfg.thresholds[new - 1]
        if true.max_between(ta - FALSE_ALERT_WINDOW_S, ta + FALSE_ALERT_WINDOW_S) < th - cfg.hyst_mm:
            false_alerts.append({"t_s": ta, "alert": ALERT_NAMES[new]})
        elif true.at(ta) < th - cfg.hyst_mm and true.max_between(ta, ta + FALSE_ALERT_WINDOW_S) >= th:
            early.append({"t_s": ta, "alert": ALERT_NAMES[new], "true_mm": round(true.at(ta), 1)})
    frozen = []
    for td in true.dry_spells(DRY_MM, FROZEN_AFTER_S):
        tf = td + FROZEN_AFTER_S
        i = bisect.bisect_right(times, tf)
        if i == 0:
            continue  # nothing published before then: no level to judge
        level = levels[i - 1][1]
        if abs(level - true.at(tf)) > FROZEN_MM:
            frozen.append({"dry_t_s": round(td, 1), "level_mm": level, "true_mm": round(true.at(tf), 1)})
    return {
        "sensor": sid, "readings": len(levels),
        "mae_mm": round(sum(errors) / len(errors), 2) if errors else None,
        "mae_wet_mm": round(sum(wet) / len(wet), 2) if wet else None,
        "max_error_mm": round(max(errors), 1) if errors else None,
        "above_max_readings": sum(1 for _, p in water_msgs if p.get("fault") == ABOVE_MAX),
        "crossings": crossings,
        "missed": sum(1 for c in crossings if c["alert_t_s"] is None),
        "late": sum(1 for c in crossings if c["alert_t_s"] is not None and not c["within_2_intervals"]),
        "early_alerts": early,
        "false_alerts": false_alerts,
        "frozen": frozen,
    }


def gaps(messages):
    """The silences the node could not bridge: its `gap` events, as
    {t_s, sensor, gap_s} (gap_s None when the node did not know it)."""
    return [{"t_s": t / 1000.0, "sensor": p.get("sensor"), "gap_s": p.get("gap_s")}
            for t, topic, p in messages if topic == "event" and p.get("kind") == "gap"]


def score(header, messages, truth):
    """All the figures a recording's truth allows, as a JSON-ready dict.
    `messages` carry the node's ticks; they are unwrapped here."""
    sensors = header["sensors"]
    messages = unwrap(header, messages)
    out = {}
    found = gaps(messages)
    if found:
        out["gaps"] = found
    bays = [s["id"] for s in sensors if registry.is_bay(s["type"])]
    occ = occupancy(messages, truth, bays)
    if occ is not None:
        out["occupancy"] = occ
    for s in sensors:
        if s["type"] == "water":
            w = water(messages, truth, s)
            if w is not None:
                out.setdefault("water", {})[s["id"]] = w
    return out


def aggregate(runs):
    """One table from the scores of many replays. `runs`: (name, scores)
    pairs, `scores` as `score` returns them. Counts are sums over the runs;
    precision, recall and F1 come from the summed counts; latency
    percentiles are over every matched transition, MAE percentiles over the
    water events (one per sensor and recording)."""
    tp = fp = fn = 0
    latencies = []
    bays = 0
    events = []
    gap_list = []
    for name, sc in runs:
        occ = sc.get("occupancy")
        if occ:
            tp, fp, fn = tp + occ["tp"], fp + occ["fp"], fn + occ["fn"]
            bays += len(occ["bays"])
            latencies += [d["latency_s"] for b in occ["bays"].values() for d in b["per_transition"]
                          if d["latency_s"] is not None]
        for sid, w in sc.get("water", {}).items():
            events.append((name, sid, w))
        gap_list += [dict(g, recording=name) for g in sc.get("gaps", [])]
    out = {"recordings": len(runs), "gaps": gap_list}
    if bays:
        out["occupancy"] = _occupancy_totals(tp, fp, fn, latencies, bays=bays)
    if events:
        maes = [(w["mae_mm"], name, sid) for name, sid, w in events if w["mae_mm"] is not None]
        crossings = [c for _, _, w in events for c in w["crossings"]]
        late = sum(w["late"] for _, _, w in events)
        water_out = {
            "events": len(events), "readings": sum(w["readings"] for _, _, w in events),
            "crossings": len(crossings), "missed": sum(w["missed"] for _, _, w in events),
            "late": late, "late_pct": 100.0 * late / len(crossings) if crossings else 0.0,
            "early_alerts": sum(len(w["early_alerts"]) for _, _, w in events),
            "false_alerts": sum(len(w["false_alerts"]) for _, _, w in events),
            "frozen": sum(len(w["frozen"]) for _, _, w in events),
            "frozen_events": sorted({name for name, _, w in events if w["frozen"]}),
            "mae_max_mm": max(maes)[0] if maes else None,
            "mae_worst": max(maes)[1] if maes else None,
            "mae_over_target": sorted(name for m, name, _ in maes if m > WATER_MAE_TARGET_MM),
        }
        for q in PERCENTILES:
            water_out["mae_p%d_mm" % q] = percentile([m for m, _, _ in maes], q)
        out["water"] = water_out
    return out
