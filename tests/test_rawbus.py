"""Recordings of bus-level values (version 2) replay through emulated parts
and the real drivers — Adafruit's BME280 driver and citynode's QMC5883L
driver — to exactly the messages of the same recording in SI values."""

import json

import pytest

from host_tools.desk import rawbus, replay, synth


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    d = tmp_path_factory.mktemp("rawbus")
    si, raw = d / "si.jsonl", d / "raw.jsonl"
    synth.parking_day(seed=11, hours=9).write(si)
    converted = rawbus.to_raw(si, raw)
    return si, raw, converted


def test_the_raw_twin_carries_bus_values_not_si_values(twins):
    si, raw, converted = twins
    lines = raw.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["version"] == 2
    assert header["bus"]["env"]["part"] == "bme280"
    assert header["bus"]["bay-03"] == {"part": "qmc5883l", "range_gauss": 2}
    assert converted > 40000
    assert not any('"mag"' in ln or '"temp_c"' in ln for ln in lines[1:])


def test_replaying_through_the_drivers_gives_the_same_messages(twins):
    si, raw, _ = twins
    a = replay.run(si)
    b = replay.run(raw)
    assert len(a.events) >= 4
    assert b.messages == a.messages
    assert b.stats == a.stats


def test_the_same_holds_inside_micropython(twins):
    si, raw, _ = twins
    a = replay.run(si, "micropython")
    b = replay.run(raw, "micropython", heap="256K")
    assert b.messages == a.messages


def test_a_version_1_recording_cannot_carry_bus_values(tmp_path):
    si = tmp_path / "si.jsonl"
    synth.parking_day(seed=11, hours=0.05).write(si)
    lines = si.read_text().splitlines()
    header = json.loads(lines[0])
    header["bus"] = {"env": {"part": "bme280", "calibration": rawbus.CALIBRATION}}
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([json.dumps(header)] + lines[1:]) + "\n")
    with pytest.raises(replay.ReplayError, match=":1: header: field 'bus' needs recording version 2"):
        replay.run(bad)
