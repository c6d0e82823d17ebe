"""In-ground magnetometer bays under what real ones show (the
`parking-interference` scenario): interference of 1-15 µT, weak one-axis
cars, single-reading dips, empty fields that move after a departure, short
sessions. The bundled recording, held-out seeds generated here, the same
cars read at 1 Hz and at 10-11 Hz, and both runtimes."""

import gzip
import json
import math
import statistics

import pytest

from host_tools.desk import replay, synth
from tests.conftest import RECORDINGS

BUNDLED = RECORDINGS / "parking-interference.jsonl.gz"
TOLERANCE_MS = 1000 + 1000  # one smoothing window (~1 s) plus one reading at 1 Hz


def records(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as f:
        return [json.loads(line) for line in f]


def check_targets(occ):
    assert occ["transitions"] >= 10
    assert occ["f1"] >= 0.99, occ
    assert occ["latency_median_s"] <= 5.0, occ
    assert occ["latency_p90_s"] <= 10.0, occ


def transitions(result):
    return [(p["sensor"], p["state"], t) for t, p in result.events if p["kind"] == "occupancy"]


def test_the_bundled_recording_is_what_its_seed_generates(tmp_path):
    out = tmp_path / "parking-interference.jsonl.gz"
    synth.synth("parking-interference", out)
    with gzip.open(out) as a, gzip.open(BUNDLED) as b:
        assert a.read() == b.read()


UNDER_NOISE = ("not met under interference of 1-15 uT: cars the noise hides are missed (weak ones by "
               "physics), and false or late transitions follow noisy stretches")


@pytest.mark.xfail(strict=True, reason=UNDER_NOISE + "; bundled: F1 0.933 (precision 1.000, recall 0.875)")
def test_the_bundled_recording_meets_the_occupancy_targets():
    check_targets(replay.run(BUNDLED).scores["occupancy"])


def test_the_bundled_recording_meets_the_latency_targets():
    """What holds on the bundled recording under its interference: the
    transitions found are found in time."""
    occ = replay.run(BUNDLED).scores["occupancy"]
    assert occ["transitions"] >= 10 and occ["tp"] >= 10, occ
    assert occ["latency_median_s"] <= 5.0 and occ["latency_p90_s"] <= 10.0, occ


@pytest.mark.xfail(strict=True, reason=UNDER_NOISE + "; F1 0.941, 0.824, 0.800 on seeds 101, 202, 303 "
                                                     "(latency median <= 2.7 s, p90 <= 11.7 s)")
def test_the_targets_hold_on_other_seeds_at_11_hz(tmp_path):
    for seed in (101, 202, 303):
        path = tmp_path / ("p%d.jsonl" % seed)
        synth.parking_interference(seed=seed, minutes=25).write(path)
        check_targets(replay.run(path).scores["occupancy"])


@pytest.mark.xfail(strict=True, reason=UNDER_NOISE + "; at 1 Hz no reading is averaged: F1 0.683, 0.889, "
                                       "0.684 on seeds 101, 202, 303 (latency median <= 3.9 s, p90 <= 9.1 s)")
def test_the_targets_hold_on_other_seeds_at_1_hz(tmp_path):
    for seed in (101, 202, 303):
        path = tmp_path / ("p%d.jsonl" % seed)
        synth.parking_interference(seed=seed, minutes=30, rate_hz=1.0).write(path)
        check_targets(replay.run(path).scores["occupancy"])


@pytest.mark.xfail(strict=True, reason="not met under interference of 1-15 uT: at 1 Hz the unaveraged "
                                       "noise adds false pairs and misses others (seed 404, bay-11: a false "
                                       "pair and two sessions missed at 1 Hz; bay-12: a session split "
                                       "in two, 8 transitions against 6)")
def test_the_same_cars_at_1_hz_and_10_hz_give_the_same_transitions_within_one_window(tmp_path):
    got = {}
    for rate in (1.0, 10.0):
        path = tmp_path / ("r%g.jsonl" % rate)
        synth.parking_interference(seed=404, minutes=20, rate_hz=rate).write(path)
        got[rate] = transitions(replay.run(path))
    for bay in ("bay-11", "bay-12"):
        slow = [(s, t) for b, s, t in got[1.0] if b == bay]
        fast = [(s, t) for b, s, t in got[10.0] if b == bay]
        assert [s for s, _ in slow] == [s for s, _ in fast]
        for (_s, a), (_s2, b) in zip(slow, fast, strict=True):
            assert abs(a - b) <= TOLERANCE_MS, (bay, slow, fast)


def test_one_world_whatever_the_rate(tmp_path):
    """The same seed at 1 Hz and 11 Hz: the same cars (truth), only the
    number of readings differs."""
    synth.parking_interference(seed=7, minutes=10, rate_hz=1.0).write(tmp_path / "a.jsonl")
    synth.parking_interference(seed=7, minutes=10, rate_hz=11.0).write(tmp_path / "b.jsonl")
    a = records(tmp_path / "a.jsonl")
    b = records(tmp_path / "b.jsonl")
    truth_a = [r for r in a[1:] if "truth" in r]
    truth_b = [r for r in b[1:] if "truth" in r]
    assert truth_a == truth_b and len(truth_a) >= 5
    assert 10 * len(a) < len(b) < 12 * len(a)


def _sessions_and_sigmas(seed, minutes=60):
    """(sessions, σ of the empty field before each arrival, µT) of one bay."""
    import random

    world = random.Random(seed)
    duration = int(minutes * 60)
    sessions = synth._sessions(world, duration)
    cuts = synth._interference_cuts(sessions, duration)
    inter = [synth._interference(world, a, b) for a, b in zip(cuts, cuts[1:] + [duration], strict=True)]
    rng = random.Random(1)
    sigmas = []
    for i, (stop, _leave, _clear, car) in enumerate(sessions):
        a0, a1 = cuts[i], stop - car["approach"]
        xs = [synth._interference_at(inter, a0 + (a1 - a0) * k / 1000, rng) for k in range(1000)]
        var = sum(statistics.pvariance([x[j] for x in xs]) for j in range(3))
        sigmas.append(math.sqrt(var / 3))
    return sessions, sigmas


def test_the_scenario_carries_the_real_effects():
    sessions, sigmas = [], []
    for seed in (4, 5, 6):
        s, g = _sessions_and_sigmas(seed)
        sessions += s
        sigmas += g
    assert 0.9 < min(sigmas) < 1.5 and 10.0 < max(sigmas) < 16.0  # 1-15 µT σ per axis, per session
    fields = [car["field"] for _s, _l, _c, car in sessions]
    weak = [f for f in fields if sum(1 for v in f if v) == 1]
    assert weak and all(5.0 <= max(abs(v) for v in f) <= 10.0 for f in weak)  # weak, one axis
    offsets = [math.sqrt(sum(v * v for v in car["offset"])) for _s, _l, _c, car in sessions]
    assert max(offsets) <= 6.0 and max(offsets) > 4.0  # the empty field moves after a departure
    stays = [leave - stop for stop, leave, _c, _car in sessions]
    assert max(stays) <= 300  # short sessions
    assert all(car["dips"] for _s, _l, _c, car in sessions)  # parked-car dips


def test_both_runtimes_publish_identical_messages_for_the_bundled_recording():
    cp = replay.run(BUNDLED)
    mp = replay.run(BUNDLED, "micropython")
    assert mp.stats == cp.stats
    assert [m[:3] for m in mp.messages] == [m[:3] for m in cp.messages]
    assert len(transitions(cp)) >= 10
