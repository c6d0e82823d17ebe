"""A corrupt recording stops the replay with one line naming file, line and
field, on both runtimes, and through the CLI with a non-zero exit."""

import json

import pytest

from citynode.board.recording import Reader, RecordingError
from host_tools import cli
from host_tools.desk import replay

HEADER = {"format": "citynode-recording", "version": 1, "node": "n1", "board": "esp32-devkitc",
          "start": 1783987200, "sensors": [{"id": "street", "type": "water", "mount_mm": 3500},
                                           {"id": "bay", "type": "bay_magnetic"},
                                           {"id": "env", "type": "env"}]}
GOOD = [
    {"t": 0, "s": "env", "temp_c": 21.5, "pressure_pa": 101325.0, "humidity_pct": 50.0},
    {"t": 0, "s": "street", "echo_us": [20400, 20410, 0, 20390, 20405, 20400, 20401]},
    {"t": 500, "s": "bay", "mag": [2400, -120, 5160]},
    {"t": 1000, "truth": "street", "level_mm": 0},
    {"t": 1000, "truth": "bay", "occupied": False, "note": "empty"},
    {"t": 2000, "s": "bay", "fault": "no_answer"},
]


def write(tmp_path, header=HEADER, lines=GOOD, tail=""):
    p = tmp_path / "rec.jsonl"
    body = [json.dumps(header)] + [json.dumps(x) for x in lines]
    p.write_text("\n".join(body) + "\n" + tail)
    return p


def read_all(path):
    with Reader(str(path)) as r:
        return r.header, list(r)


def test_a_good_recording_reads_back_every_record(tmp_path):
    header, recs = read_all(write(tmp_path))
    assert header["node"] == "n1"
    assert recs == GOOD


def test_a_last_line_without_newline_is_still_read(tmp_path):
    p = write(tmp_path)
    p.write_text(p.read_text().rstrip("\n"))
    assert read_all(p)[1] == GOOD


def test_lines_longer_than_the_read_chunk_are_read_whole(tmp_path):
    p = write(tmp_path)
    with Reader(str(p), chunk=7) as r:
        assert list(r) == GOOD


BAD_LINES = [
    ('{"t": 3000, "s": "street", "echo_us": [20400, 204', 8, "truncated or corrupt"),
    ('{"t": "3000", "s": "street", "echo_us": [1]}', 8, "field 't'"),
    ('{"t": 3000, "s": "street", "echo_us": [1.5]}', 8, "field 'echo_us'"),
    ('{"t": 3000, "s": "street", "echo_us": []}', 8, "field 'echo_us'"),
    ('{"t": 3000, "s": "bay", "mag": [1, 2]}', 8, "field 'mag'"),
    ('{"t": 3000, "s": "env", "temp_c": "hot", "pressure_pa": 1, "humidity_pct": 1}', 8, "field 'temp_c'"),
    ('{"t": 3000, "s": "nope", "echo_us": [1]}', 8, "unknown sensor"),
    ('{"t": 1500, "s": "bay", "mag": [1, 2, 3]}', 8, "time goes backwards"),
    ('{"t": 3000, "s": "bay", "mag": [1, 2, 3], "extra": 1}', 8, "unknown field 'extra'"),
    ('{"t": 3000, "truth": "bay", "occupied": "yes"}', 8, "field 'occupied'"),
    ('{"t": 3000}', 8, "neither 's'"),
    ('[1, 2, 3]', 8, "not a JSON object"),
    ('{"t": 3000, "s": "env", "temp_c": NaN, "pressure_pa": 1, "humidity_pct": 1}', 8, "field 'temp_c'"),
]


@pytest.mark.parametrize("line,lineno,what", BAD_LINES)
def test_a_bad_line_names_file_line_and_field(tmp_path, line, lineno, what):
    p = write(tmp_path, tail=line + "\n" + json.dumps(GOOD[0]) + "\n")
    with pytest.raises(RecordingError) as e:
        read_all(p)
    msg = str(e.value)
    assert msg.startswith("%s:%d: " % (p, lineno)), msg
    assert what in msg
    assert "\n" not in msg


