"""Every bad input is answered in one line, FILE:LINE: field: what where
there is a line, with exit status 2: board profiles, recordings the reader
must refuse at once (long lines, CR line ends, deep nesting, a gzip file cut
short, a second header, absurd start, times and truth), synth's arguments,
MicroPython heap sizes and the example site copied as the README says."""

import gzip
import io
import json
import os
import shutil

import pytest

from citynode.board.recording import MAX_LINE, Reader, RecordingError
from host_tools import cli, mpy
from host_tools.desk import replay
from host_tools.paths import FIRMWARE
from tests.conftest import RECORDINGS, ROOT
from tests.test_recording import GOOD, HEADER, read_all, write


def one_line_error(capsys, argv, command="replay"):
    """Run the CLI; it must exit 2 with exactly one line on stderr: that
    line without its `citynode COMMAND: error: ` prefix."""
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    prefix = "citynode %s: error: " % command
    assert err.startswith(prefix), err
    return err[len(prefix):].rstrip("\n")


@pytest.fixture(scope="module")
def mp_lib(tmp_path_factory):
    """The firmware compiled once for this module's MicroPython replays."""
    lib = tmp_path_factory.mktemp("mpy")
    mpy.compile_package(FIRMWARE / "citynode", lib)
    return lib


def both_runtimes(capsys, path, mp_lib):
    """The one-line error of `citynode replay PATH` (CPython), and that of
    the same replay under MicroPython (`error: ` and the line, exit 2)."""
    proc = replay.run_micropython_raw(path, replay.DEFAULT_HEAP, mp_lib)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    return [one_line_error(capsys, ["replay", str(path)]), proc.stderr[len("error: "):].rstrip("\n")]


# ---- board profiles

BOARD = (ROOT / "boards" / "esp32-devkitc.toml").read_text()
POE = (ROOT / "boards" / "esp32-poe.toml").read_text()


@pytest.mark.parametrize("text,what", [
    (BOARD.replace("flash_offset = 0x1000 ", 'flash_offset = "0x1000" '),
     "flash_offset must be an integer such as 0x1000 (no quotes), not '0x1000'"),
    (BOARD.replace("flash_offset = 0x1000 ", "flash_offset = 4096.0 "),
     "flash_offset must be an integer such as 0x1000 (no quotes), not 4096.0"),
    (BOARD.replace('title = "ESP32-DevKitC (ESP32-WROOM-32)"', "title = 7"),
     "title must be a non-empty string"),
    (BOARD.replace("id = 0\n", 'id = "0"\n'), "i2c.id must be a bus number, 0 to 2, not '0'"),
    (BOARD.replace("id = 2\n", "id = true\n"), "uart.id must be a bus number, 0 to 2, not True"),
    (BOARD.replace("scl = 22\n", "scl = 22\nfreq = \"fast\"\n"),
     "i2c.freq must be a clock in Hz, 1000 to 1000000, not 'fast'"),
    (POE.replace('phy = "LAN8720"', "phy = 8720"),
     "ethernet.phy must be one of LAN8720, IP101, RTL8201, DP83848, KSZ8081, not 8720"),
    (POE.replace("phy_addr = 0", "phy_addr = 99"),
     "ethernet.phy_addr must be the PHY's address, 0 to 31, not 99"),
    (BOARD.replace("deep_sleep = true", "deep_sleep = " + "[" * 5000), "not valid TOML: nested too deeply"),
])
def test_a_board_field_of_the_wrong_type_is_one_line(tmp_path, capsys, text, what):
    path = tmp_path / "x.toml"
    path.write_text(text)
    assert one_line_error(capsys, ["boards", str(path)], "boards") == "%s: %s" % (path, what)


def test_a_board_profile_that_is_not_utf8_is_one_line(tmp_path, capsys):
    path = tmp_path / "x.toml"
    path.write_bytes(b'title = "\xff"\n')
    assert one_line_error(capsys, ["boards", str(path)], "boards") == \
        "%s: not UTF-8 text; save it as UTF-8" % path


# ---- recordings the reader refuses at once


def lines(tmp_path, body, name="rec.jsonl"):
    p = tmp_path / name
    p.write_bytes(body)
    return p


def header_and(*records):
    return "\n".join(json.dumps(x) for x in (HEADER,) + records).encode() + b"\n"


class Endless(io.RawIOBase):
    """A stream that never ends (one line without an end), counting what
    was read from it."""

    def __init__(self, byte=b"["):
        self.byte = byte
        self.read_bytes = 0

    def readable(self):
        return True

    def readinto(self, b):
        b[:] = self.byte * len(b)
        self.read_bytes += len(b)
        return len(b)


