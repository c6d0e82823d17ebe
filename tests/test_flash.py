"""`citynode flash`: images built with esptool's own image code and checked
for real, plans, error lines; real esptool against a missing port, a busy
port and a silent pseudo-terminal; a thin fake standing in for esptool's
command functions only where a chip in its ROM bootloader would answer."""

import errno
import grp
import hashlib
import inspect
import io
import os
import pty
import random
import struct
import tty

import esptool.cmds
import pytest
import serial
from esp_pylib.logger import log
from esptool import bin_image
from esptool.targets import CHIP_DEFS
from esptool.util import FatalError
from rich.console import Console
from serial.tools.list_ports_common import ListPortInfo

from host_tools.cli import main as cli
from host_tools.field import boards, flash, transport
from host_tools.field.esptool_log import showing_esptool
from tests.conftest import ROOT

BOARD_OF = {"esp32": "esp32-devkitc", "esp32s3": "esp32s3-devkitc-1", "esp32c3": "esp32c3-devkitm-1"}
IMAGE_CLASS = {"esp32": bin_image.ESP32FirmwareImage, "esp32s3": bin_image.ESP32S3FirmwareImage,
               "esp32c3": bin_image.ESP32C3FirmwareImage}
APP_AT = 0x10000
MAC = (0xA4, 0xCF, 0x12, 0xA1, 0xB2, 0xC3)


# ---- images, made with esptool's image classes and merge_bin as MicroPython's build does

def esp_image(chip, app, project=(b"micropython", b"v1.24.1")):
    """An ESP image for `chip`: an app (a DROM segment opening with an
    esp_app_desc_t naming `project`, and IRAM code) or a bootloader (RAM
    segments only)."""
    image = IMAGE_CLASS[chip]()
    rom = image.ROM_LOADER
    ram = {name: start for start, _, name in rom.MEMORY_MAP if name in ("IRAM", "DRAM")}
    image.entrypoint = ram["IRAM"]
    if app:
        name, version = project
        desc = struct.pack("<IIII32s32s", 0xABCD5432, 0, 0, 0, version, name).ljust(256, b"\0")
        image.segments = [bin_image.ELFSection(b".flash.appdesc", rom.DROM_MAP_START + 0x20, desc, 0),
                          bin_image.ELFSection(b".iram0.text", ram["IRAM"], bytes(range(256)) * 4, 0)]
    else:
        image.segments = [bin_image.ELFSection(b".dram0.data", ram["DRAM"], bytes(64), 0),
                          bin_image.ELFSection(b".iram0.text", ram["IRAM"], bytes(range(128)), 0)]
    return image.save(None)


# (type, subtype, offset, size, label) of ESP-IDF partition tables: MicroPython's
# layout, and CircuitPython's for 4 MB of flash (its ports/espressif/esp-idf-config/
# partitions-4MB.csv: two OTA apps, the UF2 bootloader as the factory app, a FAT).
MICROPYTHON_TABLE = [(1, 2, 0x9000, 0x6000, b"nvs"), (1, 1, 0xF000, 0x1000, b"phy_init"),
                     (0, 0, APP_AT, 0x1F0000, b"factory"), (1, 0x81, 0x200000, 0x200000, b"vfs")]
CIRCUITPYTHON_TABLE = [(1, 2, 0x9000, 0x5000, b"nvs"), (1, 0, 0xE000, 0x2000, b"otadata"),
                       (0, 0x10, APP_AT, 0x160000, b"ota_0"), (0, 0x11, 0x170000, 0x160000, b"ota_1"),
                       (0, 0, 0x2D0000, 0x40000, b"uf2"), (1, 0x81, 0x310000, 0xF0000, b"user_fs")]
CIRCUITPYTHON = (b"circuitpython", b"9.2.1")


def partition_table(rows=MICROPYTHON_TABLE):
    """ESP-IDF's binary partition table of `rows`, with its MD5 entry."""
    body = b"".join(struct.pack("<2sBBII16sI", b"\xaa\x50", *row, 0) for row in rows)
    return (body + b"\xeb\xeb" + b"\xff" * 14 + hashlib.md5(body).digest()).ljust(0xC00, b"\xff")


def firmware(tmp_path, chip, name="firmware.bin", table=None, project=None):
    """A MicroPython-shaped firmware .bin for `chip`: bootloader, partition
    table and app merged from the chip's image offset on. CircuitPython's
    build joins the same three parts at the same offsets."""
    path = tmp_path / name
    offset = boards.FLASH_OFFSETS[chip]
    app = esp_image(chip, app=True) if project is None else esp_image(chip, app=True, project=project)
    esptool.cmds.merge_bin([(offset, esp_image(chip, app=False)),
                            (flash.PARTITION_TABLE_OFFSET, partition_table() if table is None else table),
                            (APP_AT, app)],
                           chip, output=str(path), target_offset=offset)
    return path


def circuitpython_bin(tmp_path, name="circuitpython.bin"):
    """A CircuitPython-shaped firmware .bin for the ESP32-S3: its partition
    table, an app whose description names circuitpython 9.2.1."""
    return firmware(tmp_path, "esp32s3", name, table=partition_table(CIRCUITPYTHON_TABLE),
                    project=CIRCUITPYTHON)


@pytest.mark.parametrize("chip", sorted(BOARD_OF))
def test_image_check_accepts_micropython_firmware(tmp_path, chip):
    path = firmware(tmp_path, chip)
    image = flash.check_image(path, boards.load(BOARD_OF[chip]))
    assert (image.chip, image.app_offset, image.app) == (
        CHIP_DEFS[chip].CHIP_NAME, APP_AT, "micropython v1.24.1")
    assert image.data == path.read_bytes()
    assert image.describe() == "%s: %s image, %s bytes: bootloader, partition table at 0x8000, app " \
        "(micropython v1.24.1) at 0x10000" % (path, CHIP_DEFS[chip].CHIP_NAME, format(image.size, ","))


