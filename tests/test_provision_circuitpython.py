"""`citynode provision` to CircuitPython boards through their CIRCUITPY
drive, on virtual drives (a folder with CircuitPython's boot_out.txt): the
exact files written, a second run writing nothing, secrets only in
settings.toml (read the same by TOML and by CircuitPython's own reader),
every refusal as its one line, a read-only drive, and a cable pulled after
every single file operation of an update, each followed by the board's
boot.py under the real MicroPython and by another run."""

import errno
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from citynode.board.hal_circuitpython import settings_into
from citynode.config import check_config
from host_tools import mpy, tomlfile
from host_tools.field import boards, build, provision, sites, transport
from tests.conftest import ROOT

FEATHER = boards.load("adafruit-feather-esp32s3")
QTPY = boards.load("adafruit-qtpy-esp32s3")
# What CircuitPython 9.2.1 writes on a Feather ESP32-S3 (main.c: the version
# line, "Board ID:", "UID:"), then boot.py's output.
BOOT_OUT = ("Adafruit CircuitPython 9.2.1 on 2024-11-20; Adafruit Feather ESP32S3 4MB Flash 2MB PSRAM with "
            "ESP32S3\nBoard ID:%s\nUID:7CDFA1E3C2A0\nboot.py output:\n")
# Quotes, backslashes, a tab and letters beyond ASCII: what settings.toml must quote.
BROKER_SECRET = 'Brk "7781" \\ never-shown ü'
WIFI_SECRET = 'Wifi\t"5532"\\ß-never-shown'
WIFI_SSID = 'city "iot" Straße'
WIFI_VAR = "CITYNODE_TEST_CP_WIFI"
FAKE_CA = b"\x30\x03\x02\x01\x01"  # an ASN.1 SEQUENCE, which the site check takes for DER: bytes to copy

SITE = """\
site = "cp"

[broker]
host = "127.0.0.1"
port = 8883
user = "citynode"

[broker.tls]
ca = "ca.der"

[wifi]
ssid = %s
password = "env:%s"

[sensors.bay_ultrasonic]
driver = "jsn-sr04t"

[sensors.water]
driver = "jsn-sr04t"
pings = 7

[sensors.env]
driver = "bme280"
""" % (json.dumps(WIFI_SSID), WIFI_VAR)

INVENTORY = """\
node,board,port,bays,mount_mm,location
street-cp,adafruit-feather-esp32s3,{street},,3500,Canal street
park-cp,adafruit-qtpy-esp32s3,{park},bay-1:ultrasonic bay-2:ultrasonic,,
"""


def new_drive(path, board=FEATHER, boot_out=None):
    """A CIRCUITPY drive as CircuitPython leaves it fresh: boot_out.txt, a
    hello code.py, an empty lib/."""
    path.mkdir(parents=True)
    (path / "boot_out.txt").write_text(boot_out or BOOT_OUT % board.board_id)
    (path / "code.py").write_text('print("Hello World!")\n')
    (path / "lib").mkdir()
    return path


