"""`citynode replay DIR` (or several files): one table for many recordings,
equal to the single replays added up."""

import json

import pytest

from host_tools import cli
from host_tools.desk import importers, replay, report, score
from tests.conftest import ROOT, bundled

EVENTS = ROOT / "tests" / "data" / "floodnet-events.csv"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The three test FloodNet events at 30 s, and the bundled flood event in a subfolder."""
    out = tmp_path_factory.mktemp("many")
    importers.import_floodnet(EVENTS, out, every_s=30)
    (out / "bundled").mkdir()
    (out / "bundled" / "flood-event.jsonl.gz").write_bytes(bundled("flood-event").read_bytes())
    return out


def test_a_folder_is_one_table_equal_to_the_sum_of_single_replays(folder, capsys):
    assert cli.main(["replay", str(folder), "--json", "--workers", "2"]) == 0
    doc = json.loads(capsys.readouterr().out)
    paths = replay.recordings_in([folder])
    assert len(paths) == 4 and [r["recording"] for r in doc["runs"]] == [str(p) for p in paths]
    singles = [replay.run(p).scores["water"]["street"] for p in paths]
    agg = doc["aggregate"]["water"]
    assert agg["events"] == 4
    for key in ("readings", "missed", "late"):
        assert agg[key] == sum(w[key] for w in singles), key
    assert agg["crossings"] == sum(len(w["crossings"]) for w in singles)
    assert agg["false_alerts"] == sum(len(w["false_alerts"]) for w in singles)
    assert agg["frozen"] == sum(len(w["frozen"]) for w in singles)
    assert agg["mae_max_mm"] == max(w["mae_mm"] for w in singles)
    assert agg["mae_p50_mm"] == score.percentile([w["mae_mm"] for w in singles], 50)
    assert [r["scores"]["water"]["street"] for r in doc["runs"]] == singles


def test_the_text_table_and_several_files(folder, capsys):
    paths = [str(p) for p in replay.recordings_in([folder])[:2]]
    assert cli.main(["replay", *paths, "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 recordings replayed, ")
    assert "water (2 events" in out and "MAE per event p50" in out
    assert "crossings " in out and "frozen levels " in out
    assert "gaps the nodes could not bridge: 0" in out


def test_parking_bays_aggregate_like_their_single_replay(replays, tmp_path, capsys):
    (tmp_path / "p.jsonl.gz").write_bytes(bundled("parking-day").read_bytes())
    assert cli.main(["replay", str(tmp_path), "--json"]) == 0
    occ = json.loads(capsys.readouterr().out)["aggregate"]["occupancy"]
    single = replays("parking-day").scores["occupancy"]
    for key in ("tp", "fp", "fn", "f1"):
        assert occ[key] == single[key], key
    for key in ("latency_p90_s", "latency_max_s"):  # from the per-transition latencies, kept to the ms
        assert occ[key] == pytest.approx(single[key], abs=1e-3), key


def test_a_bad_recording_among_many_is_one_line_and_exit_2(folder, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"format": "citynode-recording"}\n')
    good = replay.recordings_in([folder])[0]
    assert cli.main(["replay", str(good), str(bad), "--workers", "1"]) == 2
    out = capsys.readouterr().out
    assert "1 recordings replayed" in out
    assert "error: %s:1: header: missing field 'version'" % bad in out


def test_options_for_one_recording_are_refused_with_many(folder, capsys):
    assert cli.main(["replay", str(folder), "--report", "x.html"]) == 2
    assert capsys.readouterr().err.strip() == (
        "citynode replay: error: --report is for one recording; with several, use --json")
    assert cli.main(["replay", str(folder / "nothing-here")]) == 2
    assert "no such recording or folder" in capsys.readouterr().err


def test_gap_events_show_in_the_replay_output_and_the_report(replays):
    """The core says when a silence could not be bridged; a fabricated gap event
    (as the core emits it) reaches the printed scores and the report."""
    flood = replays("flood-event")
    result = replay.Result(flood.path, flood.runtime, flood.header,
                           flood.messages + [(80_000_000, "event", {"kind": "gap", "sensor": "street",
                                                                    "gap_s": 7200, "ts": flood.header["start"]
                                                                    + 80_000})],
                           flood.truth, flood.stats)
    assert result.scores["gaps"] == [{"t_s": 80000.0, "sensor": "street", "gap_s": 7200}]
    lines = cli.format_scores(result.scores)
    assert "gap at 80000 s: street gap: 7200 s without readings, too long to bridge; detectors restarted" \
        in lines
    page = report.render(result)
    assert "Silences the node could not bridge" in page and "no readings for 7200 s" in page


def test_score_real_prints_the_issue_figures(tmp_path, capsys):
    from host_tools.bench import core as bench
    assert bench.score_real(EVENTS, tmp_path) == 0
    out = capsys.readouterr().out
    for words in ("resampled every 10 s: 3 events", "missed crossings", "crossings later than 2 intervals",
                  "worst per-event MAE", "frozen levels", "at the profiles' own times: 3 events",
                  "events with MAE > 10 mm", "score-real took"):
        assert words in out, words
    assert len(list((tmp_path / "every10").glob("*.jsonl"))) == 3


def test_score_real_without_the_data_says_so_in_one_line(tmp_path, capsys):
    from host_tools.bench import core as bench
    assert bench.score_real(tmp_path / "floodnet-dev.csv", tmp_path) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert "floodnet-dev.csv not found" in line and "skipped" in line