def _flip(data, at):
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


BAD_IMAGES = {
    "empty": (lambda tmp: b"", "empty file, not a MicroPython firmware"),
    "random bytes": (lambda tmp: random.Random(1).randbytes(70000),
                     "the bootloader (file offset 0x0) is not an ESP image: it starts with 0xf5, "
                     "an ESP image with 0xe9"),
    "an S3 firmware": (lambda tmp: firmware(tmp, "esp32s3", "s3.bin").read_bytes(),
                       "the bootloader (file offset 0x0) is for the ESP32-S3, but board esp32-devkitc has "
                       "an ESP32: use a MicroPython build for the ESP32"),
    "a C3 firmware": (lambda tmp: firmware(tmp, "esp32c3", "c3.bin").read_bytes(),
                      "is for the ESP32-C3, but board esp32-devkitc has an ESP32"),
    "an app alone": (lambda tmp: esp_image("esp32", app=True),
                     "an app image (it runs from flash), not a complete MicroPython firmware"),
    "a bootloader alone": (lambda tmp: esp_image("esp32", app=False), "only a bootloader"),
    "a damaged bootloader": (lambda tmp: _flip(firmware(tmp, "esp32").read_bytes(), 0x30),
                             "the bootloader (file offset 0x0) fails its checksum: the file is damaged"),
    "a cut download": (lambda tmp: firmware(tmp, "esp32").read_bytes()[:0xF000 + 600],
                       "the app 'factory' (file offset 0xf000) is damaged: End of file reading segment"),
    "a download cut before the app": (lambda tmp: firmware(tmp, "esp32").read_bytes()[:0x7C00],
                                      "the app 'factory' (file offset 0xf000) is missing: the file ends at "
                                      "0x7c00, cut short"),
    "a damaged partition table": (lambda tmp: _flip(firmware(tmp, "esp32").read_bytes(), 0x7000 + 40),
                                  "the partition table (file offset 0x7000) fails its MD5"),
    "no partition table": (lambda tmp: firmware(tmp, "esp32", table=b"\xff" * 0xC00).read_bytes(),
                           "no partition table with an app at file offset 0x7000 (flash 0x8000)"),
}


@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_image_check_refuses_in_one_line_naming_the_file(tmp_path, case):
    make, message = BAD_IMAGES[case]
    path = tmp_path / "image.bin"
    path.write_bytes(make(tmp_path))
    with pytest.raises(flash.FlashError) as e:
        flash.check_image(path, boards.load("esp32-devkitc"))
    assert str(e.value).startswith("%s: " % path)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_image_check_refuses_the_virtual_board_and_a_missing_file(tmp_path):
    with pytest.raises(flash.FlashError, match="board virtual is the virtual board"):
        flash.check_image(firmware(tmp_path, "esp32"), boards.load("virtual"))
    with pytest.raises(flash.FlashError, match="nope.bin: cannot read: No such file or directory"):
        flash.check_image(tmp_path / "nope.bin", boards.load("esp32-devkitc"))


# ---- plans

@pytest.mark.parametrize("chip,offset", [("esp32", 0x1000), ("esp32s3", 0x0), ("esp32c3", 0x0)])
def test_plan_writes_at_the_chips_offset(tmp_path, chip, offset):
    board = boards.load(BOARD_OF[chip])
    image = flash.check_image(firmware(tmp_path, chip), board)
    plan = flash.make_plan(board, image, "/dev/ttyUSB0")
    assert (plan.offset, plan.erase, plan.verify, plan.baud) == (offset, False, True, 460800)
    assert [a for a, _ in plan.steps] == ["connect", "prepare", "write", "verify", "mac", "reset"]
    assert dict(plan.steps)["write"] == "write %s, %s bytes, at 0x%x" % (
        image.path, format(image.size, ","), offset)


def test_plan_steps_follow_the_options(tmp_path):
    board = boards.load("esp32-devkitc")
    image = flash.check_image(firmware(tmp_path, "esp32"), board)
    plan = flash.make_plan(board, image, "/dev/ttyACM0", erase=True, verify=False, baud=115200,
                           connect_attempts=0)
    assert [text for _, text in plan.steps] == [
        "connect to /dev/ttyACM0 (until it answers), expect an ESP32 (board esp32-devkitc)",
        "run esptool's flasher stub at 115200 baud, attach the flash",
        "erase the whole flash",
        "write %s, %s bytes, at 0x1000" % (image.path, format(image.size, ",")),
        "read the MAC: the node id",
        "hard-reset the board: MicroPython starts"]
    # the API names its parameters; the command line names them as flags
    with pytest.raises(flash.FlashError, match="`connect_attempts` must be 0"):
        flash.make_plan(board, image, "/dev/ttyACM0", connect_attempts=-1)
    with pytest.raises(flash.FlashError, match="`baud` must be a positive"):
        flash.make_plan(board, image, "/dev/ttyACM0", baud=0)


# ---- the fake at esptool's API boundary

def _bind(function, *args):
    """Fail as the real esptool would if it could not take these arguments."""
    inspect.signature(function).bind(*args)


class FakeLoader:
    """What esptool's detect_chip returns, as far as citynode uses it."""

    def __init__(self, calls, chip):
        self.calls, self.rom = calls, CHIP_DEFS[chip]
        self.CHIP_NAME = self.rom.CHIP_NAME

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.calls.append(("close",))

    def change_baud(self, baud):
        _bind(self.rom.change_baud, self, baud)
        self.calls.append(("change_baud", baud))

    def read_mac(self):
        _bind(self.rom.read_mac, self)
        self.calls.append(("read_mac",))
        return MAC


