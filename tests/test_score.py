"""The scorer itself, on hand-made replays whose right answer is known."""

from host_tools import score


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
