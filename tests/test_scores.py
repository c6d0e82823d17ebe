"""The targets of the sensing core, measured on the bundled recordings."""

import gzip
import json

import pytest

from host_tools.desk import replay
from tests.conftest import bundled


def test_parking_day_occupancy_f1_and_latency(replays):
    occ = replays("parking-day").scores["occupancy"]
    assert occ["transitions"] >= 40
    assert occ["f1"] >= 0.99, occ
    assert occ["latency_median_s"] <= 5.0, occ
    for bay, b in occ["bays"].items():
        assert b["transitions"] >= 6, bay


def test_both_sensor_kinds_are_scored(replays):
    r = replays("parking-day")
    kinds = {s["type"] for s in r.header["sensors"]}
    assert {"bay_ultrasonic", "bay_magnetic"} <= kinds
    assert set(r.scores["occupancy"]["bays"]) == {"bay-01", "bay-02", "bay-03", "bay-04"}


def test_parking_day_raises_and_clears_the_sensor_outage(replays):
    faults = [(p["sensor"], p["fault"], p["active"]) for t, p in replays("parking-day").events
              if p["kind"] == "fault"]
    assert faults == [("bay-04", "no_answer", True), ("bay-04", "no_answer", False)]


def test_flood_event_level_error_and_alert_onsets(replays):
    w = replays("flood-event").scores["water"]["street"]
    assert w["mae_mm"] <= 10.0, w
    assert w["mae_wet_mm"] <= 10.0, w
    assert [c["alert"] for c in w["crossings"]] == ["watch", "warning", "danger"]
    for c in w["crossings"]:
        assert c["within_2_intervals"], c
    assert w["false_alerts"] == []


def test_dry_week_has_zero_false_flood_alerts(replays):
    r = replays("dry-week")
    assert [p for t, p in r.events if p["kind"] == "alert"] == []
    w = r.scores["water"]["street"]
    assert w["false_alerts"] == [] and w["crossings"] == []
    assert w["mae_mm"] <= 10.0


def test_dry_week_reports_obstructions_and_the_outage_as_faults(replays):
    faults = {(p["fault"], p["active"]) for t, p in replays("dry-week").events if p["kind"] == "fault"}
    assert ("view_obstructed", True) in faults
    assert ("no_echo", True) in faults


def test_adaptive_sampling_reads_less_when_dry(replays):
    dry = replays("dry-week").stats
    flood = replays("flood-event").stats
    # the dry week is recorded every 30 s; a dry node asks every 60 s
    assert dry["taken"] < 0.75 * dry["samples"]
    assert flood["taken"] < 0.6 * flood["samples"]


def test_without_temperature_compensation_the_hot_day_fails(tmp_path):
    """The same flood recording with its BME280 lines removed: the core falls
    back to 20 °C and the level error grows past the target — the scores
    above depend on the compensation, not on luck."""
    src = bundled("flood-event")
    dst = tmp_path / "no-env.jsonl"
    with gzip.open(src, "rt") as f, open(dst, "w") as out:
        for line in f:
            if '"s":"env"' not in line:
                out.write(line)
    w = replay.run(dst).scores["water"]["street"]
    assert w["mae_mm"] > 10.0, w


@pytest.mark.parametrize("name", ["flood-event", "dry-week"])
def test_scores_are_json_ready(replays, name):
    json.dumps(replays(name).scores)