def files_of(folder, skip=()):
    """{relative path: bytes} of every file under `folder`."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.relative_to(folder).as_posix().startswith(skip)}


@pytest.fixture
def site(tmp_path, monkeypatch):
    """Site file, secrets file, CA, inventory and two drives in tmp_path."""
    monkeypatch.setenv(WIFI_VAR, WIFI_SECRET)
    (tmp_path / "site.toml").write_text(SITE)
    (tmp_path / "site.secrets.toml").write_text("[broker]\npassword = %s\n" % json.dumps(BROKER_SECRET))
    (tmp_path / "ca.der").write_bytes(FAKE_CA)
    street = new_drive(tmp_path / "street-drive")
    qtpy = BOOT_OUT.replace("Adafruit Feather ESP32S3", "Adafruit QT Py ESP32-S3") % QTPY.board_id
    park = new_drive(tmp_path / "park-drive", QTPY, qtpy)
    inv = tmp_path / "inv.csv"
    inv.write_text(INVENTORY.format(street=street, park=park))
    return {"dir": tmp_path, "site": tmp_path / "site.toml", "inv": inv, "street": street, "park": park}


def run_cli(*args):
    env = dict(os.environ, **{WIFI_VAR: WIFI_SECRET})
    return subprocess.run([sys.executable, "-m", "host_tools.cli", "provision", *map(str, args)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def expected_files(s, node):
    """{drive path: bytes} that provisioning must write for `node`, made here
    from the sources: CircuitPython's entry files, the package and the two
    libraries as .py, the CA, the checked config less its secrets, and the
    secrets in settings.toml."""
    site = sites.load_site(s["site"])
    cfg = sites.build_config(site, next(r for r in sites.load_inventory(s["inv"], site) if r.node == node))
    files = {"code.py": (ROOT / "firmware/circuitpython/code.py").read_bytes(),
             "boot.py": (ROOT / "firmware/circuitpython/boot.py").read_bytes(), "ca.der": FAKE_CA}
    for top in (ROOT / "firmware/citynode", *(Path(mpy.library_path()) / n for n in build.LIBRARIES)):
        for py in top.rglob("*.py"):
            if (py.parent / "__init__.py").exists():
                prefix = "" if top.name == "citynode" else "lib/"
                files[prefix + py.relative_to(top.parent).as_posix()] = py.read_bytes()
    settings = {"CIRCUITPY_WIFI_SSID": cfg["network"]["ssid"], "CIRCUITPY_WIFI_PASSWORD": WIFI_SECRET,
                "CITYNODE_BROKER_PASSWORD": BROKER_SECRET}
    cfg["network"] = {"kind": "wifi"}
    del cfg["broker"]["password"]
    files["config.json"] = build.config_text(cfg).encode()
    files["settings.toml"] = build.settings_text(settings).encode("utf-8")
    return files


def circuitpython_getenv(text, key):
    """What CircuitPython 9's os.getenv(key) gives for settings.toml `text`
    (shared-module/os/getenv.c, strings only, done again here): the first
    line `key = "..."` before any [table], escapes \\b \\r \\n \\t \\v \\f
    \\uXXXX \\UXXXXXXXX, any other escaped byte as itself, bytes as they are."""
    simple = {ord("b"): 8, ord("r"): 13, ord("n"): 10, ord("t"): 9, ord("v"): 11, ord("f"): 12}
    for line in text.encode("utf-8").split(b"\n"):
        if line.lstrip().startswith(b"["):
            return None
        name, eq, rest = line.partition(b"=")
        if not eq or name.strip() != key.encode():
            continue
        rest = rest.lstrip(b" \t")
        assert rest[:1] == b'"', line
        out, i = bytearray(), 1
        while True:
            c = rest[i]
            i += 1
            if c == ord('"'):
                tail = rest[i:].strip()
                assert not tail or tail.startswith(b"#"), line
                return out.decode("utf-8")
            if c == ord("\\"):
                c = rest[i]
                i += 1
                if c in b"uU":
                    n = 4 if c == ord("u") else 8
                    out += chr(int(rest[i:i + n], 16)).encode("utf-8")
                    i += n
                    continue
                c = simple.get(c, c)
            out.append(c)
    return None


# ---- settings.toml


@pytest.mark.parametrize("value", [
    "plain", 'say "hi"', "back\\slash\\", "tab\tand\nnewline\r", "\x00\x1f\x7f", "Straße ü €",
    "😀 beyond BMP", "# not a comment", "= sign", "'single'", "",
])
def test_settings_values_read_the_same_in_toml_and_in_circuitpython(value):
    text = build.settings_text({"CIRCUITPY_WIFI_PASSWORD": value, "CITYNODE_BROKER_PASSWORD": "x"})
    assert tomllib.loads(text) == {"CIRCUITPY_WIFI_PASSWORD": value, "CITYNODE_BROKER_PASSWORD": "x"}
    assert circuitpython_getenv(text, "CIRCUITPY_WIFI_PASSWORD") == value
    assert circuitpython_getenv(text, "CITYNODE_BROKER_PASSWORD") == "x"
    assert text.count("\n") == 3  # a comment and one line per key: the value never breaks a line


def test_the_secrets_move_from_config_json_to_settings_toml(site, monkeypatch):
    s = sites.load_site(site["site"])
    row = sites.load_inventory(site["inv"], s)[0]
    cfg = sites.build_config(s, row)
    assert cfg["hal"]["kind"] == "circuitpython"
    config, settings = build.drive_config(cfg)
    assert settings == {"CIRCUITPY_WIFI_SSID": WIFI_SSID, "CIRCUITPY_WIFI_PASSWORD": WIFI_SECRET,
                        "CITYNODE_BROKER_PASSWORD": BROKER_SECRET}
    assert config["network"] == {"kind": "wifi"}
    assert config["broker"] == {"host": "127.0.0.1", "port": 8883, "keepalive": 60, "user": "citynode",
                                "tls": {"ca": "/ca.der"}}
    assert cfg["broker"]["password"] == BROKER_SECRET  # the checked config is left as it was
    # On the board, code.py puts them back (the firmware's own settings_into) before the checks.
    settings_text = build.settings_text(settings)
    back = json.loads(json.dumps(config))
    monkeypatch.setattr(os, "getenv", lambda key, default=None: circuitpython_getenv(settings_text, key))
    settings_into(back)
    assert back == cfg
    check_config(back)


def test_the_workspace_keeps_settings_private(site):
    s = sites.load_site(site["site"])
    row = sites.load_inventory(site["inv"], s)[0]
    workspace = build.Workspace(s)
    try:
        files = build.drive_files(row, s, workspace, sites.build_config(s, row))
        assert workspace.dir.stat().st_mode & 0o777 == 0o700
        assert Path(files["/settings.toml"]).stat().st_mode & 0o777 == 0o600
        assert Path(files["/config.json"]).stat().st_mode & 0o777 == 0o600
    finally:
        workspace.close()
    assert not workspace.dir.exists()


# ---- a batch on two drives


def test_first_run_writes_exactly_the_node_files_and_a_second_run_nothing(site):
    first = run_cli("--site", site["site"], "--inventory", site["inv"])
    assert first.returncode == 0, first.stdout + first.stderr
    lines = first.stdout.splitlines()
    assert "street-cp: CircuitPython 9.2.1 on %s on %s" % (FEATHER.board_id, site["street"]) in lines
    assert "street-cp: press the board's RESET button: boot.py, then code.py start the node" in lines
    for node, drive in (("street-cp", site["street"]), ("park-cp", site["park"])):
        want = expected_files(site, node)
        got = files_of(drive)
        assert sorted(got) == sorted(set(want) | {"boot_out.txt"})  # nothing else, no staging left
        assert not (drive / transport.UPDATE_FOLDER).exists()
        for path, data in want.items():
            assert got[path] == data, path
        assert "%s: writing %d files (" % (node, len(want)) in first.stdout
    got = files_of(site["street"])
    assert "citynode/board/node.py" in got and "lib/adafruit_bus_device/i2c_device.py" in got
    assert not [p for p in got if p.endswith(".mpy")]  # MicroPython's .mpy does not load on CircuitPython
    assert not (site["street"] / "main.py").exists()  # MicroPython's entry files stay off
    settings = tomllib.loads(got["settings.toml"].decode("utf-8"))
    assert settings == {"CIRCUITPY_WIFI_SSID": WIFI_SSID, "CIRCUITPY_WIFI_PASSWORD": WIFI_SECRET,
                        "CITYNODE_BROKER_PASSWORD": BROKER_SECRET}
    config = json.loads(got["config.json"])
    assert config["network"] == {"kind": "wifi"} and "password" not in config["broker"]
    assert config["hal"]["pins"] == {"street": {"trig": "D5", "echo": "D6"}}
    state = json.loads((site["dir"] / "inv.provision.json").read_text())
    assert {n: e["result"] for n, e in state["nodes"].items()} == {"street-cp": "ok", "park-cp": "ok"}
    assert state["nodes"]["street-cp"]["port"] == str(site["street"])

    before = {d: {p: os.stat(d / p).st_mtime_ns for p in files_of(d)} for d in (site["street"], site["park"])}
    second = run_cli("--site", site["site"], "--inventory", site["inv"])
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.count("up to date: nothing to write") == 2
    assert "writing" not in second.stdout and "removing" not in second.stdout
    table = second.stdout.splitlines()
    head = next(i for i, ln in enumerate(table) if ln.startswith("NODE "))
    assert [ln.split()[3] for ln in table[head + 1:head + 3]] == ["0", "0"]
    assert {d: {p: os.stat(d / p).st_mtime_ns for p in files_of(d)} for d in before} == before
    for p in (first, second):
        for secret in (BROKER_SECRET, WIFI_SECRET):
            assert secret not in p.stdout + p.stderr and tomlfile.quote(secret) not in p.stdout + p.stderr
    state_text = (site["dir"] / "inv.provision.json").read_text()
    assert BROKER_SECRET not in state_text and WIFI_SECRET not in state_text


def test_only_what_changed_is_written_and_stale_files_go(site):
    assert run_cli("--site", site["site"], "--inventory", site["inv"], "--only", "street-cp").returncode == 0
    drive = site["street"]
    (drive / "citynode/sense/flood.py").write_text("raise ImportError('a stale copy')\n")
    (drive / "citynode/sense/old_part.py").write_text("")
    (drive / "citynode/board/node.mpy").write_bytes(b"M\x06")
    (drive / "lib/adafruit_bme280/extra.py").write_text("")
    (drive / "lib/other_library").mkdir()
    (drive / "lib/other_library/mine.py").write_text("kept\n")
    (drive / "notes.txt").write_text("kept\n")
    site["inv"].write_text(site["inv"].read_text().replace("3500", "3400"))
    p = run_cli("--site", site["site"], "--inventory", site["inv"], "--only", "street-cp")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "street-cp: writing 2 files (" in p.stdout
    assert ("street-cp: removing 3 stale files: /citynode/board/node.mpy /citynode/sense/old_part.py "
            "/lib/adafruit_bme280/extra.py") in p.stdout
    want = expected_files(site, "street-cp")
    got = files_of(drive)
    assert {k: v for k, v in got.items() if k in want} == want
    assert sorted(set(got) - set(want)) == ["boot_out.txt", "lib/other_library/mine.py", "notes.txt"]
    assert json.loads(got["config.json"])["sensors"][0]["mount_mm"] == 3400


def test_dry_run_touches_no_drive_and_hides_secrets(site):
    before = files_of(site["dir"])
    p = run_cli("--site", site["site"], "--inventory", site["inv"], "--dry-run")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1] == "dry run: 2 nodes checked, no board touched"
    assert BROKER_SECRET not in p.stdout and WIFI_SECRET not in p.stdout and "***" in p.stdout
    assert files_of(site["dir"]) == before


def test_a_failed_drive_is_resumed_alone(site):
    p = run_cli("--site", site["site"], "--inventory", site["inv"])
    assert p.returncode == 0
    park = files_of(site["park"])
    # A file where the street drive's citynode/ folder must be: its update fails moving files in.
    shutil.rmtree(site["street"] / "citynode")
    (site["street"] / "citynode").write_text("not a folder\n")
    p = run_cli("--site", site["site"], "--inventory", site["inv"])
    assert p.returncode == 1, p.stdout + p.stderr
    assert ("street-cp: FAILED: writing the update on %s failed: Not a directory; the drive keeps the old "
            "files or gets the whole new set" % site["street"]) in p.stdout
    assert "1 of 2 nodes failed (street-cp); fix them, then: citynode provision ... --resume" in p.stdout
    (site["street"] / "citynode").unlink()
    p = run_cli("--site", site["site"], "--inventory", site["inv"], "--resume")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "park-cp" not in p.stdout
    assert "street-cp: a cut-off update was found and finished, as the board's boot.py would" in p.stdout
    assert files_of(site["park"]) == park
    want = expected_files(site, "street-cp")
    assert {k: v for k, v in files_of(site["street"]).items() if k in want} == want


# ---- refusals


@pytest.mark.parametrize("case", ["no-boot-out", "circuitpython-8", "other-board", "garbled", "not-a-folder",
                                  "no-label", "empty-port"])
def test_every_refusal_is_one_exact_line(site, case):
    drive = site["street"]
    port = str(drive)
    if case == "no-boot-out":
        (drive / "boot_out.txt").unlink()
        line = ("port: %s has no boot_out.txt, so it is not a CircuitPython drive (CircuitPython writes it "
                "when it starts); give the board's CIRCUITPY drive" % drive)
    elif case == "circuitpython-8":
        (drive / "boot_out.txt").write_text(BOOT_OUT.replace("9.2.1 on 2024-11-20", "8.2.10 on 2024-02-14")
                                            % FEATHER.board_id)
        line = ("port: %s runs CircuitPython 8.2.10 (boot_out.txt): the firmware needs CircuitPython 9 or "
                "newer; install it from circuitpython.org/board/%s" % (drive, FEATHER.board_id))
    elif case == "other-board":
        (drive / "boot_out.txt").write_text(BOOT_OUT % QTPY.board_id)
        line = ("port: %s is Board ID %s (boot_out.txt), but profile adafruit-feather-esp32s3 is %s; fix the "
                "board or the port in the inventory" % (drive, QTPY.board_id, FEATHER.board_id))
    elif case == "garbled":
        (drive / "boot_out.txt").write_text("MicroPython v1.24.1\n")
        line = ("port: %s/boot_out.txt does not start with CircuitPython's version and Board ID lines "
                "('MicroPython v1.24.1'); press the board's RESET button so CircuitPython writes it anew"
                % drive)
    elif case == "not-a-folder":
        port = "/dev/ttyUSB9"
        line = ("port: /dev/ttyUSB9 is not a folder: give the board's mounted CIRCUITPY drive, as its "
                "folder, CIRCUITPY or label:NAME (the inventory's port column or --port)")
    elif case == "no-label":
        port = "label:NO_SUCH_DRIVE"
        line = ("port: no drive labelled NO_SUCH_DRIVE is mounted: plug in the board (running "
                "CircuitPython) and let the computer mount its drive, or give the drive's folder (the "
                "inventory's port column or --port)")
    else:
        port = ""
        line = ("port: empty; fill in the board's CIRCUITPY drive (its folder, CIRCUITPY or label:NAME) or "
                "pass --port street-cp=PORT")
    site["inv"].write_text(INVENTORY.format(street=port, park=site["park"]))
    before = files_of(site["dir"])
    p = run_cli("--site", site["site"], "--inventory", site["inv"])
    assert p.returncode == 2
    assert p.stderr.splitlines() == ["citynode provision: error: %s:2: %s" % (site["inv"], line)]
    assert p.stdout == ""
    assert files_of(site["dir"]) == before  # no board touched, no state written


# ---- a drive found by its volume label


@pytest.fixture
def labels(tmp_path, monkeypatch):
    """A fake /dev/disk/by-label, mount table and /Volumes: {"add": add(label, device, *mount points)}."""
    by_label, dev = tmp_path / "by-label", tmp_path / "dev"
    by_label.mkdir()
    dev.mkdir()
    table = tmp_path / "mounts"
    table.write_text("proc /proc proc rw 0 0\n")
    monkeypatch.setattr(transport, "BY_LABEL", str(by_label))
    monkeypatch.setattr(transport, "MOUNT_TABLE", str(table))
    monkeypatch.setattr(transport, "VOLUMES", str(tmp_path / "no-volumes"))

    def add(label, device, *points):
        (dev / device).touch()
        name = "".join(c if c.isalnum() or c in "-_." else "\\x%02x" % ord(c) for c in label)
        (by_label / name).symlink_to(Path("..", "dev", device))
        for point in points:
            escaped = str(point).replace(" ", "\\040")
            with table.open("a") as f:
                f.write("%s %s vfat rw,nosuid,nodev 0 0\n" % (dev / device, escaped))

    return {"add": add, "dev": dev}


def test_a_drive_is_found_by_its_label(site, labels):
    labels["add"]("CIRCUITPY", "sdb1", site["street"])
    assert transport.drive_folder("CIRCUITPY") == site["street"]
    spaced = site["dir"] / "my drive"
    spaced.mkdir()
    labels["add"]("MY DRIVE", "sdc1", spaced)
    assert transport.drive_folder("label:MY DRIVE") == spaced
    # The batch resolves it before any board is touched, and shows and keeps the folder.
    site["inv"].write_text(INVENTORY.format(street="CIRCUITPY", park=site["park"]))
    out = []
    status, summary = provision.run(site["site"], site["inv"], only=["street-cp"], out=_Lines(out))
    assert status == 0, out
    assert summary[0]["port"] == str(site["street"]) and summary[0]["uploaded"] > 0


def test_none_or_several_drives_with_the_label_are_one_line_each(site, labels):
    with pytest.raises(transport.BoardError) as e:
        transport.drive_folder("CIRCUITPY", provision.PORT_HINT)
    assert str(e.value) == ("no drive labelled CIRCUITPY is mounted: plug in the board (running "
                            "CircuitPython) and let the computer mount its drive, or give the drive's folder "
                            "(the inventory's port column or --port)")
    labels["add"]("CIRCUITPY", "sdb1")
    with pytest.raises(transport.BoardError) as e:
        transport.drive_folder("CIRCUITPY", provision.PORT_HINT)
    device = labels["dev"] / "sdb1"
    assert str(e.value) == ("the drive labelled CIRCUITPY (%s) is not mounted: mount it (udisksctl mount -b "
                            "%s) or give its folder (the inventory's port column or --port)"
                            % (device, device))
    other = site["dir"] / "media" / "CIRCUITPY"  # a second board's drive, mounted by its name
    other.mkdir(parents=True)
    with (site["dir"] / "mounts").open("a") as f:
        f.write("/dev/sdc1 %s vfat rw 0 0\n" % other)
    labels["add"]("CIRCUITPY2", "sdb2")  # unrelated
    (site["dir"] / "by-label" / "CIRCUITPY").unlink()
    labels["add"]("CIRCUITPY", "sdb1", site["street"])
    with pytest.raises(transport.BoardError) as e:
        transport.drive_folder("CIRCUITPY", provision.PORT_HINT)
    assert str(e.value) == ("2 drives labelled CIRCUITPY are mounted (%s, %s): give the board's own folder "
                            "instead (the inventory's port column or --port)" % tuple(sorted([str(other),
                                                                                              str(site["street"])])))


class _Lines:
    """A text stream collecting what provision.run prints."""

    def __init__(self, out):
        self.out = out

    def write(self, text):
        self.out.append(text)

    def flush(self):
        pass


# ---- a read-only drive


def _read_only(drive, argv):
    """Run `argv` with `drive` mounted read-only. As root, chmod does not stop
    root from writing, so the drive is bind-mounted read-only onto itself in
    a private mount namespace (unshare): a read-only mount, as the host has
    when a CircuitPython board's boot.py took its filesystem; otherwise the
    folder is made read-only with chmod."""
    if os.geteuid() == 0:
        script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
        argv = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, str(drive), *argv]
        return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
                              env=dict(os.environ, **{WIFI_VAR: WIFI_SECRET}))
    modes = {p: p.stat().st_mode for p in [drive, *drive.rglob("*")] if p.is_dir()}
    for p in modes:
        p.chmod(0o555)
    try:
        return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
                              env=dict(os.environ, **{WIFI_VAR: WIFI_SECRET}))
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


def test_a_read_only_drive_is_one_line_and_nothing_is_written(site):
    assert run_cli("--site", site["site"], "--inventory", site["inv"]).returncode == 0
    drive = site["street"]
    site["inv"].write_text(site["inv"].read_text().replace("3500", "3400"))  # something to write
    before = files_of(drive)
    p = _read_only(drive, [sys.executable, "-m", "host_tools.cli", "provision", "--site", site["site"],
                           "--inventory", site["inv"]])
    assert p.returncode == 2, p.stdout + p.stderr
    assert p.stderr.splitlines() == [
        "citynode provision: error: %s:2: port: %s" % (site["inv"], transport.read_only(drive))]
    assert transport.read_only(drive) == (
        "%s is mounted read-only: the board's boot.py gave its filesystem to the code; to give it to USB, "
        "press RESET, then hold BOOT from when the status LED blinks yellow until the drive shows up again "
        "(boot.py leaves it writable over USB until the next reset), then run again" % drive)
    assert p.stdout == ""
    assert files_of(drive) == before
    # A drive that turns read-only under a write: the same line, and nothing of the update.
    code = ("import sys; from pathlib import Path; from host_tools.field import transport\n"
            "code = {'/code.py': Path('firmware/circuitpython/code.py')}\n"
            "try:\n"
            "    transport.Drive(sys.argv[1]).put(code, ['/code.py'])\n"
            "except transport.BoardError as e:\n"
            "    print(e)\n")
    p = _read_only(drive, [sys.executable, "-c", code, str(drive)])
    assert p.stdout.strip() == transport.read_only(drive), p.stderr
    assert files_of(drive) == before


# ---- a cable pulled after every file operation


class Cut(Exception):
    """The cable, pulled."""


def _fat_recovery(drive, boot_py, cut_after=None):
    """Start the board as CircuitPython would, under the real MicroPython
    with the drive as its folder: the drive's boot file runs its
    finish_update, with renames as on FAT (no rename over a file) and, with
    `cut_after`, the power cut after that many changes. Returns its last
    output line."""
    source = transport.update_source(boot_py)
    script = """\
