"""The synthetic recordings: reproducible, valid, and physically sane."""

import gzip
import math

import pytest

from citynode.board.recording import Reader
from host_tools import cli
from host_tools.desk import physics, synth
from tests.conftest import BUNDLED, bundled


def records(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f, Reader(str(path), stream=f) as r:
        return r.header, list(r)


@pytest.mark.parametrize("name", BUNDLED)
def test_the_bundled_recording_is_what_its_seed_generates(tmp_path, name):
    out = tmp_path / (name + ".jsonl.gz")
    synth.synth(name, out)
    with gzip.open(out) as a, gzip.open(bundled(name)) as b:
        assert a.read() == b.read()


def test_another_seed_gives_another_day(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    synth.flood_event(seed=2).write(a)
    synth.flood_event(seed=5).write(b)
    assert a.read_bytes() != b.read_bytes()


def test_speed_of_sound_model():
    assert math.isclose(physics.speed_of_sound(0.0), 331.3)
    assert math.isclose(physics.speed_of_sound(20.0), 343.21, abs_tol=0.01)
    gain = physics.speed_of_sound(30.0, 80.0) / physics.speed_of_sound(30.0) - 1
    assert 0.004 < gain < 0.006  # Cramer 1993: about +0.5 % at 30 °C, 80 % RH


def test_flood_water_never_rises_faster_than_water_can(tmp_path):
    header, recs = records(bundled("flood-event"))
    pts = [(r["t"] / 1000, r["level_mm"]) for r in recs if r.get("truth") == "street"]
    rates = [(v1 - v0) / (t1 - t0) for (t0, v0), (t1, v1) in zip(pts, pts[1:], strict=False) if t1 > t0]
    assert max(rates) < 4.23  # FloodNet's bound, mm/s
    assert max(v for _, v in pts) > 300  # past danger


def test_flood_day_spans_the_hot_day_temperatures():
    header, recs = records(bundled("flood-event"))
    temps = [r["temp_c"] for r in recs if r.get("s") == "env"]
    assert min(temps) < 11 and max(temps) > 39


def test_dry_week_stays_under_the_watch_level():
    header, recs = records(bundled("dry-week"))
    levels = [r["level_mm"] for r in recs if r.get("truth") == "street"]
    assert max(levels) < 50 - 20
    assert max(levels) > 5  # but it does rain


def test_ultrasonic_noise_is_about_a_centimetre():
    header, recs = records(bundled("dry-week"))
    spreads = []
    for r in recs[:3000]:
        e = [v for v in r.get("echo_us", []) if v]
        if len(e) == 7:
            spreads.append(max(e) - min(e))
    spreads.sort()
    median_mm = spreads[len(spreads) // 2] * 0.1715
    assert 8 < median_mm < 40  # the spread of 7 pings with σ ≈ 5 mm (±1 cm)


def test_parking_day_has_every_kind_of_clutter(tmp_path):
    header, recs = records(bundled("parking-day"))
    notes = {r.get("note") for r in recs if "truth" in r}
    assert {"car", "van"} <= notes
    assert any(r.get("fault") == "no_answer" for r in recs[:300000] if "s" in r)


def test_cli_synth_writes_a_recording(tmp_path, capsys):
    out = tmp_path / "f.jsonl"
    assert cli.main(["synth", "flood-event", "-o", str(out), "--seed", "9"]) == 0
    assert "wrote" in capsys.readouterr().out
    header, recs = records(out)
    assert header["generator"]["seed"] == 9


def test_unknown_scenario_is_refused():
    with pytest.raises(ValueError, match="unknown scenario"):
        synth.synth("earthquake", "/dev/null")
