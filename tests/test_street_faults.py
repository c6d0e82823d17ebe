"""Street loggers' faults replayed through the core: a 40-day soak with a
7-day blind stretch and a 10-day outage, a failing BME280, absurd numbers
in a recording.

Times here are the recording's own (unwrapped) seconds from its start: a
message's `ts` minus the header's `start`, so nothing depends on ticks that
wrap at 2^30 ms.
"""

import gzip
import json

import pytest

from host_tools.desk import replay, synth
from tests.conftest import bundled

D = 86400
H = 3600


def since_start(result):
    """[(s, topic, payload)] with s the message's seconds from the start."""
    start = result.header["start"]
    return [(p["ts"] - start, topic, p) for _, topic, p in result.messages]


def events(result):
    out = []
    for s, topic, p in since_start(result):
        if topic == "event":
            e = dict(p)
            e.pop("ts")
            out.append((s, e))
    return out


def truth_crossings(truth, threshold):
    """Unwrapped seconds at which the true level first reaches `threshold`
    from below (after having been under it)."""
    out = []
    armed = True
    for r in truth:
        if armed and r["level_mm"] >= threshold:
            out.append(r["t"] / 1000)
            armed = False
        elif r["level_mm"] < threshold - 20:
            armed = True
    return out


@pytest.fixture(scope="module")
def soak(tmp_path_factory):
    path = tmp_path_factory.mktemp("soak") / "street-soak.jsonl"
    synth.synth("street-soak", path)
    return replay.run(path)


def test_the_soak_gives_exactly_these_events(soak):
    assert events(soak) == [
        (9 * D + 60, {"kind": "fault", "sensor": "street", "fault": "blind_zone", "active": True}),
        (16 * D, {"kind": "fault", "sensor": "street", "fault": "blind_zone", "active": False}),
        (27 * D, {"kind": "gap", "sensor": "street", "gap_s": 10 * D + 60}),
        (27 * D, {"kind": "gap", "sensor": "env", "gap_s": 10 * D + 60}),
        (32 * D + 13 * H + 1320, {"kind": "alert", "sensor": "street", "alert": "watch", "was": "normal",
                                  "level_mm": 51, "rate_mm_min": 4}),
        (32 * D + 13 * H + 2370, {"kind": "alert", "sensor": "street", "alert": "warning", "was": "watch",
                                  "level_mm": 156, "rate_mm_min": 8}),
        (32 * D + 13 * H + 3430, {"kind": "alert", "sensor": "street", "alert": "danger", "was": "warning",
                                  "level_mm": 302, "rate_mm_min": 9}),
        (32 * D + 14 * H + 3420, {"kind": "alert", "sensor": "street", "alert": "warning", "was": "danger",
                                  "level_mm": 275, "rate_mm_min": -6}),
        (32 * D + 15 * H + 1710, {"kind": "alert", "sensor": "street", "alert": "watch", "was": "warning",
                                  "level_mm": 125, "rate_mm_min": -5}),
        (32 * D + 16 * H + 1460, {"kind": "alert", "sensor": "street", "alert": "normal", "was": "watch",
                                  "level_mm": 28, "rate_mm_min": -3}),
    ]


def test_every_alert_after_the_gap_comes_within_two_fast_intervals(soak):
    alerts = {p["alert"]: s for s, p in events(soak) if p["kind"] == "alert" and p["was"] != "danger"
              and ["normal", "watch", "warning", "danger"].index(p["alert"])
              > ["normal", "watch", "warning", "danger"].index(p["was"])}
    for name, threshold in (("watch", 50), ("warning", 150), ("danger", 300)):
        (true_s,) = truth_crossings(soak.truth, threshold)
        assert true_s > 27 * D  # after the outage
        assert -30 <= alerts[name] - true_s <= 2 * 10 + 1, (name, alerts[name], true_s)


def test_no_level_freezes_after_the_blind_stretch_or_the_gap(soak):
    water = [(s, p) for s, topic, p in since_start(soak) if topic == "water"]
    # The first burst out of the blind zone, and the first after the outage, give a level again.
    after_blind = [p for s, p in water if 16 * D <= s < 16 * D + 600 and "fault" not in p]
    after_gap = [p for s, p in water if 27 * D <= s < 27 * D + 600]
    assert after_blind and after_gap
    assert all(abs(p["level_mm"]) <= 15 for p in after_blind + after_gap)
    # Dry an hour after the flood: the level is back near 0 and stays there.
    dry_from = max(r["t"] / 1000 for r in soak.truth if r["level_mm"] >= 5) + H
    late = [p["level_mm"] for s, p in water if s >= dry_from]
    assert late and max(abs(v) for v in late) <= 15


def test_the_soak_stamps_every_message_right_and_skips_no_sample_after_the_gap(soak):
    stamps = [s for s, _, _ in since_start(soak)]
    assert stamps == sorted(stamps)
    water = [s for s, topic, _ in since_start(soak) if topic == "water"]
    after = [s for s in water if s >= 27 * D]
    assert after[0] == 27 * D
    # Every burst the node wanted was taken: at most its slow interval (60 s)
    # plus one interval of the recording (60 s) apart.
    assert max(b - a for a, b in zip(after, after[1:], strict=False)) <= 120
    wet = [r["t"] / 1000 for r in soak.truth if r["level_mm"] >= 50]
    flood = [s for s in water if wet[0] <= s <= wet[-1]]
    assert max(b - a for a, b in zip(flood, flood[1:], strict=False)) == 10  # the fast interval throughout