import os
class FatOS:
    def __init__(self, cut):
        self.cut = cut
        self.done = 0
    def step(self):
        self.done += 1
        if self.done == self.cut:
            raise KeyboardInterrupt
    def stat(self, p):
        return os.stat(p)
    def listdir(self, p):
        return os.listdir(p)
    def mkdir(self, p):
        os.mkdir(p)
        self.step()
    def rmdir(self, p):
        os.rmdir(p)
        self.step()
    def remove(self, p):
        os.remove(p)
        self.step()
    def rename(self, a, b):
        try:
            os.stat(b)
        except OSError:
            os.rename(a, b)
            self.step()
            return
        raise OSError(17)
%s
try:
    print(finish_update("", FatOS(%r)))
except KeyboardInterrupt:
    print("cut")
""" % (source, cut_after)
    p = subprocess.run([mpy.micropython_binary(), "-c", script], cwd=drive, capture_output=True, text=True,
                       timeout=60, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout.strip().splitlines()[-1]


def _boot(drive):
    """What the board does at its next start: the boot file that runs
    (boot.py), if it has finish_update. Returns its result, or "no agent"."""
    boot_py = drive / "boot.py"
    if not boot_py.is_file() or transport.update_source(boot_py) is None:
        return "no agent"
    return _fat_recovery(drive, boot_py)


class _Cable:
    """The drive's cable: counts the update's file operations (each ends in
    _DriveFS._synced) and, with `at` set, is pulled right after operation
    `at`; every operation after that fails, as on a drive that is gone."""

    def __init__(self, monkeypatch):
        self.at = None
        self.count = 0
        self.pulled = False
        drive_fs = transport._DriveFS
        original = drive_fs._synced

        def synced(fs, *paths):
            original(fs, *paths)
            self.count += 1
            if self.count == self.at:
                self.pulled = True
                raise OSError(errno.EIO, "the cable was pulled")

        monkeypatch.setattr(drive_fs, "_synced", synced)
        for name in ("mkdir", "rmdir", "remove", "rename", "write"):
            monkeypatch.setattr(drive_fs, name, self._gone(getattr(drive_fs, name)))
        for name in ("stat", "listdir"):
            monkeypatch.setattr(drive_fs, name, staticmethod(self._gone(getattr(drive_fs, name))))

    def _gone(self, operation):
        def call(*args):
            if self.pulled:
                raise OSError(errno.EIO, "the cable was pulled")
            return operation(*args)
        return call

    def pull_at(self, at):
        self.at, self.count, self.pulled = at, 0, False


@pytest.fixture
def node_setup(site):
    s = sites.load_site(site["site"])
    row = next(r for r in sites.load_inventory(site["inv"], s) if r.node == "street-cp")
    workspace = build.Workspace(s)
    yield s, row, workspace
    workspace.close()


def _provision(setup, drive, cfg=None):
    s, row, workspace = setup
    provision.provision_node(row, str(drive), cfg or sites.build_config(s, row), s, workspace,
                             say=lambda _text: None)


@pytest.mark.parametrize("start", ["fresh drive", "older release"])
def test_a_cable_pulled_after_any_step_leaves_the_old_set_or_the_new(tmp_path, node_setup, monkeypatch,
                                                                      start):
    s, row, _workspace = node_setup
    old = tmp_path / "old"
    new_drive(old)
    cfg = sites.build_config(s, row)
    if start == "older release":  # a drive provisioned by an older release, with another mount height
        older = dict(cfg, sensors=[dict(cfg["sensors"][0], mount_mm=3000)] + cfg["sensors"][1:])
        _provision(node_setup, old, older)
        with (old / "boot.py").open("a") as f:
            f.write("# an older release\n")
        with (old / "citynode/sense/flood.py").open("a") as f:
            f.write("# an older release\n")
        (old / "citynode/sense/retired.py").write_text("# gone in the new release\n")
        (old / "lib/adafruit_bme280/advanced.py").unlink()
    old_files = files_of(old)
    clean = tmp_path / "clean"
    shutil.copytree(old, clean)
    cable = _Cable(monkeypatch)
    _provision(node_setup, clean, cfg)
    new_files = files_of(clean)
    steps = cable.count
    assert new_files != old_files and steps > 5
    outcomes = set()
    for k in range(1, steps + 1):
        drive = tmp_path / ("cut-%d" % k)
        shutil.copytree(old, drive)
        cable.pull_at(k)
        with pytest.raises(transport.BoardError) as e:
            _provision(node_setup, drive, cfg)
        assert "the cable was pulled" in str(e.value) and cable.count == k
        cable.pull_at(None)
        # The next start: boot.py settles the update (or there is no citynode boot.py yet).
        board = tmp_path / ("boot-%d" % k)
        shutil.copytree(drive, board)
        done = _boot(board)
        rest = files_of(board, skip=(transport.UPDATE_FOLDER + "/",))
        if done == "no agent":
            assert rest == old_files, k  # the old set, whole; the staged files wait for the next run
            # The same update settled by the new boot.py's function all the same: old or new too.
            settled = tmp_path / ("settled-%d" % k)
            shutil.copytree(drive, settled)
            _fat_recovery(settled, transport.BOOT_PY)
            assert files_of(settled) in (old_files, new_files), k
        else:
            assert not (board / transport.UPDATE_FOLDER).exists(), k
            assert rest in (old_files, new_files), k
        outcomes.add("%s, %s" % (done, "old" if rest == old_files else "new"))
        # Then a run of provision, after that start or right after the cut: the new set, whole.
        for d in (board, drive):
            _provision(node_setup, d, cfg)
            assert files_of(d) == new_files, (k, d.name)
    # Cut before the journal: dropped (or no citynode boot.py to run it yet); after it: finished; after
    # the journal's removal: the empty staging folders dropped; after their removal: nothing left to do.
    first = "no agent, old" if start == "fresh drive" else "dropped, old"
    assert outcomes == {first, "finished, new", "dropped, new", "None, new"}


def test_a_power_cut_while_boot_py_finishes_the_update(tmp_path, node_setup, monkeypatch):
    """The cable pulled right after the journal is complete, then the power
    cut after every single step of boot.py's own recovery: the next start
    finishes it, or (cut while boot.py itself is being replaced, the last
    step) the board starts the whole new set but boot.py, and the next run
    puts that back."""
    s, row, _workspace = node_setup
    old = tmp_path / "old"
    new_drive(old)
    cfg = sites.build_config(s, row)
    _provision(node_setup, old, dict(cfg, health_s=120))
    with (old / "boot.py").open("a") as f:
        f.write("# an older release\n")
    clean = tmp_path / "clean"
    shutil.copytree(old, clean)
    _provision(node_setup, clean, cfg)
    new_files = files_of(clean)
    # The journal is committed at the operation that renames journal.tmp.
    drive = tmp_path / "cut"
    shutil.copytree(old, drive)
    original = transport._DriveFS.rename

    def rename(fs, src, dst):
        original(fs, src, dst)
        if dst.endswith("/" + transport.UPDATE_FOLDER + "/journal"):
            raise OSError(errno.EIO, "the cable was pulled")

    monkeypatch.setattr(transport._DriveFS, "rename", rename)
    with pytest.raises(transport.BoardError):
        _provision(node_setup, drive, cfg)
    monkeypatch.setattr(transport._DriveFS, "rename", original)
    assert (drive / transport.UPDATE_FOLDER / "journal").is_file()
    assert (drive / "boot.py").read_bytes() != new_files["boot.py"]  # the older boot.py settles it
    j = 1
    while True:
        board = tmp_path / ("power-%d" % j)
        shutil.copytree(drive, board)
        if _fat_recovery(board, board / "boot.py", cut_after=j) != "cut":
            assert files_of(board) == new_files
            break
        done = _boot(board)
        if done == "no agent":  # cut between removing the old boot.py and renaming the new one
            rest = files_of(board, skip=(transport.UPDATE_FOLDER + "/",))
            assert rest == {k: v for k, v in new_files.items() if k != "boot.py"}, j
        else:
            assert done in ("finished", "dropped", "None") and files_of(board) == new_files, (j, done)
        _provision(node_setup, board, cfg)
        assert files_of(board) == new_files, j
        j += 1
    assert j > 5
