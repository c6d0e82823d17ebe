"""Board profiles: what a board is and where its sensors plug in.

One TOML file per board in boards/ (docs/boards.md has the fields):

    from host_tools.field import boards
    b = boards.load("esp32-devkitc")         # or a path to a .toml file
    b.chip, b.flash_offset                   # "esp32", 0x1000
    boards.hal_config(b, sensors)            # the node config's "hal" part

A profile is for MicroPython (the default: pins are GPIO numbers) or, with
`runtime = "circuitpython"`, for CircuitPython (pins are the names of its
`board` module, and `board_id` is CircuitPython's id for the board).
Every error is a BoardError naming the file and the field.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from citynode import sensors as registry
from citynode.config import ETHERNET_PHYS
from host_tools import tomlfile
from host_tools.paths import BOARDS

# The firmware image's offset in flash, per chip: where the second-stage
# bootloader goes (Espressif's download pages; the ESP32 keeps it at 0x1000;
# CircuitPython's ports/espressif/Makefile, BOOTLOADER_OFFSET, agrees).
FLASH_OFFSETS = {"esp32": 0x1000, "esp32s3": 0x0, "esp32c3": 0x0}
VIRTUAL_CHIP = "unix"
CHIPS = tuple(FLASH_OFFSETS) + (VIRTUAL_CHIP,)
MPY_ARCHES = ("xtensawin", "rv32imc", "host")
NETWORKS = ("wifi", "ethernet", "host")
POWER = ("usb", "battery", "poe")
MAX_GPIO = 48  # the ESP32-S3 has the most: GPIO0-48
RUNTIMES = ("micropython", "circuitpython")
RUNTIME_NAMES = {"micropython": "MicroPython", "circuitpython": "CircuitPython"}
CIRCUITPYTHON_CHIPS = ("esp32s3",)  # the chips a CircuitPython profile may have, so far
HAL_KINDS = {"micropython": "esp32", "circuitpython": "circuitpython"}  # the node config's hal.kind

_REQUIRED = ("title", "chip", "mpy_arch", "network", "power", "deep_sleep")
_COMMON = ("title", "runtime", "chip", "flash_offset", "mpy_arch", "network", "power", "deep_sleep", "i2c",
           "uart", "ultrasonic")
_ULTRASONIC = ("trig", "echo")
_UF2 = ("volume", "board_id")
# A CircuitPython `board` pin name (D5, SDA1, A0); CircuitPython's board ids
# and a UF2 bootloader's Board-ID (dash-separated tokens); a FAT volume label.
_PIN_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_VOLUME = re.compile(r"[A-Z0-9_-]{1,11}")
_ETHERNET = ("phy", "phy_addr", "mdc", "mdio", "power", "ref_clk")
_RANGING_GPIO = ("hc-sr04", "jsn-sr04t")  # ranging drivers on a trigger and an echo pin


class BoardError(ValueError):
    """A board profile that cannot be used, or sensors a board cannot take."""


@dataclass(frozen=True)
class Board:
    name: str
    path: Path
    title: str
    chip: str
    flash_offset: int | None
    mpy_arch: str
    network: str
    power: str
    deep_sleep: bool
    i2c: dict | None
    uart: dict | None
    ultrasonic: dict | None
    ethernet: dict | None
    runtime: str = "micropython"
    board_id: str | None = None  # CircuitPython's id for the board (boot_out.txt's "Board ID:")
    uf2: dict | None = None      # its UF2 bootloader's drive: volume label, Board-ID

    @property
    def virtual(self):
        return self.chip == VIRTUAL_CHIP

    @property
    def runtime_name(self):
        return RUNTIME_NAMES[self.runtime]


def _check_fields(where, table, allowed, required):
    for key in table:
        if key not in allowed:
            raise BoardError("%s: unknown field %r (allowed: %s)" % (where, key, ", ".join(allowed)))
    for key in required:
        if key not in table:
            raise BoardError("%s: field '%s' is missing" % (where, key))


def _gpio(where, v):
    if type(v) is not int or not 0 <= v <= MAX_GPIO:
        raise BoardError("%s must be a GPIO number, 0 to %d" % (where, MAX_GPIO))


def _pin_name(where, v):
    if type(v) is not str or not _PIN_NAME.fullmatch(v):
        raise BoardError("%s must be a pin name of CircuitPython's board module (capitals, digits, _), "
                         "such as \"D5\" or \"SDA\", not %r" % (where, v))


@dataclass(frozen=True)
class _Rules:
    """What a profile for one runtime holds, and how it names pins."""
    top: tuple
    required: tuple
    i2c: tuple
    i2c_required: tuple
    uart: tuple
    networks: tuple
    pin: object   # checks one pin: _gpio or _pin_name
    pins: str     # what a list of pins holds, for messages


_RULES = {
    "micropython": _Rules(top=_COMMON + ("ethernet",), required=_REQUIRED, i2c=("id", "sda", "scl", "freq"),
                          i2c_required=("id", "sda", "scl"), uart=("id", "tx", "rx"), networks=NETWORKS,
                          pin=_gpio, pins="GPIO numbers"),
    "circuitpython": _Rules(top=_COMMON + ("board_id", "uf2"), required=_REQUIRED + ("board_id",),
                            i2c=("sda", "scl", "freq"), i2c_required=("sda", "scl"), uart=("tx", "rx"),
                            networks=("wifi",), pin=_pin_name, pins="pin names"),
}


def _int(where, v, lo, hi, what):
    if type(v) is not int or not lo <= v <= hi:
        raise BoardError("%s must be %s, %d to %d, not %r" % (where, what, lo, hi, v))


def _section(where, data, key, allowed, required, pins, check_pin=_gpio):
    table = data.get(key)
    if table is None:
        return None
    if not isinstance(table, dict):
        raise BoardError("%s: [%s] must be a table" % (where, key))
    _check_fields("%s: [%s]" % (where, key), table, allowed, required)
    for pin in pins:
        if pin in table:
            check_pin("%s: %s.%s" % (where, key, pin), table[pin])
    if "id" in table:
        _int("%s: %s.id" % (where, key), table["id"], 0, 2, "a bus number")
    return dict(table)


def _choice(where, data, key, choices, default=None):
    v = data.get(key, default)
    if v not in choices:
        raise BoardError("%s: %s must be one of %s, not %r" % (where, key, ", ".join(choices), v))
    return v


def _identifier(where, v, what, example):
    if type(v) is not str or not _ID.fullmatch(v):
        raise BoardError("%s must be %s, such as \"%s\", not %r" % (where, what, example, v))


def _circuitpython(where, data, chip):
    """board_id and [uf2] of a CircuitPython profile, checked."""
    if chip not in CIRCUITPYTHON_CHIPS:
        raise BoardError("%s: chip must be %s for runtime = \"circuitpython\" (the CircuitPython boards "
                         "citynode supports so far), not %r" % (where, " or ".join(CIRCUITPYTHON_CHIPS),
                                                                  chip))
    _identifier("%s: board_id" % where, data["board_id"], "CircuitPython's board id (boot_out.txt's "
                "\"Board ID:\")", "adafruit_feather_esp32s3_4mbflash_2mbpsram")
    uf2 = _section(where, data, "uf2", _UF2, _UF2, ())
    if uf2 is not None:
        if type(uf2["volume"]) is not str or not _VOLUME.fullmatch(uf2["volume"]):
            raise BoardError("%s: uf2.volume must be the UF2 drive's volume label (1 to 11 capitals, digits, "
                             "_ or -), such as \"FTHRS3BOOT\", not %r" % (where, uf2["volume"]))
        _identifier("%s: uf2.board_id" % where, uf2["board_id"],
                    "the Board-ID line of the drive's INFO_UF2.TXT", "ESP32-S3-Feather-revC")
    return data["board_id"], uf2


def parse(path):
    """The Board in TOML file `path`, checked field by field."""
    path = Path(path)
    where = str(path)
    try:
        data = tomlfile.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise BoardError("%s: cannot read: %s" % (where, e.strerror)) from None
    except UnicodeDecodeError:
        raise BoardError("%s: not UTF-8 text; save it as UTF-8" % where) from None
    except tomlfile.TOMLDecodeError as e:
        raise BoardError("%s: not valid TOML: %s" % (where, e)) from None
    runtime = _choice(where, data, "runtime", RUNTIMES, "micropython")
    rules = _RULES[runtime]
    _check_fields(where, data, rules.top, rules.required)
    if type(data["title"]) is not str or not data["title"].strip():
        raise BoardError("%s: title must be a non-empty string" % where)
    chip = _choice(where, data, "chip", CHIPS)
    board_id, uf2 = _circuitpython(where, data, chip) if runtime == "circuitpython" else (None, None)
    offset = data.get("flash_offset")
    if chip == VIRTUAL_CHIP:
        if offset is not None:
            raise BoardError("%s: a virtual board has no flash_offset" % where)
    elif offset is not None and type(offset) is not int:
        raise BoardError("%s: flash_offset must be an integer such as 0x%x (no quotes), not %r"
                         % (where, FLASH_OFFSETS[chip], offset))
    elif offset != FLASH_OFFSETS[chip]:
        raise BoardError("%s: flash_offset must be 0x%x for %s (%s's image offset), not %s" % (
            where, FLASH_OFFSETS[chip], chip, RUNTIME_NAMES[runtime],
            "missing" if offset is None else hex(offset)))
    if type(data["deep_sleep"]) is not bool:
        raise BoardError("%s: deep_sleep must be true or false" % where)
    network = _choice(where, data, "network", rules.networks)
    i2c = _section(where, data, "i2c", rules.i2c, rules.i2c_required, ("sda", "scl"), rules.pin)
    uart = _section(where, data, "uart", rules.uart, rules.uart, ("tx", "rx"), rules.pin)
    eth = _section(where, data, "ethernet", _ETHERNET, ("phy", "phy_addr", "mdc", "mdio"),
                   ("mdc", "mdio", "power", "ref_clk"))
    if i2c is not None and "freq" in i2c:
        _int("%s: i2c.freq" % where, i2c["freq"], 1000, 1000000, "a clock in Hz")
    if eth is not None:
        if eth["phy"] not in ETHERNET_PHYS:
            raise BoardError("%s: ethernet.phy must be one of %s, not %r" % (where, ", ".join(ETHERNET_PHYS),
                                                                            eth["phy"]))
        _int("%s: ethernet.phy_addr" % where, eth["phy_addr"], 0, 31, "the PHY's address")
    us = _section(where, data, "ultrasonic", _ULTRASONIC, _ULTRASONIC, ())
    if us is not None:
        for key in _ULTRASONIC:
            if not isinstance(us[key], list):
                raise BoardError("%s: ultrasonic.%s must be a list of %s" % (where, key, rules.pins))
            for i, pin in enumerate(us[key]):
                rules.pin("%s: ultrasonic.%s[%d]" % (where, key, i), pin)
        if len(us["trig"]) != len(us["echo"]):
            raise BoardError("%s: ultrasonic.trig and ultrasonic.echo must be the same length" % where)
    if (network == "ethernet") != (eth is not None):
        raise BoardError("%s: [ethernet] is needed exactly when network = \"ethernet\"" % where)
    if chip != VIRTUAL_CHIP and (i2c is None or uart is None or us is None):
        raise BoardError("%s: an %s board needs [i2c], [uart] and [ultrasonic]" % (where, chip))
    return Board(name=path.stem, path=path, title=data["title"], chip=chip, flash_offset=offset,
                 mpy_arch=_choice(where, data, "mpy_arch", MPY_ARCHES), network=network,
                 power=_choice(where, data, "power", POWER), deep_sleep=data["deep_sleep"], i2c=i2c,
                 uart=uart, ultrasonic=us, ethernet=eth, runtime=runtime, board_id=board_id, uf2=uf2)


def names():
    return sorted(p.stem for p in BOARDS.glob("*.toml"))


def load(name):
    """A bundled board by name (`esp32-devkitc`) or a profile by path."""
    path = Path(name)
    if path.suffix == ".toml":
        return parse(path)
    if name not in names():
        raise BoardError("no board profile '%s' (boards: %s)" % (name, ", ".join(names())))
    return parse(BOARDS / (name + ".toml"))


def all_boards():
    return [load(n) for n in names()]


def hal_config(board, sensors):
    """The node config's `hal` for `sensors` on `board`: GPIO ultrasonic
    sensors take the board's trigger/echo pairs in order, an A02YYUW the
    UART, the BME280 and the QMC5883L the I2C bus (one of each: their
    addresses are fixed). Its kind is "esp32" (pins are GPIO numbers, buses
    have ids) or "circuitpython" (pins are `board` names, buses no ids)."""
    if board.virtual:
        return {"kind": "sim"}
    pins = {}
    slot = 0
    uart_user = None
    on_i2c = {}
    for s in sensors:
        sid, kind = s["id"], registry.get(s["type"])
        driver = s.get("driver", kind.DRIVER)
        if kind.RANGED:
            if driver in _RANGING_GPIO:
                if slot >= len(board.ultrasonic["trig"]):
                    raise BoardError("sensor %s: %s has trigger/echo pins for %d ultrasonic sensors" % (
                        sid, board.name, slot))
                pins[sid] = {"trig": board.ultrasonic["trig"][slot], "echo": board.ultrasonic["echo"][slot]}
                slot += 1
            elif uart_user is not None:
                raise BoardError("sensor %s: %s has one UART for ranging, taken by %s" % (
                    sid, board.name, uart_user))
            else:
                uart_user = sid
        else:
            part = driver
            if part in on_i2c:
                raise BoardError("sensor %s: one %s per I2C bus (fixed address), taken by %s" % (
                    sid, part.upper(), on_i2c[part]))
            on_i2c[part] = sid
    hal = {"kind": HAL_KINDS[board.runtime], "pins": pins}
    if on_i2c:
        hal["i2c"] = dict(board.i2c)
    if uart_user is not None:
        hal["uart"] = dict(board.uart)
    return hal


# ---- `citynode boards`


def _pins(table):
    return " ".join("%s=%s" % kv for kv in table.items()) if table else "-"


def describe(b):
    lines = ["%s: %s" % (b.name, b.title),
             "  runtime       %s" % b.runtime_name]
    if b.board_id:
        lines.append("  board id      %s" % b.board_id)
    if b.uf2:
        lines.append("  uf2 drive     %s (Board-ID %s)" % (b.uf2["volume"], b.uf2["board_id"]))
    lines += ["  chip          %s" % b.chip,
              "  image offset  %s" % ("-" if b.flash_offset is None else "0x%x" % b.flash_offset),
              "  .mpy arch     %s" % b.mpy_arch,
              "  network       %s" % b.network,
              "  power         %s, deep sleep %s" % (b.power, "yes" if b.deep_sleep else "no"),
              "  i2c           %s" % _pins(b.i2c),
              "  uart          %s" % _pins(b.uart)]
    if b.ultrasonic:
        pairs = zip(b.ultrasonic["trig"], b.ultrasonic["echo"], strict=True)
        lines.append("  ultrasonic    " + ", ".join("trig %s/echo %s" % p for p in pairs))
    if b.ethernet:
        lines.append("  ethernet      %s" % _pins(b.ethernet))
    return lines