class FakeEsptool:
    """esptool.cmds as citynode calls it: each call checked against the real
    function's signature and recorded; `fail` maps a name to what to raise."""

    def __init__(self, chip, fail=None):
        self.calls = []
        self.loader = FakeLoader(self.calls, chip)
        self.fail = fail or {}

    def _call(self, name, *args, **kwargs):
        inspect.signature(getattr(esptool.cmds, name)).bind(*args, **kwargs)
        assert name == "detect_chip" or args[0] is self.loader
        self.calls.append((name, kwargs) if kwargs else (name,) + args[1:])
        if name in self.fail:
            raise self.fail[name]

    def detect_chip(self, **kwargs):
        self._call("detect_chip", **kwargs)
        return self.loader

    def run_stub(self, esp):
        self._call("run_stub", esp)
        return esp

    def __getattr__(self, name):  # attach_flash, erase_flash, write_flash, verify_flash, reset_chip
        return lambda *args: self._call(name, *args)


@pytest.fixture
def fake_esptool(monkeypatch):
    def install(chip, fail=None):
        fake = FakeEsptool(chip, fail)
        monkeypatch.setattr(flash, "esptool_api", lambda: fake)
        return fake
    return install


def esptool_open_error(port, code):
    """What esptool's loader raises when pyserial cannot open `port`: a
    FatalError raised while handling pyserial's SerialException (the real
    one is seen in test_missing_port_real_esptool)."""
    try:
        raise serial.SerialException(code, "could not open port %s: [Errno %d] %s: '%s'" % (
            port, code, os.strerror(code), port))
    except serial.SerialException as e:
        try:
            raise FatalError("Could not open %s, the port is busy or doesn't exist.\n(%s)\n" % (port, e))
        except FatalError as fatal:
            return fatal


def plain_console():
    return Console(file=io.StringIO(), width=120, highlight=False)


@pytest.mark.parametrize("chip,offset", [("esp32", 0x1000), ("esp32s3", 0x0), ("esp32c3", 0x0)])
def test_happy_path_esptool_calls(tmp_path, fake_esptool, chip, offset):
    fake = fake_esptool(chip)
    board = boards.load(BOARD_OF[chip])
    image = flash.check_image(firmware(tmp_path, chip), board)
    console = plain_console()
    result = flash.run(flash.make_plan(board, image, "/dev/ttyUSB0", erase=True), console)
    assert fake.calls == [
        ("detect_chip", {"port": "/dev/ttyUSB0", "baud": 115200, "connect_mode": "default-reset",
                         "connect_attempts": 7}),
        ("run_stub",), ("change_baud", 460800), ("attach_flash",), ("erase_flash",),
        ("write_flash", [(offset, image.data)]), ("verify_flash", [(offset, image.data)]),
        ("read_mac",), ("reset_chip", "hard-reset"), ("close",)]
    assert result == flash.Result(chip=CHIP_DEFS[chip].CHIP_NAME, mac="a4:cf:12:a1:b2:c3",
                                  node_id="%s-a1b2c3" % chip)
    out = console.file.getvalue()
    assert "1/7 connect to /dev/ttyUSB0" in out and "7/7 hard-reset the board" in out


def test_no_verify_and_rom_baud_leave_those_calls_out(tmp_path, fake_esptool):
    fake = fake_esptool("esp32s3")
    board = boards.load("esp32s3-devkitc-1")
    image = flash.check_image(firmware(tmp_path, "esp32s3"), board)
    flash.run(flash.make_plan(board, image, "/dev/ttyACM0", verify=False, baud=115200), plain_console())
    assert [c[0] for c in fake.calls] == [
        "detect_chip", "run_stub", "attach_flash", "write_flash", "read_mac", "reset_chip", "close"]


def test_wrong_chip_is_refused_before_anything_is_written(tmp_path, fake_esptool, capsys):
    fake = fake_esptool("esp32s3")
    path = firmware(tmp_path, "esp32")
    assert cli(["flash", "--port", "/dev/ttyUSB0", "--board", "esp32-devkitc", str(path)]) == 2
    assert capsys.readouterr().err == (
        "citynode flash: error: /dev/ttyUSB0 has an ESP32-S3, but board esp32-devkitc is an ESP32: "
        "nothing written; use --board esp32s3-devkitc-1\n")
    assert [c[0] for c in fake.calls] == ["detect_chip", "close"]


def test_permission_denied_names_the_ports_group(tmp_path, fake_esptool, capsys):
    port = tmp_path / "ttyUSB0"
    port.touch()
    group = grp.getgrgid(port.stat().st_gid).gr_name
    fake_esptool("esp32", fail={"detect_chip": esptool_open_error(str(port), errno.EACCES)})
    image = firmware(tmp_path, "esp32")
    assert cli(["flash", "--port", str(port), "--board", "esp32-devkitc", str(image)]) == 2
    assert capsys.readouterr().err == (
        "citynode flash: error: permission denied on %s: join its group %s (sudo usermod -aG %s $USER), "
        "then log in again\n" % (port, group, group))


def test_esptool_failure_midway_is_one_line_with_the_step(tmp_path, fake_esptool, capsys):
    fake_esptool("esp32c3", fail={"write_flash": FatalError("MD5 of file does not match data in flash!")})
    assert cli(["flash", "--port", "/dev/ttyACM0", "--board", "esp32c3-devkitm-1",
                str(firmware(tmp_path, "esp32c3"))]) == 2
    assert capsys.readouterr().err == (
        "citynode flash: error: write failed on /dev/ttyACM0: MD5 of file does not match data in flash!\n")


