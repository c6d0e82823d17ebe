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
    assert set(got) == {"esp32-devkitc", "esp32s3-devkitc-1", "esp32c3-devkitm-1", "esp32-poe", "virtual"}
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
    assert out[0].split() == ["BOARD", "CHIP", "OFFSET", "NETWORK", "SLEEP", "TITLE"]
    assert out[1].split()[:5] == ["esp32-devkitc", "esp32", "0x1000", "wifi", "yes"]
    assert len(out) == 6
    assert cli(["boards", "esp32s3-devkitc-1"]) == 0
    assert "  image offset  0x0" in capsys.readouterr().out.splitlines()
    bad = write(tmp_path, GOOD.replace("sda = 21", "sda = 99"))
    assert cli(["boards", str(bad)]) == 2
    assert capsys.readouterr().err.strip() == (
        "citynode boards: error: %s: i2c.sda must be a GPIO number, 0 to 48" % bad)
    assert cli(["boards", "esp99"]) == 2
    assert "no board profile 'esp99'" in capsys.readouterr().err
