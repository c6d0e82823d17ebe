"""The scorer itself, on hand-made replays whose right answer is known."""

from host_tools.desk import score


def occ_event(t_s, bay, state):
    return (int(t_s * 1000), "event", {"kind": "occupancy", "sensor": bay, "state": state})


def truth(t_s, bay, occupied):
    return {"t": int(t_s * 1000), "truth": bay, "occupied": occupied}


def test_perfect_detection_with_latencies():
    tr = [truth(0, "b", False), truth(100, "b", True), truth(500, "b", False)]
    msgs = [occ_event(102, "b", "occupied"), occ_event(504, "b", "free")]
    s = score.occupancy(msgs, tr, ["b"])
    assert (s["tp"], s["fp"], s["fn"]) == (2, 0, 0)
    assert s["f1"] == 1.0
    assert s["latency_median_s"] == 3.0
    assert s["bays"]["b"]["per_transition"] == [
        {"true_t_s": 100.0, "state": "occupied", "detected_t_s": 102.0, "latency_s": 2.0},
        {"true_t_s": 500.0, "state": "free", "detected_t_s": 504.0, "latency_s": 4.0}]


def test_a_flap_is_a_false_positive_and_a_miss_is_a_false_negative():
    tr = [truth(0, "b", False), truth(100, "b", True), truth(500, "b", False), truth(900, "b", True)]
    msgs = [occ_event(102, "b", "occupied"), occ_event(300, "b", "free"), occ_event(310, "b", "occupied"),
            occ_event(503, "b", "free")]
    s = score.occupancy(msgs, tr, ["b"])
    assert (s["tp"], s["fp"], s["fn"]) == (2, 2, 1)
    assert abs(s["precision"] - 0.5) < 1e-9
    assert abs(s["recall"] - 2 / 3) < 1e-9


def test_a_detection_too_late_does_not_match():
    tr = [truth(0, "b", False), truth(100, "b", True)]
    s = score.occupancy([occ_event(100 + score.MATCH_AFTER_S + 1, "b", "occupied")], tr, ["b"])
    assert (s["tp"], s["fp"], s["fn"]) == (0, 1, 1)


def water_msg(t_s, level, alert="normal"):
    return (int(t_s * 1000), "water", {"level_mm": level, "alert": alert})


def alert_msg(t_s, new, was):
    return (int(t_s * 1000), "event", {"kind": "alert", "sensor": "w", "alert": new, "was": was})


CFG = {"id": "w", "type": "water", "thresholds_mm": [50, 150, 300], "hysteresis_mm": 20}


def test_level_error_and_a_crossing_alerted_one_interval_late():
    tr = [{"t": 0, "truth": "w", "level_mm": 0}, {"t": 100000, "truth": "w", "level_mm": 100}]
    msgs = [water_msg(t, t - 3) for t in range(10, 100, 10)]
    msgs.append(alert_msg(60, "watch", "normal"))
    s = score.water(msgs, tr, CFG)
    assert s["mae_mm"] == 3.0
    (c,) = s["crossings"]
    assert c["alert"] == "watch" and c["true_t_s"] == 50.0
    assert c["delay_s"] == 10.0 and c["interval_s"] == 10
    assert c["within_2_intervals"]
    assert s["false_alerts"] == []


def test_a_level_flagged_above_max_is_a_lower_bound():
    tr = [{"t": 0, "truth": "w", "level_mm": 700}, {"t": 40000, "truth": "w", "level_mm": 1100}]
    msgs = [water_msg(10, 800), water_msg(30, 800)]
    for m in msgs:
        m[2]["fault"] = "above_max"
    s = score.water(msgs, tr, CFG)
    # truth 800 at 10 s (error 0) and 1000 at 30 s: deeper than the bound, not an error
    assert s["mae_mm"] == 0.0 and s["above_max_readings"] == 2
    msgs = [water_msg(10, 800), water_msg(30, 800)]
    msgs[0][2]["fault"] = "above_max"
    tr[1]["level_mm"] = 500  # falling: the truth is 625 at 10 s, 575 at 30 s
    s = score.water(msgs, tr, CFG)
    assert s["mae_mm"] == round((175 + 225) / 2, 2) and s["above_max_readings"] == 1