@pytest.mark.parametrize("first", [False, True])
def test_an_endless_line_is_refused_once_it_passes_the_limit(first):
    stream = Endless()
    with pytest.raises(RecordingError) as e:
        if first:
            Reader("endless.jsonl", stream=stream)
        else:
            head = io.BytesIO(json.dumps(HEADER).encode() + b"\n")

            class Then(Endless):
                def readinto(self, b):
                    n = head.readinto(b)
                    return n if n else super().readinto(b)

            stream = Then()
            list(Reader("endless.jsonl", stream=stream))
    assert str(e.value) == "endless.jsonl:%d: line longer than %d bytes" % (1 if first else 2, MAX_LINE)
    # Refused after reading the limit and one chunk: never the whole line.
    assert stream.read_bytes <= len(json.dumps(HEADER)) + MAX_LINE + 2 * 512


def test_a_line_of_exactly_the_limit_is_read_and_one_byte_more_is_not(tmp_path):
    note = {"t": 2000, "truth": "bay", "occupied": True, "note": ""}
    pad = MAX_LINE - len(json.dumps(note))
    at_limit = dict(note, note="x" * pad)
    assert len(json.dumps(at_limit)) == MAX_LINE
    assert read_all(write(tmp_path, lines=GOOD + [at_limit]))[1][-1] == at_limit
    p = write(tmp_path, lines=GOOD + [dict(note, note="x" * (pad + 1))])
    with pytest.raises(RecordingError) as e:
        read_all(p)
    assert str(e.value) == "%s:8: line longer than %d bytes" % (p, MAX_LINE)


def test_100000_nested_brackets_are_one_line_on_both_runtimes(tmp_path, capsys, mp_lib):
    p = lines(tmp_path, header_and() + b"[" * 100000 + b"\n")
    assert both_runtimes(capsys, p, mp_lib) == ["%s:2: line longer than %d bytes" % (p, MAX_LINE)] * 2


def test_deep_nesting_within_the_limit_is_one_line_on_both_runtimes(tmp_path, capsys, mp_lib):
    p = lines(tmp_path, header_and(GOOD[0]) + b"[" * 4000 + b"\n")
    assert both_runtimes(capsys, p, mp_lib) == ["%s:3: too large or nested too deeply to parse" % p] * 2


