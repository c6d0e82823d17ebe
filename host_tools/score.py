"""Score a replay against a recording's ground truth.

Occupancy: each true transition (a car has stopped in the bay / has left
it) is matched to the first detected transition to the same state within
[-MATCH_BEFORE_S, +MATCH_AFTER_S] of it; matches are true positives, the
rest of the detections false positives, the rest of the truth misses.
Latency = detection time − true time (negative: seen before the car stopped).

Water: the mean absolute error of every published level against the true
level interpolated at the same moment; for each upward crossing of an alert
threshold by the true level, the delay until the node's alert reached that
level, in seconds and in sampling intervals (the gap between the node's
measurements around the crossing); alerts raised where the true level never
came within the hysteresis of that threshold are false alerts.
"""

import bisect
import statistics

from citynode.flood import ALERT_NAMES, WaterLevel

# What the sensing core is held to (the report marks each figure against these).
F1_TARGET = 0.99
LATENCY_MEDIAN_TARGET_S = 5.0
WATER_MAE_TARGET_MM = 10.0

MATCH_BEFORE_S = 15.0
MATCH_AFTER_S = 60.0
FALSE_ALERT_WINDOW_S = 600.0


def _median(xs):
    return statistics.median(xs) if xs else None


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
    p, r, f1 = _prf(tot_tp, tot_fp, tot_fn)
    return {"bays": per_bay, "transitions": tot_tp + tot_fn, "tp": tot_tp, "fp": tot_fp,
            "fn": tot_fn, "precision": p, "recall": r, "f1": f1,
            "latency_median_s": _median(latencies),
            "latency_p90_s": sorted(latencies)[int(0.9 * (len(latencies) - 1))] if latencies else None,
            "latency_max_s": max(latencies) if latencies else None}


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


def water(messages, truth, sensor_cfg):
    sid = sensor_cfg["id"]
    points = [(r["t"] / 1000.0, float(r["level_mm"])) for r in truth if r.get("truth") == sid]
    if not points:
        return None
    cfg = WaterLevel(sid, [], sensor_cfg)
    true = _Truth(points)
    levels = [(t / 1000.0, p["level_mm"]) for t, topic, p in messages
              if topic == "water" and p.get("sensor", sid) == sid]
    alerts = [(t / 1000.0, ALERT_NAMES.index(p["alert"]), ALERT_NAMES.index(p["was"]))
              for t, topic, p in messages
              if topic == "event" and p.get("kind") == "alert" and p.get("sensor") == sid]
    errors = [abs(lv - true.at(t)) for t, lv in levels]
    wet = [abs(lv - true.at(t)) for t, lv in levels if true.at(t) > 10.0]
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
    for ta, new, was in alerts:
        if new <= was:
            continue
        th = cfg.thresholds[new - 1]
        if true.max_between(ta - FALSE_ALERT_WINDOW_S, ta + FALSE_ALERT_WINDOW_S) < th - cfg.hyst_mm:
            false_alerts.append({"t_s": ta, "alert": ALERT_NAMES[new]})
    return {
        "sensor": sid, "readings": len(levels),
        "mae_mm": round(sum(errors) / len(errors), 2) if errors else None,
        "mae_wet_mm": round(sum(wet) / len(wet), 2) if wet else None,
        "max_error_mm": round(max(errors), 1) if errors else None,
        "crossings": crossings,
        "missed": sum(1 for c in crossings if c["alert_t_s"] is None),
        "late": sum(1 for c in crossings if not c["within_2_intervals"]),
        "false_alerts": false_alerts,
    }


def score(header, messages, truth):
    """All the figures a recording's truth allows, as a JSON-ready dict."""
    sensors = header["sensors"]
    out = {}
    bays = [s["id"] for s in sensors if s["type"] in ("bay_ultrasonic", "bay_magnetic")]
    occ = occupancy(messages, truth, bays)
    if occ is not None:
        out["occupancy"] = occ
    for s in sensors:
        if s["type"] == "water":
            w = water(messages, truth, s)
            if w is not None:
                out.setdefault("water", {})[s["id"]] = w
    return out