# ---- the bundled street-faults recording


@pytest.fixture(scope="module")
def faults():
    return replay.run(bundled("street-faults"))


BROKEN = (1 * D + 22 * H, 4 * D)  # the failing BME280 in street-faults


def test_street_faults_air_and_gap_events(faults):
    got = [(s, p) for s, p in events(faults) if p["sensor"] == "env" or p["kind"] == "gap"]
    assert got == [
        (BROKEN[0] + 600, {"kind": "fault", "sensor": "env", "fault": "air_far_from_history",
                           "active": True}),
        (14 * D, {"kind": "gap", "sensor": "street", "gap_s": 10 * D + 600}),
        (14 * D, {"kind": "gap", "sensor": "env", "gap_s": 10 * D + 600}),
        (14 * D, {"kind": "fault", "sensor": "env", "fault": "air_far_from_history", "active": False}),
    ]


def test_paired_false_echoes_at_a_loggers_spacing_a_failing_bme280_or_the_blind_zone_raise_no_alert(faults):
    assert [s for s, p in events(faults) if p["kind"] == "alert" and D <= s < 14 * D] == []


def dead_part_copy(src, dst):
    """`src` with every env sample of the failure a plain driver fault."""
    with gzip.open(src, "rt") as f, open(dst, "w") as out:
        for i, line in enumerate(f):
            r = json.loads(line)
            if i and r.get("s") == "env" and BROKEN[0] <= r["t"] / 1000 < BROKEN[1]:
                line = json.dumps({"t": r["t"], "s": "env", "fault": "no_answer"}) + "\n"
            out.write(line)
    return dst


def test_a_failing_bme280_moves_the_level_no_more_than_a_dead_one(faults, tmp_path):
    dead = replay.run(dead_part_copy(bundled("street-faults"), tmp_path / "dead.jsonl"))
    levels = [(s, p["level_mm"]) for s, topic, p in since_start(faults) if topic == "water"]
    assert levels == [(s, p["level_mm"]) for s, topic, p in since_start(dead) if topic == "water"]
    during = [p for s, topic, p in since_start(faults) if topic == "water" and BROKEN[0] <= s < BROKEN[1]]
    before = [p for s, topic, p in since_start(faults) if topic == "water" and s < BROKEN[0]]
    assert during and {p.get("air") for p in during} == {"held"}
    assert {p.get("air") for p in before} == {None}


def test_while_the_bme280_fails_the_dry_road_reads_within_a_few_mm(faults):
    # Until the blind stretch (day 2) the weather is as when the part failed;
    # each °C the air drifts later moves the level by about 6 mm (docs/payloads.md).
    levels = [p["level_mm"] for s, topic, p in since_start(faults)
              if topic == "water" and BROKEN[0] <= s < 2 * D and "fault" not in p]
    assert levels and max(abs(v) for v in levels) <= 8


# ---- absurd numbers in a recording


def absurd_recording(path):
    header = {"format": "citynode-recording", "version": 1, "node": "n", "board": "b", "start": 1783987200,
              "sensors": [{"id": "street", "type": "water", "driver": "jsn-sr04t", "mount_mm": 3500},
                          {"id": "env", "type": "env", "period_s": 60}]}
    lines = [header]
    for i in range(40):
        t = i * 60000
        temp = (20.0, 1e308, -1e308, 85.5, 1e30)[i % 5]
        lines.append({"t": t, "s": "env", "temp_c": temp, "pressure_pa": 101325, "humidity_pct": 50.0})
        lines.append({"t": t, "s": "street", "echo_us": [20400] * 7})
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_absurd_air_in_a_recording_is_a_fault_on_both_runtimes(tmp_path):
    path = absurd_recording(tmp_path / "absurd.jsonl")
    cp = replay.run(path, "cpython")
    mp = replay.run(path, "micropython")
    assert cp.messages == mp.messages
    faults = [(s, p["fault"], p["active"]) for s, p in events(cp)]
    # Each run of four absurd readings (60...240 s into every five minutes)
    # raises the fault 180 s (`fault_after_s`) after its first; the good
    # reading that follows clears it.
    expected = []
    for k in range(8):
        expected += [(300 * k + 240, "air_out_of_range", True), (300 * k + 300, "air_out_of_range", False)]
    assert faults == expected[:-1]


def test_one_sensor_missing_for_eight_days_in_a_recording_is_its_gap_alone(tmp_path):
    header = {"format": "citynode-recording", "version": 1, "node": "n", "board": "b", "start": 1783987200,
              "sensors": [{"id": "street", "type": "water", "driver": "jsn-sr04t", "mount_mm": 3500},
                          {"id": "env", "type": "env", "period_s": 3600}]}
    lines = [header]
    for m in range(0, 9 * 24 * 60, 60):  # env every hour for nine days
        lines.append({"t": m * 60000, "s": "env", "temp_c": 20.0 + (m % 7) * 0.01, "pressure_pa": 101325,
                      "humidity_pct": 50.0})
    for s in list(range(0, 600, 60)) + list(range(8 * D, 8 * D + 600, 60)):  # street: a day, then day 8
        lines.append({"t": s * 1000, "s": "street", "echo_us": [20400] * 7})
    lines.sort(key=lambda r: r.get("t", -1))
    path = tmp_path / "missing.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    got = [(s, p) for s, p in events(replay.run(path)) if p["kind"] == "gap"]
    assert got == [(8 * D, {"kind": "gap", "sensor": "street", "gap_s": 8 * D - 540})]
