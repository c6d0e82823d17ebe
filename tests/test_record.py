"""`citynode record` against a real virtual board: MicroPython's unix port
on a pseudo-terminal, provisioned with mpremote as a technician would
(host_tools.desk.demo.provision), its config's hardware layer "sim" playing a
known recording. The board's record mode streams the recording's samples
back; what `citynode record` writes must be those samples, with the
technician's notes as truth records, and must read back and replay."""

import contextlib
import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import time

import pytest

from citynode.board.record import MARK
from citynode.board.recording import Reader
from host_tools import cli, mpy
from host_tools.desk import demo, replay
from host_tools.desk.vboard import VirtualBoard
from host_tools.field import boards, sites
from host_tools.field.record import Capture, Recorder, RecordError, View, format_summary, parse_note, record
from tests.conftest import ROOT, bundled

PARKING_H = (8.0, 8.02)  # 72 s, 4 bays at 1 Hz and the air every 60 s: 290 samples
FLOOD_H = (16.0, 16.1)  # 6 min of the storm, street and air every 10 s: 72 samples
RECORD_HEAP = "104K"  # record mode on the 64-bit unix port, firmware as .mpy (94K measured)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """A virtual board provisioned with the firmware, a parking config and
    the parking slice as /rec.jsonl; the flood slice is on its flash too."""
    d = tmp_path_factory.mktemp("bench")
    slices = {}
    for name, rec, hours in (("parking", "parking-day", PARKING_H), ("flood", "flood-event", FLOOD_H)):
        path = d / ("%s.jsonl" % name)
        slices[name] = (path, replay.make_slice(bundled(rec), hours, path)["header"])
    (d / "flash").mkdir()
    board = VirtualBoard(d / "flash")
    port = board.start()
    try:
        config = d / "config.json"
        config.write_text(json.dumps(_config(slices["parking"][1], "/rec.jsonl", 20)))
        demo.provision(port, demo.stage_firmware(d / "stage" / "citynode"), config, slices["parking"][0],
                       lambda line: None)
        shutil.copy(slices["flood"][0], d / "flash" / "flood.jsonl")
        yield {"board": board, "port": port, "flash": d / "flash", "slices": slices}
    finally:
        board.stop()


def _config(header, recording, speed):
    return sites.node_config("bench", header["node"], boards.load("virtual"), header["sensors"],
                             {"host": "127.0.0.1", "port": 1883}) | {
        "hal": {"kind": "sim", "recording": recording, "speed": speed}}


def use(bench, name, speed, sensors=None):
    """Point the board's config at one of the slices, at a pace; `sensors`
    replaces the config's sensor list."""
    path, header = bench["slices"][name]
    cfg = _config(header, "/rec.jsonl" if name == "parking" else "/flood.jsonl", speed)
    if sensors is not None:
        cfg["sensors"] = sensors
    (bench["flash"] / "config.json").write_text(json.dumps(cfg))
    return path


def start(port, out, *args):
    return subprocess.Popen([sys.executable, "-m", "host_tools.cli", "record", "--port", port, "-o", str(out),
                             *args], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc, timeout=30):
    if proc.stdin is not None and proc.stdin.closed:
        proc.stdin = None  # the notes are all given
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def ended(proc, how):
    """Close the notes and wait: a clean end (exit status 0), `how`."""
    proc.stdin.close()
    rc, stdout, err = finish(proc)
    assert rc == 0, (stdout, err)
    assert "ended: %s" % how in stdout