def test_an_alert_without_water_is_false_and_a_silent_crossing_missed():
    tr = [{"t": 0, "truth": "w", "level_mm": 0}, {"t": 3600000, "truth": "w", "level_mm": 0},
          {"t": 3700000, "truth": "w", "level_mm": 200}]
    msgs = [water_msg(t, 0) for t in range(0, 3700, 60)] + [alert_msg(600, "watch", "normal")]
    s = score.water(msgs, tr, CFG)
    assert [f["alert"] for f in s["false_alerts"]] == ["watch"]
    assert s["missed"] == 1  # warning never alerted


def test_a_crossing_is_counted_again_only_after_the_level_fell_below_the_hysteresis():
    pts = [(0, 0), (10, 60), (20, 45), (30, 60), (40, 10), (50, 60)]
    t = score._Truth(pts)
    assert t.crossings(50, 20) == [pts[0][0] + 10 * 50 / 60, 40 + 10 * 40 / 50]


# ------------------------------------------------------------------ any length, frozen, early, aggregate

DAY_MS = 86_400_000
START = 1_780_000_000
HEADER = {"start": START, "sensors": [dict(CFG, id="street")]}


def ramp_truth(days):
    """The true level rising 10 mm a day, then constant."""
    return [{"t": d * DAY_MS, "truth": "street", "level_mm": 10.0 * d} for d in range(days + 1)]


def hourly_levels(days, off_mm=2, with_ts=True):
    """What a node publishes every hour: the level `off_mm` too high, its
    tick wrapped at 2**30 ms, and `ts` (UTC epoch seconds) in the payload."""
    msgs = []
    for h in range(days * 24):
        t = h * 3_600_000
        p = {"sensor": "street", "level_mm": 10.0 * t / DAY_MS + off_mm, "alert": "normal"}
        if with_ts:
            p["ts"] = START + t // 1000
        msgs.append((t & ((1 << 30) - 1), "water", p))
    return msgs


def test_unwrap_lifts_each_tick_to_its_payload_time():
    msgs = hourly_levels(30)
    got = [t for t, _, _ in score.unwrap(HEADER, msgs)]
    assert got == [h * 3_600_000 for h in range(30 * 24)]
    # without ts, each tick is placed after the one before it
    got = [t for t, _, _ in score.unwrap(HEADER, hourly_levels(30, with_ts=False))]
    assert got == [h * 3_600_000 for h in range(30 * 24)]


def test_a_recording_longer_than_12_4_days_is_scored_on_unwrapped_times():
    truth = ramp_truth(30)
    msgs = hourly_levels(30)
    w = score.score(HEADER, msgs, truth)["water"]["street"]
    assert w["mae_mm"] == 2.0
    # the wrapped ticks compared with the truth as they are: the old, wrong figure
    assert score.water(msgs, truth, HEADER["sensors"][0])["mae_mm"] > 30


def flood_truth(dry_until_s):
    """Dry, up to 400 mm at 1 h, dry again at 2 h, dry until `dry_until_s`."""
    return [{"t": t_s * 1000, "truth": "street", "level_mm": v}
            for t_s, v in ((0, 0), (1800, 0), (3600, 400), (7200, 0), (dry_until_s, 0))]


def test_a_level_still_high_an_hour_after_the_road_is_dry_is_frozen():
    truth = flood_truth(5 * 3600)
    stuck = [water_msg(t, 400 if t > 3600 else 0) for t in range(0, 5 * 3600, 60)]
    w = score.water(stuck, truth, dict(CFG, id="street"))
    (f,) = w["frozen"]
    assert f["level_mm"] == 400 and f["true_mm"] == 0.0
    assert abs(f["dry_t_s"] - (7200 - 3600 * score.DRY_MM / 400)) < 0.1
    following = score._Truth([(r["t"] / 1000, r["level_mm"]) for r in truth])
    good = [water_msg(t, round(following.at(t))) for t in range(0, 5 * 3600, 60)]
    assert score.water(good, truth, dict(CFG, id="street"))["frozen"] == []
    # a recording that ends before the road has been dry an hour is not judged
    assert score.water(stuck, flood_truth(7200 + 1800), dict(CFG, id="street"))["frozen"] == []