@pytest.mark.parametrize("size", [3000, 60000])
def test_cr_only_line_ends_are_one_line_at_line_1(tmp_path, capsys, size):
    body = header_and(*GOOD * (size // 400)).replace(b"\n", b"\r")
    assert (len(body) > MAX_LINE) == (size > MAX_LINE)
    p = lines(tmp_path, body)
    assert one_line_error(capsys, ["replay", str(p)]) == \
        "%s:1: lines end with CR alone: end them with LF or CR LF" % p


def test_cr_lf_line_ends_are_read(tmp_path):
    p = lines(tmp_path, header_and(*GOOD).replace(b"\n", b"\r\n"))
    assert read_all(p)[1] == GOOD


def test_a_second_header_says_a_header_is_only_allowed_on_line_1(tmp_path, capsys, mp_lib):
    p = lines(tmp_path, header_and(GOOD[0], HEADER, GOOD[1]))
    assert both_runtimes(capsys, p, mp_lib) == \
        ["%s:3: field 'format': a header is only allowed on line 1" % p] * 2


START = "header: field 'start' must be UTC epoch seconds (an integer from 0 to 4294967295)"


@pytest.mark.parametrize("change,lineno,what", [
    ({"start": 10 ** 20}, 1, START),
    ({"start": -100}, 1, START),
    ({"t": 10 ** 20}, 2, "field 't' must be an integer from 0 to 1099511627775 (ms since start)"),
    ({"level_mm": 1e308}, 2, "field 'level_mm' must be a number from -100000 to 100000 (mm)"),
    ({"level_mm": -1e308}, 2, "field 'level_mm' must be a number from -100000 to 100000 (mm)"),
])
def test_absurd_start_time_and_truth_are_refused(tmp_path, capsys, mp_lib, change, lineno, what):
    header = dict(HEADER, **change) if "start" in change else HEADER
    first = dict(GOOD[3], t=0, **change) if "level_mm" in change else dict(GOOD[0], **change)
    p = lines(tmp_path, "\n".join(json.dumps(x) for x in (header, first, GOOD[1])).encode() + b"\n")
    assert both_runtimes(capsys, p, mp_lib) == ["%s:%d: %s" % (p, lineno, what)] * 2


def test_a_truth_level_at_the_limit_scores_finite_json(tmp_path, capsys):
    p = lines(tmp_path, header_and(dict(GOOD[3], t=0, level_mm=100000), *GOOD[:3]))
    assert cli.main(["replay", str(p), "--json"]) == 0
    json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail("%s in --json" % c))


def cli_on_both_runtimes(capsys, path):
    """`citynode replay PATH` on each runtime: the host decompresses a
    `.gz` file for MicroPython."""
    return [one_line_error(capsys, ["replay", str(path), "--runtime", rt]) for rt in replay.RUNTIMES]


def test_a_gzip_file_cut_short_names_its_line_on_both_runtimes(tmp_path, capsys):
    body = header_and(*[dict(GOOD[2], t=1000 * i) for i in range(200)])
    # Stored blocks (level 0): the first 3000 bytes of text follow the
    # gzip header (10 bytes) and the block header (5), so the cut is in a
    # known line.
    data = gzip.compress(body, compresslevel=0, mtime=0)[:10 + 5 + 3000]
    p = tmp_path / "cut.jsonl.gz"
    p.write_bytes(data)
    lineno = body[:3000].count(b"\n") + 1
    assert cli_on_both_runtimes(capsys, p) == [
        "%s:%d: cannot read this line: the compressed file ends early (cut short)" % (p, lineno)] * 2


def test_a_file_that_is_not_gzip_is_one_line_on_both_runtimes(tmp_path, capsys):
    p = lines(tmp_path, header_and(*GOOD), "plain.jsonl.gz")
    assert cli_on_both_runtimes(capsys, p) == ["%s:1: cannot read this line: corrupt compressed data "
                                               "(Error -3 while decompressing data: incorrect header check)"
                                               % p] * 2


def test_absurd_air_is_a_fault_not_a_crash_on_both_runtimes(tmp_path):
    # Three runs of four absurd readings (+1e308 °C, -1e308 °C, 1e308 %RH),
    # each followed by a good one.
    good = {"s": "env", "temp_c": 21.5, "pressure_pa": 101325.0, "humidity_pct": 50.0}
    records = []
    for k, absurd in enumerate(({"temp_c": 1e308}, {"temp_c": -1e308}, {"humidity_pct": 1e308})):
        for i in range(5):
            t = (5 * k + i) * 60000
            records.append(dict(good, t=t, **(absurd if i < 4 else {})))
            records.append({"t": t, "s": "street", "echo_us": [20400] * 7})
    p = lines(tmp_path, header_and(*records))
    cp, mp = (replay.run(p, rt) for rt in replay.RUNTIMES)
    assert cp.messages == mp.messages
    faults = [(t // 1000, e["fault"], e["active"]) for t, e in cp.events if e.get("kind") == "fault"]
    # Raised `fault_after_s` (180 s) after the first absurd reading of a
    # run, cleared by the good one.
    assert faults == [(300 * k + s, "air_out_of_range", s == 180) for k in range(3) for s in (180, 240)]


def test_a_folder_without_recordings_is_one_line(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("no recordings here\n")
    assert one_line_error(capsys, ["replay", str(tmp_path)]) == \
        "%s: no recordings (.jsonl, .jsonl.gz) in this folder" % tmp_path


# ---- synth, heap sizes, the example site


@pytest.mark.parametrize("start", ["99999999999999999999", "-100"])
def test_synth_refuses_a_start_the_reader_would_refuse(tmp_path, capsys, start):
    out = tmp_path / "s.jsonl"
    assert one_line_error(capsys, ["synth", "flood-event", "-o", str(out), "--start", start], "synth") == \
        "start %s: give UTC epoch seconds from 0 to 4294967295" % start
    assert not out.exists()


def test_synth_keeps_an_existing_file_unless_forced(tmp_path, capsys):
    out = tmp_path / "s.jsonl"
    out.write_text("mine\n")
    assert one_line_error(capsys, ["synth", "flood-event", "-o", str(out)], "synth") == \
        "%s exists: choose another name, or --force to overwrite it" % out
    assert out.read_text() == "mine\n"
    assert cli.main(["synth", "flood-event", "-o", str(out), "--force"]) == 0
    assert read_all(out)[0]["generator"]["scenario"] == "flood-event"


@pytest.mark.parametrize("heap", ["banana", "0", "96KB", "100"])
def test_a_bad_heap_size_is_one_line(tmp_path, capsys, heap):
    p = write(tmp_path)
    assert one_line_error(capsys, ["replay", str(p), "--runtime", "micropython", "--heap", heap]) == \
        "heap size '%s': give a size of 1K or more, such as 96K or 2M" % heap


def test_the_example_site_copied_as_the_readme_says_passes_its_dry_run(tmp_path, capsys, monkeypatch):
    site = tmp_path / "sites" / "mine"
    shutil.copytree(ROOT / "sites" / "example", site)
    os.symlink(RECORDINGS, tmp_path / "recordings")
    monkeypatch.chdir(site)
    assert cli.main(["provision", "--site", "site.toml", "--inventory", "inventory.csv", "--dry-run"]) == 0
    assert "dry run: 2 nodes checked" in capsys.readouterr().out
    # Copied anywhere else, the recordings' relative paths are named.
    elsewhere = tmp_path / "a" / "b" / "example"
    shutil.copytree(ROOT / "sites" / "example", elsewhere)
    monkeypatch.chdir(elsewhere)
    err = one_line_error(capsys, ["provision", "--site", "site.toml", "--inventory", "inventory.csv",
                                  "--dry-run"], "provision")
    assert err == "site.toml: virtual.bays.recording: %s: no such file; give a path relative to site.toml" % (
        tmp_path / "a" / "recordings" / "parking-day.jsonl.gz")
