"""Tests for host_tools.desk.report: the HTML page of one replay."""

import copy
import math

import pytest

from host_tools.desk import replay, report, synth


@pytest.fixture(scope="module")
def flood(tmp_path_factory):
    """A replay of the 24 h flood-event scenario."""
    path = tmp_path_factory.mktemp("flood") / "flood.jsonl"
    synth.synth("flood-event", path)
    return replay.run(path)


@pytest.fixture(scope="module")
def parking(tmp_path_factory):
    """A replay of the first 8 h of a parking day (cars arrive from 6 h on)."""
    path = tmp_path_factory.mktemp("parking") / "parking.jsonl"
    synth.parking_day(seed=1, hours=8).write(path)
    return replay.run(path)


def events_table(page):
    """The event table's HTML."""
    start = page.index('<table id="events">')
    return page[start:page.index("</table>", start)]


def test_flood_page_has_plots_node_and_threshold_labels(flood):
    page = report.render(flood)
    assert page.startswith("<!DOCTYPE html>")
    assert page.count('<svg class="plot"') == 2  # water level and temperature
    assert "Water level at street" in page
    assert flood.header["node"] in page
    for label in ("watch 50 mm", "warning 150 mm", "danger 300 mm"):
        assert label in page


def test_flood_page_lists_every_event_with_both_times(flood):
    table = events_table(report.render(flood))
    assert table.count("<tr>") == len(flood.events) + 1
    t, first_alert = next((t, p) for t, p in flood.events if p["kind"] == "alert")
    assert first_alert["alert"] == "watch"
    assert "normal → watch" in table
    assert report.clock(t) in table and report.utc_time(flood.header, t) in table


def test_scores_are_marked_against_targets(flood):
    page = report.render(flood)
    street = flood.scores["water"]["street"]
    assert "level error (MAE)" in page and "(%.2f cm)" % (street["mae_mm"] / 10) in page
    # MAE, false alerts and frozen levels, and each crossing
    assert page.count("✔ pass") == 3 + len(street["crossings"])
    assert "✘ fail" not in page


def test_a_missed_target_is_marked_fail(flood):
    result = copy.copy(flood)
    result.scores = copy.deepcopy(flood.scores)
    result.scores["water"]["street"]["mae_mm"] = 25.0
    result.scores["water"]["street"]["false_alerts"] = [{"t_s": 3600.0, "alert": "watch"}]
    page = report.render(result)
    assert page.count("✘ fail") == 2
    assert "2 of" in page and "targets missed" in page
    assert "1, watch at 01:00:00" in page


def test_write_report_is_self_contained_and_small(flood, tmp_path):
    path = report.write_report(flood, tmp_path / "report.html")
    text = path.read_text(encoding="utf-8")
    assert text == report.render(flood)
    assert path.stat().st_size < 300_000
    for external in ("<script", "http://", "https://", "src="):
        assert external not in text


def test_week_long_recording_stays_under_a_megabyte(tmp_path):
    synth.synth("dry-week", tmp_path / "week.jsonl")
    result = replay.run(tmp_path / "week.jsonl")
    assert len(result.messages) > report.MAX_PLOT_POINTS
    assert len(report.render(result).encode()) < 1_000_000


def test_bay_page_has_a_timeline_per_bay(parking):
    page = report.render(parking)
    bays = [s["id"] for s in parking.header["sensors"] if s["type"] in report.BAY_TYPES]
    assert len(bays) == 4
    assert page.count('<svg class="timeline"') == len(bays)
    for bay in bays:
        assert "Occupancy of %s" % bay in page
    assert parking.scores["occupancy"]["transitions"] > 0
    assert 'fill="%s" fill-opacity="0.90"' % report.COLOURS["occupied"] in page
    assert "Occupancy F1" in page and "occupancy" in events_table(page)


def test_text_from_the_recording_is_escaped(flood):
    result = copy.copy(flood)
    result.header = dict(flood.header, node="<script>alert(1)</script>", notes="a & <b>")
    page = report.render(result)
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "a &amp; &lt;b&gt;" in page


def test_event_table_is_capped(flood):
    result = copy.copy(flood)
    extra = [(i * 1000, "event", {"kind": "fault", "sensor": "street", "fault": "no_echo",
                                  "active": i % 2 == 0}) for i in range(report.MAX_EVENT_ROWS + 50)]
    result.messages = flood.messages + extra
    page = report.render(result)
    assert events_table(page).count("<tr>") == report.MAX_EVENT_ROWS + 1
    assert "Showing the first %d of %d events" % (report.MAX_EVENT_ROWS, len(result.events)) in page


def test_downsample_keeps_extremes_in_order_and_bounds_length():
    points = [(i, math.sin(i / 50)) for i in range(10_000)]
    points[4321] = (4321, 9.0)
    points[7000] = (7000, -9.0)
    out = report.downsample(points, 1000)
    assert len(out) <= 1000
    assert (4321, 9.0) in out and (7000, -9.0) in out
    assert [x for x, _ in out] == sorted(x for x, _ in out)
    assert report.downsample(points[:10], 1000) == points[:10]


def test_spans_and_unmatched_transitions():
    states = [(0, False), (1, True), (2, True), (3, False), (4, True)]
    assert report.spans_when(states, 5) == [(1, 3), (4, 5)]
    assert report.merge_spans([(4, 5), (1, 3), (3.1, 3.5)], 0.5) == [(1, 3.5), (4, 5)]
    true = [(1.0, True), (2.0, False)]
    found = [(1.001, True), (3.0, False)]  # hours: found 3.6 s late, then a "free" an hour late
    assert report.unmatched(true, found) == ([2.0], [3.0])


def test_clock_and_utc_time():
    assert report.clock(3_723_000) == "01:02:03"
    assert report.clock(90_000_000) == "25:00:00"
    assert report.utc_time({"start": 1783987200}, 3_723_000) == "2026-07-14T01:02:03Z"


def test_the_page_places_messages_past_the_tick_wrap_where_they_belong(flood):
    """The same day 20 days into a recording: the node's ticks have wrapped
    (at 2**30 ms, 12.4 days), each payload's `ts` says where it belongs."""
    shift_ms = 20 * 86_400_000
    msgs = [((t + shift_ms) & ((1 << 30) - 1), topic, dict(p, ts=p["ts"] + shift_ms // 1000))
            for t, topic, p in flood.messages]
    truth = [dict(r, t=r["t"] + shift_ms) for r in flood.truth]
    late = replay.Result(flood.path, flood.runtime, dict(flood.header, duration_s=None), msgs, truth,
                         flood.stats)
    assert [t for t, _, _ in late.timeline] == [t + shift_ms for t, _, _ in flood.messages]
    w, w0 = late.scores["water"]["street"], flood.scores["water"]["street"]
    assert (w["mae_mm"], w["missed"], w["late"]) == (w0["mae_mm"], w0["missed"], w0["late"])
    t, first_alert = next((t, p) for t, p in flood.events if p["kind"] == "alert")
    assert report.clock(t + shift_ms) in events_table(report.render(late))
    assert report.recording_hours(late) == pytest.approx(20 * 24 + flood.messages[-1][0] / 3.6e6)