def wait_lines(path, n, proc, timeout=20):
    """Wait until the file being written has `n` lines."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and path.read_text().count("\n") >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError("%s: fewer than %d lines after %d s" % (path, n, timeout))


def read(path):
    """The header and the records, through the recording reader."""
    with Reader(str(path)) as r:
        return r.header, list(r)


def samples(records):
    return [r for r in records if "s" in r]


# ---- captures


def test_the_capture_is_the_source_with_the_typed_truth(bench, tmp_path):
    src = use(bench, "parking", speed=25)  # 72 s in about 3 s
    out = tmp_path / "bench.jsonl"
    proc = start(bench["port"], out, "--note", "bench run, bays 1-4")
    wait_lines(out, 60, proc)
    proc.stdin.write("o 1 van, parked badly\nf bay-02\n")
    proc.stdin.flush()
    wait_lines(out, 200, proc)
    proc.stdin.write("# a comment line\no3\n")
    ended(proc, "done")

    src_header, src_records = read(src)
    header, records = read(out)
    assert header["node"] == src_header["node"] and header["board"] == "virtual"
    assert header["start"] == src_header["start"]  # the board's clock: the sim's, the recording's start
    assert header["sensors"] == src_header["sensors"]
    assert header["notes"] == "bench run, bays 1-4"
    assert header["plan"] == {"recorded_every_s": {"bay-01": 1, "bay-02": 1, "bay-03": 1, "bay-04": 1,
                                                   "env": 60}}
    assert header["generator"]["name"] == "citynode record" and header["generator"]["clock"] == "board"
    # Same sensors, values, order and times: t is the board's tick, exact.
    assert samples(records) == samples(src_records)
    assert len(samples(records)) == 290

    truth = [(i, r) for i, r in enumerate(records) if "truth" in r]
    assert [r for _, r in truth] == [
        {"t": truth[0][1]["t"], "truth": "bay-01", "occupied": True, "note": "van, parked badly"},
        {"t": truth[1][1]["t"], "truth": "bay-02", "occupied": False},
        {"t": truth[2][1]["t"], "truth": "bay-03", "occupied": True}]
    for i, r in truth:  # stamped with the board's tick: the sample just before (the sim's now())
        before = [x for x in records[:i] if "s" in x]
        assert r["t"] == (before[-1]["t"] if before else 0)
    assert 0 < truth[0][1]["t"] <= truth[2][1]["t"] < 72000
    assert not (tmp_path / "bench.jsonl.rejected").exists()

    # It replays: the same events as the source, scored against the typed truth.
    assert replay.run(out).events == replay.run(src).events
    assert cli.main(["replay", str(out)]) == 0


def test_a_water_level_by_ruler_and_a_duration(bench, tmp_path):
    src = use(bench, "flood", speed=60)  # 120 s in 2 s
    out = tmp_path / "street.jsonl"
    proc = start(bench["port"], out, "--duration", "120")
    proc.stdin.write("w 120 ruler at the kerb\n")
    ended(proc, "duration")
    header, records = read(out)
    # The street at its fast_s, the air with every burst: all of the source, up to 120 s.
    assert header["plan"] == {"recorded_every_s": {"env": 10, "street": 10}}
    expected = [r for r in samples(read(src)[1]) if r["t"] < 120000]
    assert samples(records) == expected and len(expected) == 24
    truth = [r for r in records if "truth" in r]
    assert truth == [{"t": truth[0]["t"], "truth": "street", "level_mm": 120, "note": "ruler at the kerb"}]
    assert replay.run(out).stats["samples"] == 24


def test_keys_on_a_terminal_note_the_truth_under_a_live_table(bench, tmp_path):
    use(bench, "parking", speed=25)
    out = tmp_path / "keys.jsonl"
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "record", "--port", bench["port"],
                             "-o", str(out)], cwd=ROOT, stdin=slave, stdout=slave, stderr=slave,
                            env=dict(os.environ, COLUMNS="120", TERM="xterm"))
    os.close(slave)
    screen = bytearray()

    def pump(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if select.select([master], [], [], 0.02)[0]:
                with contextlib.suppress(OSError):
                    screen.extend(os.read(master, 65536))

    try:
        for _ in range(500):
            pump(0.02)
            if out.exists() and out.read_text().count("\n") > 40:
                break
        os.write(master, b"o2\x7f1 van")  # Backspace corrects the bay
        pump(0.2)
        os.write(master, b"\r")
        pump(0.5)
        os.write(master, b"w 5\r")  # this node has no water sensor
        pump(0.3)
        proc.send_signal(signal.SIGINT)
        while proc.poll() is None:
            pump(0.05)
        pump(0.1)
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
    text = screen.decode("utf-8", "replace")
    assert proc.returncode == 1, text[-2000:]  # a note was not taken
    assert "note not taken: 'w 5': this node has no water sensor" in text
    assert "last value" in text and "truth at" in text and "bay-01 occupied (van)" in text
    truth = [r for r in read(out)[1] if "truth" in r]
    assert truth == [{"t": truth[0]["t"], "truth": "bay-01", "occupied": True, "note": "van"}]


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill"])
def test_ctrl_c_or_a_kill_leaves_a_valid_recording_of_everything_so_far(bench, tmp_path, how):
    src = use(bench, "parking", speed=10)  # 72 s in about 7 s
    out = tmp_path / "cut.jsonl"
    proc = start(bench["port"], out, "--no-notes")
    wait_lines(out, 80, proc)
    proc.send_signal(how)
    rc, stdout, err = finish(proc)
    header, records = read(out)  # reads to the end without an error
    got = samples(records)
    assert 80 <= len(got) < 290
    assert got == samples(read(src)[1])[:len(got)]
    if how == signal.SIGINT:
        assert rc == 0, (stdout, err)
        assert "ended: stopped" in stdout
        assert "lost" not in stdout  # the board's count of samples sent is what arrived
    else:
        assert rc == -signal.SIGKILL


def test_a_line_the_recording_cannot_take_is_named_and_kept(bench, tmp_path):
    # The config says bay-03 is an ultrasonic bay; the part behind it sends
    # magnetometer counts: each of its samples is refused by the reader.
    sensors = [dict(s) for s in bench["slices"]["parking"][1]["sensors"]]
    sensors[2] = {"id": "bay-03", "type": "bay_ultrasonic", "driver": "jsn-sr04t", "period_s": 1}
    use(bench, "parking", speed=0, sensors=sensors)
    out = tmp_path / "wiring.jsonl"
    proc = start(bench["port"], out, "--no-notes")
    rc, stdout, err = finish(proc)
    assert rc == 1, (stdout, err)
    assert "%s:" % bench["port"] in err and "field 'echo_us' must be a list" in err
    kept = [json.loads(line) for line in (tmp_path / "wiring.jsonl.rejected").read_text().splitlines()]
    assert len(kept) == 72 and all('"s": "bay-03"' in k["text"] and "mag" in k["text"] for k in kept)
    assert "72 lines from the board were not recorded" in stdout
    header, records = read(out)
    assert [r for r in samples(records) if r["s"] == "bay-03"] == []
    assert len(samples(records)) == 290 - 72
    # Named by the board's line: the hello is line 1, then bay-03 is every fifth line or so.
    lines = [k["line"] for k in kept]
    assert lines == sorted(lines) and lines[0] > 1


def test_record_mode_fits_a_small_heap(bench, tmp_path):
    # The firmware as a board gets it (.mpy), MicroPython's heap capped:
    # record mode reads the config, builds the hardware layer and streams,
    # without the node's connection modules or, once checked, the config checks.
    lib = mpy.compile_package(ROOT / "firmware" / "citynode", tmp_path / "lib").parent
    src, header = bench["slices"]["parking"]
    shutil.copy(src, tmp_path / "rec.jsonl")
    (tmp_path / "config.json").write_text(json.dumps(_config(header, "rec.jsonl", 0)))
    p = subprocess.run([mpy.micropython_binary(), "-X", "heapsize=" + RECORD_HEAP, "-c",
                        "import citynode.board.record as r; r.main('config.json')"], cwd=tmp_path,
                       env=dict(os.environ, MICROPYPATH=str(lib)), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60, check=False)
    lines = [json.loads(line[len(MARK):]) for line in p.stdout.splitlines() if line.startswith(MARK)]
    assert lines[-1] == {"end": "done", "samples": 290}, p.stdout[-500:] + p.stderr
    assert "hello" in lines[0]
    assert lines[1:-1] == samples(read(src)[1])  # the sim's ticks are the recording's times


# ---- errors the user can fix


def test_no_such_port(tmp_path):
    proc = start("/dev/nonexistent-tty", tmp_path / "x.jsonl", "--no-notes")
    rc, stdout, err = finish(proc)
    assert rc == 2
    assert err.strip().splitlines() == ["citynode record: error: /dev/nonexistent-tty: no such port"]
    assert not (tmp_path / "x.jsonl").exists()


def test_a_board_without_a_config(bench, tmp_path):
    (bench["flash"] / "config.json").unlink()
    proc = start(bench["port"], tmp_path / "x.jsonl", "--no-notes")
    rc, stdout, err = finish(proc)
    assert rc == 2
    assert err.strip().splitlines() == [
        "citynode record: error: %s: the board cannot record: config.json: cannot read /config.json"
        % bench["port"]]
    assert not (tmp_path / "x.jsonl").exists()


def test_a_board_without_the_firmware(tmp_path):
    with VirtualBoard(tmp_path / "empty-flash") as board:
        proc = start(board.port, tmp_path / "x.jsonl", "--no-notes")
        rc, stdout, err = finish(proc)
    assert rc == 2
    assert err.strip().splitlines() == [
        "citynode record: error: %s: the board has no citynode firmware with record mode (ImportError: no "
        "module named 'citynode'); copy it with mpremote connect %s fs cp -r firmware/citynode :"
        % (board.port, board.port)]


def test_a_port_where_no_board_answers(tmp_path):
    master, slave = pty.openpty()
    try:
        with pytest.raises(RecordError, match="does not answer"), open(os.devnull, "w") as quiet:
            record(os.ttyname(slave), tmp_path / "x.jsonl", timeout=0.5, out=quiet)
    finally:
        os.close(master)
        os.close(slave)
    assert not (tmp_path / "x.jsonl").exists()


def test_an_existing_file_or_a_gz_name_is_refused(tmp_path):
    (tmp_path / "old.jsonl").write_text("a day of recording\n")
    with pytest.raises(RecordError, match="old.jsonl exists: choose another name, or `force`"):
        record("/dev/null", tmp_path / "old.jsonl")
    with pytest.raises(RecordError, match="plain JSON Lines"):
        record("/dev/null", tmp_path / "new.jsonl.gz")
    assert (tmp_path / "old.jsonl").read_text() == "a day of recording\n"


def test_the_command_line_names_the_flag(tmp_path, capsys):
    (tmp_path / "old.jsonl").write_text("a day of recording\n")
    assert cli.main(["record", "--port", "/dev/null", "-o", str(tmp_path / "old.jsonl")]) == 2
    assert capsys.readouterr().err == ("citynode record: error: %s exists: choose another name, or --force "
                                       "to overwrite it\n" % (tmp_path / "old.jsonl"))


def test_a_cut_or_unknown_line_from_the_board_is_kept_not_dropped(tmp_path, capsys):
    capture = Capture("/dev/ttyUSB0", tmp_path / "c.jsonl")
    rec = Recorder("/dev/ttyUSB0", capture, View(capture, sys.stdout, live=False, interactive=False))
    sensors = [{"id": "bay-01", "type": "bay_magnetic"}]
    rec.board_line(1, b'#rec {"hello": {"node": "n", "site": "s", "sensors": %s, "hal": "esp32", "fw": "0.1",'
                      b' "tick": 1073741000, "epoch": 1784016000, "periods_ms": {"bay-01": 1000},'
                      b' "machine": "ESP32"}}' % json.dumps(sensors).encode())
    rec.board_line(2, b'#rec {"t": 1073741500, "s": "bay-01", "mag": [1, 2, 3]}')
    rec.board_line(3, b'#rec {"t": 1073741900, "s": "bay-01", "ma')
    rec.board_line(4, b'#rec {"t": 300, "s": "bay-01", "mag": [4, 5, 6]}')  # the tick wrapped at 2**30
    rec.board_line(5, b'#rec {"t": 200, "s": "bay-01", "mag": [4, 5, 6]}')
    rec.board_line(6, b"a driver's own warning")
    rec.board_line(7, b'#rec {"now": 400}')  # no note asked for it
    rec.pending.append(parse_note("o 1", sensors))  # asked, never answered
    rec.finish()
    err = capsys.readouterr().err
    assert "/dev/ttyUSB0:3: line from the board not recorded: not a JSON object" in err
    assert "/dev/ttyUSB0:5: line from the board not recorded: tick 200 comes before the previous one" in err
    assert "board: a driver's own warning" in err
    header, records = read(tmp_path / "c.jsonl")
    assert header["board"] == "ESP32"
    assert records == [{"t": 500, "s": "bay-01", "mag": [1, 2, 3]},
                       {"t": 1124, "s": "bay-01", "mag": [4, 5, 6]},
                       {"t": 1124, "truth": "bay-01", "occupied": True,
                        "note": "(stamped at the end: the board did not answer)"}]
    kept = [json.loads(line) for line in (tmp_path / "c.jsonl.rejected").read_text().splitlines()]
    assert [k["line"] for k in kept] == [3, 5, 7]
    assert rec.unstamped == 1


def test_the_help_explains_options_notes_and_exit_status():
    proc = start("unused", "unused", "--help")
    rc, stdout, _ = finish(proc)
    assert rc == 0
    for words in ("--port", "--duration", "--note", "--board", "--force", "examples:", "o BAY", "f BAY",
                  "w [SENSOR] MM", "citynode replay", "Exit status", ".rejected"):
        assert words in stdout, words


# ---- the notes a technician types


SENSORS = [{"id": "bay-01", "type": "bay_ultrasonic"}, {"id": "bay-02", "type": "bay_magnetic"},
           {"id": "street", "type": "water"}, {"id": "env", "type": "env"}]


@pytest.mark.parametrize("text, rec", [
    ("o 1", {"truth": "bay-01", "occupied": True}),
    ("o2", {"truth": "bay-02", "occupied": True}),
    ("f bay-02", {"truth": "bay-02", "occupied": False}),
    ("free 1 van gone", {"truth": "bay-01", "occupied": False, "note": "van gone"}),
    ("w 120", {"truth": "street", "level_mm": 120}),
    ("w 12.5 puddle", {"truth": "street", "level_mm": 12.5, "note": "puddle"}),
    ("water street 40", {"truth": "street", "level_mm": 40}),
])
def test_notes_become_truth_records(text, rec):
    assert parse_note(text, SENSORS) == rec


@pytest.mark.parametrize("text, message", [
    ("o 3", "which bay? one of bay-01, bay-02 (or its number, 1 to 2)"),
    ("o", "which bay?"),
    ("w", "expected w [SENSOR] MM"),
    ("w -5", "a water level is 0 mm or more"),
    ("w nan", "expected w [SENSOR] MM"),
    ("x 1", "unknown note 'x'"),
    ("12", "expected o BAY"),
])
def test_a_note_that_makes_no_sense_is_refused_with_why(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_note(text, SENSORS)


def test_a_single_bay_needs_no_name():
    assert parse_note("o", SENSORS[:1]) == {"truth": "bay-01", "occupied": True}
    with pytest.raises(ValueError, match="has no water sensor"):
        parse_note("w 10", SENSORS[:1])


def test_the_summary_counts_a_loss_only_when_fewer_lines_arrived_than_the_board_sent():
    s = {"output": "x.jsonl", "samples": 82, "per_sensor": {"bay-01": 82}, "truth": 0, "recorded_s": 20.0,
         "end": "stopped", "beyond_duration": 0, "rejected": 0, "refused": 0, "unstamped": 0}
    # A Ctrl-C between the board printing its 82nd line and counting it: nothing is lost.
    assert not any("lost" in line for line in format_summary(dict(s, board_samples=81)))
    assert not any("lost" in line for line in format_summary(dict(s, board_samples=82)))
    assert format_summary(dict(s, board_samples=84))[-1] == \
        "  the board sent 84 samples, 82 arrived: lines were lost on the way"