def test_an_alert_before_the_water_came_is_early_and_one_with_no_water_false():
    truth = [{"t": 0, "truth": "w", "level_mm": 0}, {"t": 1000_000, "truth": "w", "level_mm": 0},
             {"t": 1300_000, "truth": "w", "level_mm": 100}, {"t": 5000_000, "truth": "w", "level_mm": 100},
             {"t": 5100_000, "truth": "w", "level_mm": 0}, {"t": 9000_000, "truth": "w", "level_mm": 0}]
    msgs = [water_msg(t, 0) for t in range(0, 9000, 10)]
    msgs += [alert_msg(1000, "watch", "normal"), alert_msg(5200, "normal", "watch"),
             alert_msg(8000, "watch", "normal")]
    msgs.sort(key=lambda m: m[0])
    w = score.water(msgs, truth, CFG)
    assert [a["t_s"] for a in w["early_alerts"]] == [1000.0]
    assert [a["t_s"] for a in w["false_alerts"]] == [8000.0]
    assert w["missed"] == 0 and w["late"] == 0


def test_late_counts_alerted_crossings_only():
    tr = [{"t": 0, "truth": "w", "level_mm": 0}, {"t": 100000, "truth": "w", "level_mm": 100}]
    msgs = [water_msg(t, 0) for t in range(10, 100, 10)] + [alert_msg(95, "watch", "normal")]
    w = score.water(sorted(msgs, key=lambda m: m[0]), tr, CFG)
    assert (w["missed"], w["late"]) == (0, 1)
    w = score.water([water_msg(t, 0) for t in range(10, 100, 10)], tr, CFG)
    assert (w["missed"], w["late"]) == (1, 0)


def test_percentile_interpolates_between_order_statistics():
    assert score.percentile([], 50) is None
    assert score.percentile([3.0], 90) == 3.0
    assert score.percentile([4, 1, 3, 2], 50) == 2.5
    assert score.percentile(list(range(11)), 90) == 9.0
    assert score.percentile([1, 2], 100) == 2


def test_gap_events_are_listed_with_their_unwrapped_times():
    msgs = hourly_levels(20)
    t = 15 * DAY_MS
    msgs.append((t & ((1 << 30) - 1), "event", {"kind": "gap", "sensor": "street", "gap_s": 864000,
                                                   "ts": START + t // 1000}))
    msgs.sort(key=lambda m: score.unwrap(HEADER, [m])[0][0])
    assert score.score(HEADER, msgs, ramp_truth(20))["gaps"] == [
        {"t_s": 15 * 86400.0, "sensor": "street", "gap_s": 864000}]


def test_aggregate_sums_counts_and_takes_percentiles_over_events():
    def w(mae, crossings, late, frozen):
        return {"mae_mm": mae, "readings": 10, "crossings": [{}] * crossings, "missed": 0, "late": late,
                "early_alerts": [], "false_alerts": [], "frozen": [{}] * frozen}

    occ = score.occupancy([occ_event(102, "b", "occupied")], [truth(0, "b", False), truth(100, "b", True)],
                          ["b"])
    runs = [("a", {"water": {"s": w(1.0, 2, 0, 0)}, "occupancy": occ}),
            ("b", {"water": {"s": w(3.0, 2, 1, 1)}, "gaps": [{"t_s": 5.0, "sensor": "s", "gap_s": None}]}),
            ("c", {"water": {"s": w(12.0, 0, 0, 0)}})]
    agg = score.aggregate(runs)
    a = agg["water"]
    assert (a["events"], a["crossings"], a["late"], a["frozen"]) == (3, 4, 1, 1)
    assert a["late_pct"] == 25.0 and a["frozen_events"] == ["b"]
    assert (a["mae_max_mm"], a["mae_worst"], a["mae_over_target"]) == (12.0, "c", ["c"])
    assert a["mae_p50_mm"] == 3.0
    assert agg["occupancy"]["tp"] == 1 and agg["occupancy"]["latency_p50_s"] == 2.0
    assert agg["gaps"] == [{"t_s": 5.0, "sensor": "s", "gap_s": None, "recording": "b"}]
