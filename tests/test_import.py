"""`citynode import`: real FloodNet events and a logger's CSV into recordings
that the recording reader reads and the core replays to the right level."""

import csv
import json
import random
from pathlib import Path

import pytest

from citynode.sense.ranging import echo_to_mm, half_speed_q16, speed_mm_s
from host_tools import cli
from host_tools.desk import importers, replay, score
from tests.conftest import ROOT

EVENTS = ROOT / "tests" / "data" / "floodnet-events.csv"
MOUNT = 3000


def rows():
    with open(EVENTS, newline="") as f:
        return list(csv.DictReader(f))


def import_events(tmp_path, *extra, src=EVENTS):
    out = tmp_path / "out"
    code = cli.main(["import", "floodnet", str(src), "-o", str(out), "--workers", "1", *extra])
    return code, sorted(out.glob("*.jsonl")) if out.exists() else []


def samples(path, sid):
    return [r for r in _records(path) if r.get("s") == sid]


def _records(path):
    with open(path) as f:
        return [json.loads(line) for line in f][1:]


@pytest.fixture(scope="module")
def every10(tmp_path_factory):
    code, paths = import_events(tmp_path_factory.mktemp("every10"), "--every", "10")
    assert code == 0
    return paths


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    code, paths = import_events(tmp_path_factory.mktemp("own"))
    assert code == 0
    return paths


def test_the_echo_gives_the_core_back_exactly_the_distance():
    rng = random.Random(5)
    for _ in range(300):
        air = importers.core_air(rng.uniform(-20, 40), rng.uniform(0, 100), rng.uniform(95000, 104000))
        q16 = half_speed_q16(speed_mm_s(*air))
        d = rng.randint(250, 6000)
        assert importers.air_q16(air) == q16
        assert echo_to_mm(importers.echo_us(d, q16), q16) == d


def test_each_event_becomes_a_recording_the_reader_reads(every10):
    assert len(every10) == len(rows()) == 3
    for path, row in zip(every10, sorted(rows(), key=lambda r: importers.FloodnetEvent(
            EVENTS, 0, r, MOUNT).name()), strict=True):
        header, truth = replay.read_truth(path)
        assert header["node"] == row["sensor_id"]
        water = next(s for s in header["sensors"] if s["type"] == "water")
        assert water["driver"] == "jsn-sr04t" and water["pings"] == 7 and water["mount_mm"] == MOUNT
        assert {s["type"] for s in header["sensors"]} == {"water", "env"}
        assert all(len(s["echo_us"]) == 7 for s in samples(path, "street"))


def test_truth_is_the_profile_in_millimetres_between_dry_roads(own):
    by_name = {importers.FloodnetEvent(EVENTS, 0, r, MOUNT).name(): r for r in rows()}
    for path in own:
        row = by_name[path.stem]
        header, truth = replay.read_truth(path)
        depth = json.loads(row["flood_profile_depth_inches"])
        secs = json.loads(row["flood_profile_time_secs"])
        got = [(r["t"], r["level_mm"]) for r in truth]
        assert got[0] == (0, 0.0) and got[-1][1] == 0.0
        wet = got[1:-1]
        if depth[-1] > 0:
            assert wet[-1][1] == 0.0
            wet = wet[:-1]
        assert [v for _, v in wet] == [round(d * 25.4, 3) for d in depth]
        t0 = wet[0][0]
        assert t0 == importers.PRE_S * 1000  # the FloodNet starts are whole seconds
        assert [t - t0 for t, _ in wet] == [s * 1000 for s in secs]
        assert got[-1][0] - wet[-1][0] >= importers.POST_S * 1000
        assert header["start"] + importers.PRE_S == int(importers.parse_time(row["flood_start_time"],
                                                                           importers.NYC))