def test_cli_prints_the_node_id(tmp_path, fake_esptool, capsys):
    fake_esptool("esp32")
    assert cli(["flash", "-p", "/dev/ttyUSB0", "-b", "esp32-poe", str(firmware(tmp_path, "esp32"))]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "node id: esp32-a1b2c3 (ESP32, MAC a4:cf:12:a1:b2:c3)"


# ---- real esptool, up to where a chip would have to answer

def test_missing_port_real_esptool(tmp_path, capsys):
    port = tmp_path / "ttyUSB9"
    image = firmware(tmp_path, "esp32")
    assert cli(["flash", "--port", str(port), "--board", "esp32-devkitc", str(image)]) == 2
    assert capsys.readouterr().err == ("citynode flash: error: no serial port %s: is the board plugged in? "
                                       "`citynode flash --list` shows the ports\n" % port)


@pytest.fixture
def silent_port():
    """A pseudo-terminal where nothing answers, as a board running its
    firmware answers nothing esptool understands."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    yield os.ttyname(slave)
    os.close(slave)
    os.close(master)


def test_not_in_download_mode_real_esptool(tmp_path, silent_port, capsys):
    assert cli(["flash", "--port", silent_port, "--board", "esp32-devkitc", "--connect-attempts", "1",
                str(firmware(tmp_path, "esp32"))]) == 2
    # before it, once per process, esptool's own warning that a pty has no DTR/RTS to reset the chip with
    assert capsys.readouterr().err.splitlines()[-1] == (
        "citynode flash: error: no answer from the bootloader on %s (No serial data received.): put the "
        "board in download mode (hold BOOT, press and release EN/RST, release BOOT) and retry" % silent_port)


def test_busy_port_real_esptool(tmp_path, silent_port, capsys):
    with serial.Serial(silent_port, exclusive=True):
        assert cli(["flash", "--port", silent_port, "--board", "esp32-devkitc",
                    str(firmware(tmp_path, "esp32"))]) == 2
    assert capsys.readouterr().err == (
        "citynode flash: error: %s is in use by another program (a serial monitor, mpremote?): close it and "
        "retry\n" % silent_port)


def test_a_bad_option_is_one_line_naming_the_flag(tmp_path, capsys):
    path = firmware(tmp_path, "esp32s3")
    capsys.readouterr()
    for flag, value, said in (("--baud", "0", "--baud must be a positive number of bits per second, not 0"),
                              ("--connect-attempts", "-1",
                               "--connect-attempts must be 0 (keep trying) or more, not -1")):
        assert cli(["flash", "--dry-run", "--port", "/dev/ttyACM7", "--board", "esp32s3-devkitc-1",
                    flag, value, str(path)]) == 2
        assert capsys.readouterr().err == "citynode flash: error: %s\n" % said


def test_dry_run_prints_the_plan_without_opening_the_port(tmp_path, capsys):
    path = firmware(tmp_path, "esp32s3")
    capsys.readouterr()
    assert cli(["flash", "--dry-run", "--erase", "--port", str(tmp_path / "ttyACM7"), "--board",
                "esp32s3-devkitc-1", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("%s: ESP32-S3 image" % path)
    assert out[1:] == [
        "1/7 connect to %s (7 tries), expect an ESP32-S3 (board esp32s3-devkitc-1)" % (tmp_path / "ttyACM7"),
        "2/7 run esptool's flasher stub at 460800 baud, attach the flash",
        "3/7 erase the whole flash",
        "4/7 write %s, %s bytes, at 0x0" % (path, format(path.stat().st_size, ",")),
        "5/7 verify the flash at 0x0 against %s" % path,
        "6/7 read the MAC: the node id",
        "7/7 hard-reset the board: MicroPython starts"]


def test_bad_image_stops_before_the_port(tmp_path, capsys):
    path = tmp_path / "s3.bin"
    path.write_bytes(firmware(tmp_path, "esp32s3").read_bytes())
    assert cli(["flash", "--port", str(tmp_path / "ttyUSB9"), "--board", "esp32-devkitc", str(path)]) == 2
    assert capsys.readouterr().err.startswith("citynode flash: error: %s: the bootloader (file offset 0x0) "
                                              "is for the ESP32-S3" % path)


def test_esptool_output_and_progress_on_a_rich_console():
    console = plain_console()
    with showing_esptool(console):
        log.print("Connecting...", end="")
        log.print(".", end="")
        log.print("")
        log.warn("Chip was NOT reset.")
        with log.progress(total=4096, unit="B") as bar:  # as esptool's write_flash drives it, per block
            for block in range(4):
                bar.update(advance=1024, description="Writing at 0x%08x" % (0x1000 + 1024 * (block + 1)))
        log.print("Hash of data verified.")
    assert console.file.getvalue().splitlines() == [
        "  Connecting....",
        "  Warning: Chip was NOT reset.",
        "  Writing at 0x00002000 ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━ 100% 4.1/4.1 kB 0:00:00",
        "  Hash of data verified."]


# ---- ports

def usb_port(device, vid=0x10C4, pid=0xEA60, serial_number="0001"):
    p = ListPortInfo(device, skip_link_detection=True)
    p.vid, p.pid, p.serial_number = vid, pid, serial_number
    p.manufacturer, p.product = "Silicon Labs", "CP2102 USB to UART Bridge Controller"
    return p


def test_ports_listed_and_picked():
    assert flash.describe_port(usb_port("/dev/ttyUSB0")) == (
        "/dev/ttyUSB0 0001 10c4:ea60 Silicon Labs CP2102 USB to UART Bridge Controller")
    assert flash.pick_port([usb_port("/dev/ttyUSB0")]) == "/dev/ttyUSB0"
    with pytest.raises(flash.FlashError, match="no USB serial port found"):
        flash.pick_port([])
    with pytest.raises(flash.FlashError, match=r"2 USB serial ports \(/dev/ttyACM0, /dev/ttyUSB0\): choose"):
        flash.pick_port([usb_port("/dev/ttyACM0"), usb_port("/dev/ttyUSB0")])


def test_help_reads_like_esptools(capsys):
    with pytest.raises(SystemExit):
        cli(["flash", "--help"])
    out = capsys.readouterr().out
    for text in ("--erase", "--baud", "--no-verify", "--list", "examples:", "0x1000 on the ESP32"):
        assert text in out
    assert cli(["flash", "--port", "/dev/ttyUSB0"]) == 2
    assert capsys.readouterr().err == (
        "citynode flash: error: give --board BOARD and IMAGE (or --list); see citynode flash --help\n")


# ---- CircuitPython: a .bin through esptool

FEATHER = "adafruit-feather-esp32s3"
FEATHER_DOWNLOADS = "circuitpython.org/board/adafruit_feather_esp32s3_4mbflash_2mbpsram"


def test_circuitpython_firmware_passes_the_same_checks(tmp_path):
    path = circuitpython_bin(tmp_path)
    image = flash.check_image(path, boards.load(FEATHER))
    assert (image.chip, image.app_offset, image.app) == ("ESP32-S3", APP_AT, "circuitpython 9.2.1")
    assert image.describe() == "%s: ESP32-S3 image, %s bytes: bootloader, partition table at 0x8000, app " \
        "(circuitpython 9.2.1) at 0x10000" % (path, format(image.size, ","))


BAD_CIRCUITPYTHON_IMAGES = {
    "empty": (lambda tmp: b"", "empty file, not a CircuitPython firmware"),
    "an ESP32 build": (lambda tmp: firmware(tmp, "esp32", "esp32.bin").read_bytes(),
                       "the bootloader (file offset 0x0) is for the ESP32, but board "
                       "adafruit-feather-esp32s3 has an ESP32-S3: use a CircuitPython build for the "
                       "ESP32-S3"),
    "an app alone": (lambda tmp: esp_image("esp32s3", app=True, project=CIRCUITPYTHON),
                     "an app image (it runs from flash), not a complete CircuitPython firmware starting with "
                     "the bootloader: use the .bin from " + FEATHER_DOWNLOADS),
    "a bootloader alone": (lambda tmp: esp_image("esp32s3", app=False),
                           "only a bootloader: a complete CircuitPython firmware also holds the partition "
                           "table"),
    "no partition table": (lambda tmp: firmware(tmp, "esp32s3", table=b"\xff" * 0xC00).read_bytes(),
                           "no partition table with an app at file offset 0x8000 (flash 0x8000): not a "
                           "complete CircuitPython firmware"),
    "a cut download": (lambda tmp: circuitpython_bin(tmp).read_bytes()[:APP_AT + 600],
                       "the app 'ota_0' (file offset 0x10000) is damaged: End of file reading segment"),
    "MicroPython's S3 firmware": (lambda tmp: firmware(tmp, "esp32s3", "mp.bin").read_bytes(),
                                  "the app 'factory' (file offset 0x10000) is micropython v1.24.1, but board "
                                  "adafruit-feather-esp32s3 runs CircuitPython: use the .bin from "
                                  + FEATHER_DOWNLOADS),
}


@pytest.mark.parametrize("case", sorted(BAD_CIRCUITPYTHON_IMAGES))
def test_circuitpython_image_check_refuses_in_one_line(tmp_path, case):
    make, message = BAD_CIRCUITPYTHON_IMAGES[case]
    path = tmp_path / "image.bin"
    path.write_bytes(make(tmp_path))
    with pytest.raises(flash.FlashError) as e:
        flash.check_image(path, boards.load(FEATHER))
    assert str(e.value).startswith("%s: " % path)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_a_circuitpython_bin_is_refused_for_a_micropython_board(tmp_path, capsys):
    path = circuitpython_bin(tmp_path)
    board = "esp32s3-devkitc-1"
    assert cli(["flash", "--dry-run", "--port", "/dev/ttyACM0", "--board", board, str(path)]) == 2
    assert capsys.readouterr().err == (
        "citynode flash: error: %s: the app 'ota_0' (file offset 0x10000) is circuitpython 9.2.1, but board "
        "esp32s3-devkitc-1 runs MicroPython: use the .bin from micropython.org/download\n" % path)


def test_circuitpython_bin_through_esptool(tmp_path, fake_esptool, capsys):
    fake = fake_esptool("esp32s3")
    path = circuitpython_bin(tmp_path)
    data = path.read_bytes()
    assert cli(["flash", "--port", "/dev/ttyACM0", "--board", FEATHER, "--erase", str(path)]) == 0
    assert fake.calls == [
        ("detect_chip", {"port": "/dev/ttyACM0", "baud": 115200, "connect_mode": "default-reset",
                         "connect_attempts": 7}),
        ("run_stub",), ("change_baud", 460800), ("attach_flash",), ("erase_flash",),
        ("write_flash", [(0x0, data)]), ("verify_flash", [(0x0, data)]),
        ("read_mac",), ("reset_chip", "hard-reset"), ("close",)]
    out = capsys.readouterr().out.splitlines()
    assert "7/7 hard-reset the board: CircuitPython starts" in out
    assert out[-1] == "node id: esp32s3-a1b2c3 (ESP32-S3, MAC a4:cf:12:a1:b2:c3)"


def test_circuitpython_board_with_another_chip_on_the_port(tmp_path, fake_esptool, capsys):
    fake = fake_esptool("esp32")
    assert cli(["flash", "--port", "/dev/ttyUSB0", "--board", FEATHER, str(circuitpython_bin(tmp_path))]) == 2
    assert capsys.readouterr().err == (
        "citynode flash: error: /dev/ttyUSB0 has an ESP32, but board adafruit-feather-esp32s3 is an "
        "ESP32-S3: nothing written; no bundled profile has that chip\n")
    assert [c[0] for c in fake.calls] == ["detect_chip", "close"]


def test_circuitpython_bin_dry_run(tmp_path, capsys):
    path = circuitpython_bin(tmp_path)
    capsys.readouterr()
    assert cli(["flash", "--dry-run", "--port", "/dev/ttyACM0", "--board", FEATHER, str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "1/6 connect to /dev/ttyACM0 (7 tries), expect an ESP32-S3 (board adafruit-feather-esp32s3)",
        "2/6 run esptool's flasher stub at 460800 baud, attach the flash",
        "3/6 write %s, %s bytes, at 0x0" % (path, format(path.stat().st_size, ",")),
        "4/6 verify the flash at 0x0 against %s" % path,
        "5/6 read the MAC: the node id",
        "6/6 hard-reset the board: CircuitPython starts"]


# ---- CircuitPython: a .uf2 onto the UF2 bootloader's drive

ESP32S3_FAMILY = 0xC47E5767  # Microsoft's utils/uf2families.json
FEATHER_INFO = ("TinyUF2 Bootloader 0.18.2 - tinyusb (0.15.0)\r\nModel: Adafruit Feather ESP32-S3\r\n"
                "Board-ID: ESP32-S3-Feather-revC\r\nDate: Mar 22 2024\r\n")


def uf2_blocks(firmware_bytes, family=ESP32S3_FAMILY, payload=256):
    """`firmware_bytes` as UF2 blocks from address 0, as CircuitPython's build
    converts its app (uf2conv.py -b 0x0 -f the chip's family): the header's
    eight words, the data padded to 476 bytes, the final magic."""
    chunks = [firmware_bytes[at:at + payload] for at in range(0, len(firmware_bytes), payload)]
    head = struct.Struct("<8I")
    return [head.pack(0x0A324655, 0x9E5D5157, 0x2000, n * payload, len(chunk), n, len(chunks), family)
            + chunk.ljust(476, b"\0") + struct.pack("<I", 0x0AB16F30) for n, chunk in enumerate(chunks)]


def circuitpython_uf2(tmp_path, blocks=None, name="circuitpython.uf2"):
    path = tmp_path / name
    if blocks is None:
        blocks = uf2_blocks(esp_image("esp32s3", app=True, project=CIRCUITPYTHON))
    path.write_bytes(b"".join(blocks))
    return path


@pytest.fixture
def drive(tmp_path):
    """A folder standing for the Feather's UF2 drive (FTHRS3BOOT), as tinyuf2 shows it."""
    d = tmp_path / "FTHRS3BOOT"
    d.mkdir()
    (d / "INFO_UF2.TXT").write_text(FEATHER_INFO, newline="")
    return d


def test_good_uf2_is_copied_onto_the_drive(tmp_path, drive, capsys):
    path = circuitpython_uf2(tmp_path)
    blocks = path.stat().st_size // 512
    assert cli(["flash", "--board", FEATHER, "--drive", str(drive), str(path)]) == 0
    assert (drive / path.name).read_bytes() == path.read_bytes()
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "%s: UF2 for the ESP32-S3 (family 0xc47e5767), %d blocks, %s bytes of firmware" % (
        path, blocks, format(len(esp_image("esp32s3", app=True, project=CIRCUITPYTHON)), ","))
    steps = " ".join(" ".join(out[1:-1]).split())  # the console wraps them at its width
    assert steps.startswith("1/2 check that %s is a UF2 bootloader's drive (INFO_UF2.TXT) with Board-ID "
                            "ESP32-S3-Feather-revC, for board adafruit-feather-esp32s3 2/2 copy " % drive)
    assert out[-1] == ("%s written: board adafruit-feather-esp32s3 writes it to flash and reboots into "
                       "CircuitPython (its CIRCUITPY drive appears)" % (drive / path.name))


def test_a_large_uf2_is_written_in_pieces_with_progress(tmp_path, drive, capsys):
    path = circuitpython_uf2(tmp_path, uf2_blocks(random.Random(2).randbytes(256 * 1500)))
    board = boards.load(FEATHER)
    plan = flash.make_uf2_plan(board, flash.check_uf2(path, board), drive)
    assert flash.run_uf2(plan, plain_console()) == drive / path.name
    assert (drive / path.name).read_bytes() == path.read_bytes()
    progress = capsys.readouterr().err.splitlines()  # not a terminal: a line every tenth
    assert progress[-1] == "copying %s: %d/%d" % (path.name, 1500 * 512, 1500 * 512)
    assert len(progress) >= 10


def _word(block, at, value):
    """`block` with its 32-bit word at byte `at` set to `value`."""
    return block[:at] + struct.pack("<I", value) + block[at + 4:]


def _blocks(count=6, **kw):
    return uf2_blocks(bytes(range(256)) * count, **kw)


def _spoilt(n, at, value):
    """Six good blocks but for the word at byte `at` of block `n`."""
    blocks = _blocks()
    blocks[n] = _word(blocks[n], at, value)
    return blocks


BAD_UF2 = {
    "empty": (lambda: [], "empty file, not a CircuitPython firmware"),
    "cut short": (lambda: [b"".join(_blocks())[:-100]],
                  "2,972 bytes, not a whole number of 512-byte UF2 blocks: cut short, or not a UF2 file"),
    "a .bin named .uf2": (lambda: [bytes([0xE9]) + bytes(511)],
                          "UF2 block 0 (file offset 0x0): magicStart0 is 0x000000e9, not 0x0a324655: not a "
                          "UF2 block"),
    "second magic": (lambda: _spoilt(3, 4, 0x12345678),
                     "UF2 block 3 (file offset 0x600): magicStart1 is 0x12345678, not 0x9e5d5157: not a UF2 "
                     "block"),
    "final magic": (lambda: _spoilt(5, 508, 0),
                    "UF2 block 5 (file offset 0xa00): magicEnd is 0x00000000, not 0x0ab16f30: not a UF2 "
                    "block"),
    "no familyID flag": (lambda: _spoilt(0, 8, 0),
                         "UF2 block 0 (file offset 0x0): flags 0x00000000 lack familyID present (0x2000): "
                         "the bootloader skips such a block"),
    "an ESP32-S2 build": (lambda: _blocks(family=0xBFDD4EEE),
                          "UF2 block 0 (file offset 0x0): familyID is 0xbfdd4eee, not the ESP32-S3's "
                          "0xc47e5767: use the .uf2 from " + FEATHER_DOWNLOADS),
    "payload too big": (lambda: _spoilt(2, 16, 477),
                        "UF2 block 2 (file offset 0x400): payloadSize is 477, more than the 476 bytes a "
                        "block holds"),
    "blocks out of order": (lambda: [_blocks()[n] for n in (0, 2, 1, 3, 4, 5)],
                            "UF2 block 1 (file offset 0x200): blockNo is 2, not 1: blocks missing or out of "
                            "order"),
    "a block missing": (lambda: [_blocks()[n] for n in (0, 1, 2, 3, 5)],
                        "UF2 block 0 (file offset 0x0): numBlocks is 6, but the file holds 5 blocks"),
    "a block missing, the count rewritten": (lambda: [_word(_blocks()[n], 24, 5) for n in (0, 1, 2, 3, 5)],
                                             "UF2 block 4 (file offset 0x800): blockNo is 5, not 4: blocks "
                                             "missing or out of order"),
    "wrong block count": (lambda: _spoilt(4, 24, 7),
                          "UF2 block 4 (file offset 0x800): numBlocks is 7, but the file holds 6 blocks"),
}


@pytest.mark.parametrize("case", sorted(BAD_UF2))
def test_bad_uf2_is_refused_and_nothing_written(tmp_path, drive, capsys, case):
    make, message = BAD_UF2[case]
    path = circuitpython_uf2(tmp_path, make(), name="bad.uf2")
    assert cli(["flash", "--board", FEATHER, "--drive", str(drive), str(path)]) == 2
    assert capsys.readouterr().err == "citynode flash: error: %s: %s\n" % (path, message)
    assert os.listdir(drive) == ["INFO_UF2.TXT"]


def test_a_uf2_for_a_micropython_board_is_refused(tmp_path, capsys):
    path = circuitpython_uf2(tmp_path)
    assert cli(["flash", "--board", "esp32s3-devkitc-1", "--drive", str(tmp_path), str(path)]) == 2
    assert capsys.readouterr().err == (
        "citynode flash: error: %s: a .uf2 goes onto a CircuitPython board's UF2 drive, but board "
        "esp32s3-devkitc-1 runs MicroPython: use the .bin from micropython.org/download\n" % path)
    with pytest.raises(flash.FlashError, match="board virtual is the virtual board"):
        flash.check_uf2(path, boards.load("virtual"))


def test_another_boards_drive_is_refused(tmp_path, drive, capsys):
    (drive / "INFO_UF2.TXT").write_text(FEATHER_INFO.replace("ESP32-S3-Feather-revC", "ESP32S3-QTPy-A"))
    path = circuitpython_uf2(tmp_path)
    assert cli(["flash", "--board", FEATHER, "--drive", str(drive), str(path)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "citynode flash: error: %s: INFO_UF2.TXT says Board-ID ESP32S3-QTPy-A, but board "
        "adafruit-feather-esp32s3 has ESP32-S3-Feather-revC: nothing written; check the board, or choose its "
        "profile with --board" % drive)
    assert os.listdir(drive) == ["INFO_UF2.TXT"]


def test_a_folder_that_is_not_a_uf2_drive_is_refused(tmp_path, capsys):
    circuitpy = tmp_path / "CIRCUITPY"
    circuitpy.mkdir()
    (circuitpy / "boot_out.txt").write_text("Board ID:adafruit_feather_esp32s3_4mbflash_2mbpsram\n")
    path = circuitpython_uf2(tmp_path)
    assert cli(["flash", "--board", FEATHER, "--drive", str(circuitpy), str(path)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "citynode flash: error: %s has no INFO_UF2.TXT, so it is not a UF2 bootloader's drive (CIRCUITPY "
        "holds the board's files, not its bootloader): put the board in its UF2 bootloader (press RESET, "
        "then again while the RGB LED is purple)" % circuitpy)
    assert os.listdir(circuitpy) == ["boot_out.txt"]


def test_a_missing_drive_is_one_line(tmp_path, capsys, monkeypatch):
    path = circuitpython_uf2(tmp_path)
    gone = tmp_path / "media" / "FTHRS3BOOT"
    assert cli(["flash", "--board", FEATHER, "--drive", str(gone), str(path)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "citynode flash: error: no drive %s: put the board in its UF2 bootloader (press RESET, then again "
        "while the RGB LED is purple) and give the folder where its drive is mounted" % gone)
    assert cli(["flash", "--board", FEATHER, "--drive", str(path), str(path)]) == 2  # a file, not a folder
    assert capsys.readouterr().err.splitlines()[-1] == (
        "citynode flash: error: %s: cannot open the drive: Not a directory" % path)
    board = boards.load(FEATHER)
    for name, where in (("VOLUMES", tmp_path), ("BY_LABEL", tmp_path), ("MOUNT_TABLE", tmp_path / "mounts")):
        monkeypatch.setattr(transport, name, str(where))
    with pytest.raises(flash.FlashError) as e:
        flash.find_uf2_drive(board)
    assert str(e.value) == (
        "no UF2 drive FTHRS3BOOT is mounted: put board adafruit-feather-esp32s3 in its UF2 bootloader (press "
        "RESET, then again while the RGB LED is purple), wait for the drive, or give it with `drive`")


def test_the_drive_is_found_by_its_volume_label(tmp_path, monkeypatch):
    board = boards.load(FEATHER)
    monkeypatch.setattr(transport, "VOLUMES", str(tmp_path))
    monkeypatch.setattr(transport, "BY_LABEL", str(tmp_path))
    monkeypatch.setattr(transport, "MOUNT_TABLE", str(tmp_path / "mounts"))
    media = tmp_path / "media" / "tech" / "FTHRS3BOOT"
    stick = tmp_path / "mnt" / "my stick"
    mounts = tmp_path / "mounts"
    mounts.write_text("/dev/sda2 / ext4 rw 0 0\n/dev/sdb %s vfat rw,nosuid 0 0\n" % media)
    assert flash.find_uf2_drive(board) == str(media)
    # mounted elsewhere: the device udev names by the label (/dev/disk/by-label/FTHRS3BOOT -> /dev/sdc)
    by_label, dev = tmp_path / "by-label", tmp_path / "sdc"
    by_label.mkdir()
    dev.touch()
    (by_label / "FTHRS3BOOT").symlink_to(dev)
    monkeypatch.setattr(transport, "BY_LABEL", str(by_label))
    mounts.write_text("%s %s vfat rw 0 0\n" % (dev, str(stick).replace(" ", "\\040")))
    assert flash.find_uf2_drive(board) == str(stick)
    # macOS: /Volumes/FTHRS3BOOT
    (tmp_path / "FTHRS3BOOT").mkdir()
    with pytest.raises(flash.FlashError) as e:
        flash.find_uf2_drive(board)
    assert str(e.value) == "2 UF2 drives FTHRS3BOOT are mounted (%s, %s): choose one with `drive`" % tuple(
        sorted([str(tmp_path / "FTHRS3BOOT"), str(stick)]))


def test_a_profile_without_uf2_needs_the_drive_given(tmp_path, capsys):
    text = (ROOT / "boards" / (FEATHER + ".toml")).read_text()
    profile = tmp_path / "no-uf2.toml"
    profile.write_text(text[:text.index("[uf2]")] + text[text.index("[i2c]"):])
    path = circuitpython_uf2(tmp_path)
    assert cli(["flash", "--board", str(profile), str(path)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "citynode flash: error: board no-uf2 has no [uf2] volume in its profile to find its drive by: give "
        "the mounted drive with --drive")
    drive = tmp_path / "BOOT"
    drive.mkdir()
    (drive / "info_uf2.txt").write_text("UF2 Bootloader\r\nBoard-ID: SOMETHING-ELSE\r\n")
    # no Board-ID in the profile: any UF2 drive given will do
    assert cli(["flash", "--board", str(profile), "--drive", str(drive), str(path)]) == 0
    assert (drive / path.name).read_bytes() == path.read_bytes()


def test_uf2_dry_run_prints_the_plan_and_writes_nothing(tmp_path, drive, capsys):
    path = circuitpython_uf2(tmp_path)
    assert cli(["flash", "--dry-run", "--board", FEATHER, "--drive", str(drive), str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "1/2 check that %s is a UF2 bootloader's drive (INFO_UF2.TXT) with Board-ID ESP32-S3-Feather-revC, "
        "for board adafruit-feather-esp32s3" % drive,
        "2/2 copy circuitpython.uf2, %s bytes, to %s as one file, flushed and synced: the board writes it to "
        "flash and reboots into CircuitPython" % (format(path.stat().st_size, ","), drive)]
    assert os.listdir(drive) == ["INFO_UF2.TXT"]


def test_a_failed_sync_says_how_far_it_got(tmp_path, drive, monkeypatch, capsys):
    def unplugged(fd):
        raise OSError(errno.EIO, os.strerror(errno.EIO))
    monkeypatch.setattr(flash.os, "fsync", unplugged)
    path = circuitpython_uf2(tmp_path)
    size = format(path.stat().st_size, ",")
    assert cli(["flash", "--board", FEATHER, "--drive", str(drive), str(path)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "citynode flash: error: copying to %s failed after %s of %s bytes: Input/output error (the board may "
        "have rebooted already: see whether its CIRCUITPY drive appears)" % (drive / path.name, size, size))


def test_options_of_the_other_path_are_refused(tmp_path, drive, capsys):
    uf2 = circuitpython_uf2(tmp_path)
    assert cli(["flash", "--board", FEATHER, "--port", "/dev/ttyACM0", str(uf2)]) == 2
    assert capsys.readouterr().err == (
        "citynode flash: error: a .uf2 is copied onto the board's UF2 drive, not written through a serial "
        "port: leave out --port and --erase\n")
    assert cli(["flash", "--board", FEATHER, "--drive", str(drive), str(circuitpython_bin(tmp_path))]) == 2
    assert capsys.readouterr().err == (
        "citynode flash: error: --drive is for a .uf2, which goes onto the board's UF2 drive; a .bin is "
        "written through the serial port\n")
    assert os.listdir(drive) == ["INFO_UF2.TXT"]


def test_help_has_examples_for_both_runtimes(capsys):
    with pytest.raises(SystemExit):
        cli(["flash", "--help"])
    out = capsys.readouterr().out
    for text in ("--drive DIR", "adafruit-feather-esp32s3", ".uf2", "INFO_UF2.TXT", "Board-ID",
                 "ESP32_GENERIC-v1.24.1.bin"):
        assert text in out, text