@pytest.mark.parametrize("change,what", [
    ({"version": 7}, "unsupported recording version 7"),
    ({"version": True}, "unsupported recording version true"),
    ({"version": 1.0}, "unsupported recording version 1.0"),
    ({"format": "csv"}, "field 'format'"),
    ({"start": 1.5}, "field 'start'"),
    ({"sensors": []}, "field 'sensors'"),
    ({"sensors": [{"id": "a", "type": "radar"}]}, "sensors[0]'.type"),
    ({"colour": "red"}, "unknown field 'colour'"),
])
def test_a_bad_header_is_refused_on_line_1(tmp_path, change, what):
    h = dict(HEADER, **change)
    p = write(tmp_path, header=h)
    with pytest.raises(RecordingError) as e:
        read_all(p)
    assert str(e.value).startswith("%s:1: header: " % p)
    assert what in str(e.value)


def test_a_missing_header_field_is_named(tmp_path):
    h = dict(HEADER)
    del h["start"]
    with pytest.raises(RecordingError, match="missing field 'start'"):
        read_all(write(tmp_path, header=h))


def test_an_empty_file_has_no_header(tmp_path):
    p = tmp_path / "empty.jsonl"
    p.write_text("")
    with pytest.raises(RecordingError, match=":1: empty file"):
        read_all(p)


@pytest.mark.parametrize("runtime", replay.RUNTIMES)
def test_replay_stops_at_the_bad_line_on_both_runtimes(tmp_path, runtime):
    p = write(tmp_path, tail='{"t": 3000, "s": "street", "echo_us": [20400, 204\n')
    with pytest.raises(replay.ReplayError) as e:
        replay.run(p, runtime)
    assert str(e.value).startswith("%s:8: not a JSON object" % p)


def test_the_cli_prints_one_line_and_exits_non_zero(tmp_path, capsys):
    p = write(tmp_path, header=dict(HEADER, version=99))
    assert cli.main(["replay", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "%s:1: header: field 'version': unsupported recording version 99" % p in err


def test_the_cli_names_a_missing_recording(tmp_path, capsys):
    assert cli.main(["replay", str(tmp_path / "nope.jsonl")]) == 2
    assert "nope.jsonl: no such recording" in capsys.readouterr().err


def test_a_gzipped_recording_cut_short_is_an_error_not_a_silent_end(tmp_path, capsys):
    import gzip

    data = gzip.compress(write(tmp_path).read_bytes())
    p = tmp_path / "cut.jsonl.gz"
    p.write_bytes(data[: len(data) - 12])
    assert cli.main(["replay", str(p)]) == 2
    assert "cut.jsonl.gz" in capsys.readouterr().err


@pytest.mark.parametrize("runtime", replay.RUNTIMES)
def test_a_bad_sensor_parameter_is_reported_on_the_header_line(tmp_path, runtime):
    sensors = [{"id": "street", "type": "water", "driver": "srf05"}]
    p = write(tmp_path, header=dict(HEADER, sensors=sensors), lines=[])
    with pytest.raises(replay.ReplayError) as e:
        replay.run(p, runtime)
    assert str(e.value) == "%s:1: header: sensor street: unknown ranging driver srf05 " \
                           "(one of a02yyuw, hc-sr04, jsn-sr04t)" % p


def test_a_fault_line_for_a_ranging_sensor_replays(tmp_path):
    lines = GOOD + [{"t": 3000 + i * 10000, "s": "street", "fault": "uart_silent"} for i in range(10)]
    r = replay.run(write(tmp_path, lines=lines))
    assert ("street", "uart_silent", True) in [(p["sensor"], p["fault"], p["active"]) for t, p in r.events]


def test_a_version_2_recording_may_carry_distances_from_a_uart_part(tmp_path):
    header = dict(HEADER, version=2, sensors=[{"id": "street", "type": "water", "driver": "a02yyuw"}])
    lines = [{"t": i * 10000, "s": "street", "distance_mm": [3000, 3001, 0, 2999, 3000]} for i in range(3)]
    r = replay.run(write(tmp_path, header=header, lines=lines))
    water = [p for t, topic, p in r.messages if topic == "water"]
    assert water[-1]["level_mm"] == 0  # 3000 mm from a sensor mounted at the default 3000 mm
    v1 = write(tmp_path, header=dict(header, version=1), lines=lines)
    with pytest.raises(replay.ReplayError, match="field 'echo_us'"):
        replay.run(v1)
