"""Board profiles: the bundled ones load, every mistake names file and field,
and sensors get the pins a technician would wire them to."""

import pytest

from host_tools.cli import main as cli
from host_tools.field import boards

GOOD = """\
title = "Test board"
chip = "esp32"
flash_offset = 0x1000
mpy_arch = "xtensawin"
network = "wifi"
power = "battery"
deep_sleep = true
[i2c]
id = 0
sda = 21
scl = 22
[uart]
id = 2
tx = 17
rx = 16
[ultrasonic]
trig = [5, 25]
echo = [18, 26]
"""


def write(tmp_path, text, name="b.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_bundled_profiles():
    got = {b.name: b for b in boards.all_boards()}
    assert set(got) == {"esp32-devkitc", "esp32s3-devkitc-1", "esp32c3-devkitm-1", "esp32-poe", "virtual",
                        "adafruit-feather-esp32s3", "adafruit-qtpy-esp32s3"}
    assert {n for n, b in got.items() if b.runtime == "circuitpython"} == {
        "adafruit-feather-esp32s3", "adafruit-qtpy-esp32s3"}
    assert [(got[n].chip, got[n].flash_offset) for n in ("esp32-devkitc", "esp32s3-devkitc-1",
                                                          "esp32c3-devkitm-1")] == [
        ("esp32", 0x1000), ("esp32s3", 0), ("esp32c3", 0)]
    assert got["esp32c3-devkitm-1"].mpy_arch == "rv32imc"
    assert got["esp32-poe"].network == "ethernet" and got["esp32-poe"].ethernet["phy"] == "LAN8720"
    assert got["virtual"].virtual and got["virtual"].flash_offset is None


def test_good_profile_by_path(tmp_path):
    b = boards.load(str(write(tmp_path, GOOD)))
    assert (b.name, b.power, b.ultrasonic["trig"]) == ("b", "battery", [5, 25])


@pytest.mark.parametrize("old,new,message", [
    ('chip = "esp32"', 'chip = "esp8266"',
     "chip must be one of esp32, esp32s3, esp32c3, unix, not 'esp8266'"),
    ("flash_offset = 0x1000", "flash_offset = 0x0", "flash_offset must be 0x1000 for esp32"),
    ("flash_offset = 0x1000\n", "", "flash_offset must be 0x1000 for esp32 (MicroPython's image offset), "
                                    "not missing"),
    ("deep_sleep = true", 'deep_sleep = "yes"', "deep_sleep must be true or false"),
    ("sda = 21", "sda = 60", "i2c.sda must be a GPIO number, 0 to 48"),
    ("echo = [18, 26]", "echo = [18]", "ultrasonic.trig and ultrasonic.echo must be the same length"),
    ("trig = [5, 25]", "trig = [5, -1]", "ultrasonic.trig[1] must be a GPIO number"),
    ("[uart]\nid = 2\n", "[uart]\nid = 2\nbaud = 9600\n", "[uart]: unknown field 'baud'"),
    ("id = 2\ntx = 17\n", "id = 2\n", "[uart]: field 'tx' is missing"),
    ('network = "wifi"', 'network = "ethernet"', "[ethernet] is needed exactly when network = \"ethernet\""),
    ('title = "Test board"', 'title = "Test board"\ncolour = "red"', "unknown field 'colour'"),
    ("[i2c]", "[i2c", "not valid TOML"),
])
def test_profile_errors_name_file_and_field(tmp_path, old, new, message):
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(boards.BoardError) as e:
        boards.parse(path)
    assert str(e.value).startswith(str(path) + ": ")
    assert message in str(e.value)


SENSORS = [
    {"id": "bay-1", "type": "bay_ultrasonic"},
    {"id": "bay-2", "type": "bay_ultrasonic", "driver": "jsn-sr04t"},
    {"id": "bay-3", "type": "bay_magnetic"},
    {"id": "street", "type": "water", "driver": "a02yyuw"},
    {"id": "env", "type": "env"},
]


def test_hal_config_assigns_pins_in_order():
    b = boards.load("esp32-devkitc")
    assert boards.hal_config(b, SENSORS) == {
        "kind": "esp32",
        "pins": {"bay-1": {"trig": 5, "echo": 18}, "bay-2": {"trig": 25, "echo": 26}},
        "i2c": {"id": 0, "sda": 21, "scl": 22},
        "uart": {"id": 2, "tx": 17, "rx": 16},
    }
    assert boards.hal_config(boards.load("virtual"), SENSORS) == {"kind": "sim"}


@pytest.mark.parametrize("sensors,message", [
    ([{"id": "b%d" % i, "type": "bay_ultrasonic"} for i in range(3)],
     "sensor b2: esp32c3-devkitm-1 has trigger/echo pins for 2 ultrasonic sensors"),
    ([{"id": "w1", "type": "water", "driver": "a02yyuw"}, {"id": "w2", "type": "water", "driver": "a02yyuw"}],
     "sensor w2: esp32c3-devkitm-1 has one UART for ranging, taken by w1"),
    ([{"id": "m1", "type": "bay_magnetic"}, {"id": "m2", "type": "bay_magnetic"}],
     "sensor m2: one QMC5883L per I2C bus (fixed address), taken by m1"),
])
def test_hal_config_refuses_what_the_board_cannot_take(sensors, message):
    with pytest.raises(boards.BoardError) as e:
        boards.hal_config(boards.load("esp32c3-devkitm-1"), sensors)
    assert str(e.value) == message


def test_cli_lists_and_checks(tmp_path, capsys):
    assert cli(["boards"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["BOARD", "RUNTIME", "CHIP", "OFFSET", "NETWORK", "SLEEP", "TITLE"]
    assert out[1].split()[:6] == ["adafruit-feather-esp32s3", "circuitpython", "esp32s3", "0x0", "wifi",
                                  "yes"]
    assert out[3].split()[:6] == ["esp32-devkitc", "micropython", "esp32", "0x1000", "wifi", "yes"]
    assert len(out) == 8
    assert cli(["boards", "esp32s3-devkitc-1"]) == 0
    assert "  image offset  0x0" in capsys.readouterr().out.splitlines()
    bad = write(tmp_path, GOOD.replace("sda = 21", "sda = 99"))
    assert cli(["boards", str(bad)]) == 2
    assert capsys.readouterr().err.strip() == (
        "citynode boards: error: %s: i2c.sda must be a GPIO number, 0 to 48" % bad)
    assert cli(["boards", "esp99"]) == 2
    assert "no board profile 'esp99'" in capsys.readouterr().err


# ---- CircuitPython profiles

GOOD_CP = """\
title = "Test CircuitPython board"
runtime = "circuitpython"
board_id = "adafruit_feather_esp32s3_4mbflash_2mbpsram"
chip = "esp32s3"
flash_offset = 0x0
mpy_arch = "xtensawin"
network = "wifi"
power = "battery"
deep_sleep = true
[uf2]
volume = "FTHRS3BOOT"
board_id = "ESP32-S3-Feather-revC"
[i2c]
sda = "SDA"
scl = "SCL"
[uart]
tx = "TX"
rx = "RX"
[ultrasonic]
trig = ["D5", "D9"]
echo = ["D6", "D10"]
"""


def test_circuitpython_profiles_name_pins_and_the_board(tmp_path):
    feather, qtpy = boards.load("adafruit-feather-esp32s3"), boards.load("adafruit-qtpy-esp32s3")
    assert (feather.runtime, feather.board_id, feather.chip, feather.flash_offset, feather.power) == (
        "circuitpython", "adafruit_feather_esp32s3_4mbflash_2mbpsram", "esp32s3", 0, "battery")
    assert feather.i2c == {"sda": "SDA", "scl": "SCL"} and feather.uart == {"tx": "TX", "rx": "RX"}
    assert feather.uf2 == {"volume": "FTHRS3BOOT", "board_id": "ESP32-S3-Feather-revC"}
    assert (qtpy.board_id, qtpy.i2c, qtpy.uf2["board_id"]) == (
        "adafruit_qtpy_esp32s3_4mbflash_2mbpsram", {"sda": "SDA1", "scl": "SCL1"}, "ESP32S3-QTPy-N4R2-A")
    assert qtpy.ultrasonic == {"trig": ["A0", "A2"], "echo": ["A1", "A3"]}
    micropython = boards.load("esp32s3-devkitc-1")
    assert (micropython.runtime, micropython.board_id, micropython.uf2) == ("micropython", None, None)
    b = boards.parse(write(tmp_path, GOOD_CP))
    assert (b.runtime, b.runtime_name, b.ultrasonic["echo"]) == ("circuitpython", "CircuitPython",
                                                                 ["D6", "D10"])
    no_uf2 = GOOD_CP.replace('[uf2]\nvolume = "FTHRS3BOOT"\nboard_id = "ESP32-S3-Feather-revC"\n', "")
    assert boards.parse(write(tmp_path, no_uf2, "n.toml")).uf2 is None


@pytest.mark.parametrize("old,new,message", [
    ('runtime = "circuitpython"', 'runtime = "cpython"',
     "runtime must be one of micropython, circuitpython, not 'cpython'"),
    ('chip = "esp32s3"', 'chip = "esp32"',
     "chip must be esp32s3 for runtime = \"circuitpython\" (the CircuitPython boards citynode supports so "
     "far), not 'esp32'"),
    ('board_id = "adafruit_feather_esp32s3_4mbflash_2mbpsram"\n', "", "field 'board_id' is missing"),
    ('board_id = "adafruit_feather_esp32s3_4mbflash_2mbpsram"', 'board_id = "feather s3"',
     "board_id must be CircuitPython's board id (boot_out.txt's \"Board ID:\"), such as "
     "\"adafruit_feather_esp32s3_4mbflash_2mbpsram\", not 'feather s3'"),
    ("flash_offset = 0x0", "flash_offset = 0x1000",
     "flash_offset must be 0x0 for esp32s3 (CircuitPython's image offset), not 0x1000"),
    ('network = "wifi"', 'network = "ethernet"', "network must be one of wifi, not 'ethernet'"),
    ('sda = "SDA"', "sda = 3",
     "i2c.sda must be a pin name of CircuitPython's board module (capitals, digits, _), such as \"D5\" or "
     "\"SDA\", not 3"),
    ('tx = "TX"', 'tx = "board.TX"', "uart.tx must be a pin name of CircuitPython's board module"),
    ('trig = ["D5", "D9"]', 'trig = ["D5", "d9"]', "ultrasonic.trig[1] must be a pin name"),
    ('echo = ["D6", "D10"]', 'echo = [6, 10]', "ultrasonic.echo[0] must be a pin name"),
    ('trig = ["D5", "D9"]', 'trig = "D5"', "ultrasonic.trig must be a list of pin names"),
    ('[i2c]\n', "[i2c]\nid = 0\n", "[i2c]: unknown field 'id' (allowed: sda, scl, freq)"),
    ('[uart]\n', "[uart]\nid = 1\n", "[uart]: unknown field 'id' (allowed: tx, rx)"),
    ('scl = "SCL"\n', "", "[i2c]: field 'scl' is missing"),
    ('[uf2]\nvolume = "FTHRS3BOOT"\nboard_id = "ESP32-S3-Feather-revC"\n', 'uf2 = "FTHRS3BOOT"\n',
     "[uf2] must be a table"),
    ('volume = "FTHRS3BOOT"\n', "", "[uf2]: field 'volume' is missing"),
    ('volume = "FTHRS3BOOT"', 'volume = "fthrs3boot"',
     "uf2.volume must be the UF2 drive's volume label (1 to 11 capitals, digits, _ or -), such as "
     "\"FTHRS3BOOT\", not 'fthrs3boot'"),
    ('volume = "FTHRS3BOOT"', 'volume = "FEATHERS3BOOT"', "uf2.volume must be the UF2 drive's volume label"),
    ('board_id = "ESP32-S3-Feather-revC"', "board_id = 3",
     "uf2.board_id must be the Board-ID line of the drive's INFO_UF2.TXT, such as \"ESP32-S3-Feather-revC\", "
     "not 3"),
    ('[uf2]\n', "[uf2]\nmodel = \"x\"\n", "[uf2]: unknown field 'model' (allowed: volume, board_id)"),
])
def test_circuitpython_profile_errors_name_file_and_field(tmp_path, old, new, message):
    assert old in GOOD_CP
    path = write(tmp_path, GOOD_CP.replace(old, new, 1))
    with pytest.raises(boards.BoardError) as e:
        boards.parse(path)
    assert str(e.value).startswith(str(path) + ": ")
    assert message in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("field", ['board_id = "adafruit_feather_esp32s3_4mbflash_2mbpsram"',
                                   '[uf2]\nvolume = "FTHRS3BOOT"\nboard_id = "X"'])
def test_circuitpython_fields_are_unknown_to_a_micropython_profile(tmp_path, field):
    path = write(tmp_path, GOOD.replace("deep_sleep = true\n", "deep_sleep = true\n" + field + "\n"))
    with pytest.raises(boards.BoardError) as e:
        boards.parse(path)
    assert str(e.value) == (
        "%s: unknown field '%s' (allowed: title, runtime, chip, flash_offset, mpy_arch, network, power, "
        "deep_sleep, i2c, uart, ultrasonic, ethernet)" % (path, field.split()[0].strip("[]")))
    assert boards.parse(write(tmp_path, 'runtime = "micropython"\n' + GOOD, "explicit.toml")).runtime == \
        "micropython"


def test_hal_config_of_a_circuitpython_board_names_board_pins():
    assert boards.hal_config(boards.load("adafruit-feather-esp32s3"), SENSORS) == {
        "kind": "circuitpython",
        "pins": {"bay-1": {"trig": "D5", "echo": "D6"}, "bay-2": {"trig": "D9", "echo": "D10"}},
        "i2c": {"sda": "SDA", "scl": "SCL"},
        "uart": {"tx": "TX", "rx": "RX"},
    }
    assert boards.hal_config(boards.load("adafruit-qtpy-esp32s3"),
                             [{"id": "bay-1", "type": "bay_ultrasonic"}]) == {
        "kind": "circuitpython", "pins": {"bay-1": {"trig": "A0", "echo": "A1"}}}


def test_hal_config_of_a_circuitpython_board_keeps_the_i2c_clock(tmp_path):
    b = boards.parse(write(tmp_path, GOOD_CP.replace('scl = "SCL"\n', 'scl = "SCL"\nfreq = 100000\n')))
    assert boards.hal_config(b, [{"id": "env", "type": "env"}]) == {
        "kind": "circuitpython", "pins": {}, "i2c": {"sda": "SDA", "scl": "SCL", "freq": 100000}}


def test_circuitpython_board_refuses_what_it_cannot_take():
    with pytest.raises(boards.BoardError) as e:
        boards.hal_config(boards.load("adafruit-qtpy-esp32s3"),
                          [{"id": "b%d" % i, "type": "bay_ultrasonic"} for i in range(3)])
    assert str(e.value) == "sensor b2: adafruit-qtpy-esp32s3 has trigger/echo pins for 2 ultrasonic sensors"


def test_cli_shows_a_circuitpython_board(capsys):
    assert cli(["boards", "adafruit-qtpy-esp32s3"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "adafruit-qtpy-esp32s3: Adafruit QT Py ESP32-S3 (4MB Flash, 2MB PSRAM)",
        "  runtime       CircuitPython",
        "  board id      adafruit_qtpy_esp32s3_4mbflash_2mbpsram",
        "  uf2 drive     QTPYS3BOOT (Board-ID ESP32S3-QTPy-N4R2-A)",
        "  chip          esp32s3",
        "  image offset  0x0",
        "  .mpy arch     xtensawin",
        "  network       wifi",
        "  power         usb, deep sleep yes",
        "  i2c           sda=SDA1 scl=SCL1",
        "  uart          tx=TX rx=RX",
        "  ultrasonic    trig A0/echo A1, trig A2/echo A3"]
    assert cli(["boards", "esp32-devkitc"]) == 0
    assert "  runtime       MicroPython" in capsys.readouterr().out.splitlines()