def test_every_resamples_the_profile_linearly(every10, own):
    for path in every10:
        header, truth = replay.read_truth(path)
        prof = score._Truth([(r["t"], r["level_mm"]) for r in truth])
        street = samples(path, "street")
        env = {r["t"]: r for r in samples(path, "env")}
        assert [r["t"] for r in street] == list(range(0, truth[-1]["t"] + 1, 10000))
        for r in street:
            e = env[r["t"]]
            q16 = half_speed_q16(speed_mm_s(*importers.core_air(e["temp_c"], e["humidity_pct"],
                                                                e["pressure_pa"])))
            dists = sorted(echo_to_mm(x, q16) for x in r["echo_us"] if x)
            true_d = MOUNT - prof.at(r["t"])
            # the median ping: within 4 σ of the ping noise (1 mm per metre) and the ±5 mm disturbances
            assert abs(dists[len(dists) // 2] - true_d) <= 4 * true_d / 1000 + 5 + 1, (path, r)
    for path in own:  # the profile's own times are kept, dry road every 60 s around them
        header, truth = replay.read_truth(path)
        times = {r["t"] for r in samples(path, "street")}
        assert {r["t"] for r in truth[1:-1]} - times <= {truth[-2]["t"]}


def test_replayed_levels_follow_the_truth(every10):
    for path in every10[:2]:  # the two shallow floods: the core's level within the project's target
        w = replay.run(path).scores["water"]["street"]
        assert w["mae_mm"] <= 10.0, w
        assert w["readings"] > 100


def test_the_same_seed_gives_the_same_files_and_another_seed_other_noise(tmp_path):
    _, a = import_events(tmp_path / "a", "--every", "60")
    _, b = import_events(tmp_path / "b", "--every", "60")
    _, c = import_events(tmp_path / "c", "--every", "60", "--seed", "7")
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert a[0].read_bytes() != c[0].read_bytes()


HEADER = list(rows()[0].keys())


def bad_file(tmp_path, changes, drop_column=None):
    """The test events with fields of some rows changed: {row index: {column: value}}."""
    src = tmp_path / "events.csv"
    cols = [c for c in HEADER if c != drop_column]
    with open(src, "w", newline="") as f:
        w = csv.DictWriter(f, cols, extrasaction="ignore")
        w.writeheader()
        for i, r in enumerate(rows()):
            w.writerow(dict(r, **changes.get(i, {})))
    return src


@pytest.mark.parametrize("change,line,words", [
    ({0: {"flood_profile_depth_inches": "[0.1, 0.2"}}, 2, "flood_profile_depth_inches: not a JSON list"),
    ({1: {"flood_profile_time_secs": "[0, 60]"}}, 3, "flood_profile_time_secs: 2 times for 194 depths"),
    ({2: {"flood_profile_depth_inches": json.dumps([0.1] * 300 + [-1.0] + [0.1] * 332)}}, 4,
     "flood_profile_depth_inches: item 300 is negative"),
    ({0: {"flood_profile_depth_inches": json.dumps([0.1] * 98 + ["deep"])}}, 2,
     "flood_profile_depth_inches: item 98 is not a number"),
    ({1: {"flood_start_time": "yesterday at noon"}}, 3, "flood_start_time: not an ISO 8601 time"),
    ({1: {"flood_start_time": ""}}, 3, "flood_start_time: missing value"),
    ({2: {"flood_profile_time_secs": json.dumps([0, 60] + [30] * 631)}}, 4,
     "flood_profile_time_secs: item 2 goes back in time"),
])
def test_a_bad_row_is_one_line_with_its_line_number_and_exit_2(tmp_path, change, line, words):
    src = bad_file(tmp_path, change)
    p = cli_run("import", "floodnet", str(src), "-o", str(tmp_path / "out"))
    assert p.returncode == 2
    (err,) = p.stderr.splitlines()
    assert "%s:%d: %s" % (src, line, words) in err, err
    assert "Traceback" not in p.stderr
    assert not (tmp_path / "out").exists()  # nothing written


def cli_run(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "host_tools.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)


def test_a_missing_column_and_several_bad_rows_each_get_their_line(tmp_path, capsys):
    src = bad_file(tmp_path, {}, drop_column="flood_profile_time_secs")
    code, _ = import_events(tmp_path, src=src)
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        "citynode import: error: %s:1: flood_profile_time_secs: missing column" % src]
    src = bad_file(tmp_path, {0: {"flood_profile_depth_inches": "x"}, 2: {"flood_start_time": "2024-13-01"}})
    code, _ = import_events(tmp_path, src=src)
    assert code == 2
    err = capsys.readouterr().err.splitlines()
    assert [e.split(": ")[2] for e in err] == ["%s:2" % src, "%s:4" % src]


def test_water_reaching_the_sensor_is_refused_not_clipped(tmp_path, capsys):
    code, _ = import_events(tmp_path, "--mount-mm", "1200")
    assert code == 2
    (err,) = capsys.readouterr().err.splitlines()
    assert ":4: flood_profile_depth_inches: 1038 mm of water reaches the sensor's blind zone" in err


def test_help_has_examples():
    out = cli_run("import", "floodnet", "--help").stdout
    for w in ("--mount-mm", "--every", "--seed", "examples:", "docs/importing.md"):
        assert w in out
    out = cli_run("import", "csv", "--help").stdout
    for w in ("--map", "--map-file", "distance_cm", "temp_c", "truth_mm"):
        assert w in out


# ------------------------------------------------------------------ a logger's CSV

def write_log(path, lines):
    Path(path).write_text("\n".join(lines) + "\n")
    return path


def logger_lines(n=120, every_s=60):
    """A logger 2000 mm above a dry road that floods to 400 mm and drains,
    epoch-second times."""
    out = ["when,dist,air,rh,hpa,true_level"]
    for i in range(n):
        level = max(0, 400 - abs(i - 60) * 10)
        out.append("%d,%.1f,21.5,60,1012.5,%d" % (1748779200 + i * every_s, (2000 - level) / 10, level))
    return out


def test_a_logger_csv_becomes_a_recording_that_replays_to_its_levels(tmp_path):
    src = write_log(tmp_path / "log.csv", logger_lines())
    out = tmp_path / "log.jsonl"
    code = cli.main(["import", "csv", str(src), "-o", str(out), "--mount-mm", "2000", "--map",
                     "time=when,distance_cm=dist,temp_c=air,humidity_pct=rh,pressure_hpa=hpa,truth_mm=true_level"])
    assert code == 0
    header, truth = replay.read_truth(out)
    assert header["start"] == 1748779200
    assert [r["level_mm"] for r in truth] == [max(0, 400 - abs(i - 60) * 10) for i in range(120)]
    env = samples(out, "env")
    assert env[0] == {"t": 0, "s": "env", "temp_c": 21.5, "humidity_pct": 60.0, "pressure_pa": 101250.0}
    assert samples(out, "street")[60]["distance_mm"] == [1600]
    r = replay.run(out)
    levels = [p["level_mm"] for t, topic, p in r.messages if topic == "water"]
    assert max(levels) == 400  # the exact distance comes back through the core
    assert r.scores["water"]["street"]["mae_mm"] <= 10.0


def test_iso_times_a_level_column_and_a_toml_map(tmp_path):
    src = write_log(tmp_path / "log.csv", ["time,level", "2025-06-01T12:00:00+02:00,0",
                                           "2025-06-01T12:00:10+02:00,", "2025-06-01T12:00:20+02:00,12.5"])
    m = tmp_path / "map.toml"
    m.write_text('time = "time"\nlevel_mm = "level"\n')
    out = tmp_path / "log.jsonl"
    assert cli.main(["import", "csv", str(src), "-o", str(out), "--map-file", str(m)]) == 0
    header, _ = replay.read_truth(out)
    assert header["start"] == 1748772000  # 10:00 UTC
    street = samples(out, "street")
    # the logger measured distances: the core takes them as they are; an empty cell is no reading;
    # 3000 − 12.5 = 2987.5 mm, rounded half to even
    assert [(r["t"], r["distance_mm"]) for r in street] == [(0, [3000]), (10000, [0]), (20000, [2988])]
    assert not samples(out, "env")


@pytest.mark.parametrize("lines,line,words", [
    (["when,dist", "1748779200,200", "1748779260,abc"], 3, "dist (distance_cm): not a number: 'abc'"),
    (["when,dist", "1748779200,200", "soon,200"], 3, "when (time): not an ISO 8601 time or epoch seconds"),
    (["when,dist", "1748779200,200", "1748779100,200"], 3, "when (time): goes back in time"),
    (["when,dist", "1748779200,-5"], 2, "dist (distance_cm): negative"),
    (["when,dist", "1748779200,200,7"], 2, "3 values for 2 columns"),
    (["when,distance", "1748779200,200"], 1, "dist: missing column"),
])
def test_a_bad_logger_row_is_named_by_line(tmp_path, capsys, lines, line, words):
    src = write_log(tmp_path / "log.csv", lines)
    code = cli.main(["import", "csv", str(src), "-o", str(tmp_path / "x.jsonl"),
                     "--map", "time=when,distance_cm=dist"])
    assert code == 2
    (err,) = capsys.readouterr().err.splitlines()
    assert "%s:%d: %s" % (src, line, words) in err, err


@pytest.mark.parametrize("mapping,words", [
    ("distance_cm=dist", "'time' is required"),
    ("time=when", "give exactly one of"),
    ("time=when,dist=dist", "unknown key 'dist'"),
    ("time=when,distance_cm", "is not key=column"),
])
def test_a_bad_map_is_one_line(tmp_path, capsys, mapping, words):
    src = write_log(tmp_path / "log.csv", ["when,dist", "1748779200,200"])
    assert cli.main(["import", "csv", str(src), "-o", str(tmp_path / "x.jsonl"), "--map", mapping]) == 2
    (err,) = capsys.readouterr().err.splitlines()
    assert words in err


def test_a_failing_air_sensor_in_a_log_does_not_move_the_logged_distances(tmp_path):
    lines = ["when,dist,air"] + ["%d,%d,%s" % (1748779200 + 60 * i, 1900, "-146" if i % 2 else "18.5")
                                 for i in range(30)]
    src = write_log(tmp_path / "log.csv", lines)
    out = tmp_path / "log.jsonl"
    assert cli.main(["import", "csv", str(src), "-o", str(out), "--mount-mm", "2000",
                     "--map", "time=when,distance_mm=dist,temp_c=air"]) == 0
    assert [r["temp_c"] for r in samples(out, "env")[:2]] == [18.5, -146.0]  # the core judges the air
    levels = {p["level_mm"] for t, topic, p in replay.run(out).messages if topic == "water"}
    assert levels == {100}
