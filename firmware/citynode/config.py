"""The node's config.json checks: every field, with its path in the error,
and the checks of its sensor list (run once before the core is built, at
boot on the node and before a replay on the desk, so the core itself can
trust its configuration and stay small).

Loaded by citynode.board.node for the boot (and by the desk's tools), then
dropped from the node's memory: a board needs them once (the node keeps
only `CONFIG_PATH` and `DEFAULTS`). Every error is a ValueError whose text
names the field (a sensor's errors name the sensor). docs/node.md has the
format.
"""

import json

from citynode.sense.ranging import RANGERS
from citynode.sensors import get as type_module

CONFIG_PATH = "/config.json"
DEFAULTS = {"outbox_dir": "/outbox", "outbox_kb": 512, "outbox_ram_kb": 32, "settings": "/settings.json",
            "health_s": 60, "recording": "/rec.jsonl", "speed": 1, "keepalive": 60, "ntp": "pool.ntp.org",
            "power": "always_on", "wdt_s": 30}
FIELDS = ("site", "node", "broker", "network", "ntp", "power", "ha_discovery", "sensors", "hal", "outbox_dir",
          "outbox_kb", "outbox_ram_kb", "settings", "health_s")
BROKER_FIELDS = ("host", "port", "keepalive", "user", "password", "tls")
HAL_FIELDS = {"sim": ("kind", "recording", "speed"), "esp32": ("kind", "pins", "i2c", "uart", "wdt_s"),
              "circuitpython": ("kind", "pins", "i2c", "uart", "wdt_s")}
BOARD_HALS = ("esp32", "circuitpython")  # the layers of a real board: its pins, its deep sleep
POWER_PROFILES = ("always_on", "duty_cycle")

# Which fields each sensor type takes, and which must be above 0, is the
# type's own (citynode.sensors); all but `id`, `type` and `driver` are
# numbers (`thresholds_mm`: a list of three).
_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"


def check_sensor(s):
    """Raise ValueError naming the sensor and field if entry `s` is malformed."""
    sid = s.get("id")
    if type(sid) is not str or not sid or any(c not in _ID_CHARS for c in sid):
        raise ValueError("sensor id %r: use letters, digits, '-' and '_' (it becomes an MQTT topic level)"
                         % (sid,))
    kind = s.get("type")
    try:
        t = type_module(kind)
    except ValueError as e:
        raise ValueError("sensor %s: %s" % (sid, e)) from None
    allowed = t.PARAMS
    for key in s:
        if key not in allowed:
            raise ValueError("sensor %s: unknown field '%s' for sensor type %s" % (sid, key, kind))
        v = s[key]
        if key == "driver":
            if type(v) is not str:
                raise ValueError("sensor %s: field 'driver' must be a string" % sid)
        elif key == "thresholds_mm":
            if (type(v) is not list or len(v) != 3 or any(type(x) is not int for x in v)
                    or not 0 < v[0] < v[1] < v[2]):
                raise ValueError("sensor %s: field 'thresholds_mm' must be 3 rising integers above 0 (mm: "
                                 "watch, warning, danger)" % sid)
        elif key in ("id", "type"):
            continue
        elif (type(v) is not int and type(v) is not float) or v - v != 0:
            raise ValueError("sensor %s: field '%s' must be a number" % (sid, key))
        elif v < 0 or (v == 0 and key in t.POSITIVE):
            raise ValueError("sensor %s: field '%s' must be %s" % (
                sid, key, "above 0" if key in t.POSITIVE else "0 or more"))
    driver = s.get("driver", t.DRIVER)
    if t.RANGED and driver not in RANGERS:
        raise ValueError("sensor %s: unknown ranging driver %s (one of %s)"
                         % (sid, s.get("driver"), ", ".join(sorted(RANGERS))))
    if driver not in t.DRIVERS:
        raise ValueError("sensor %s: unknown driver %s for sensor type %s (one of %s)"
                         % (sid, driver, kind, ", ".join(t.DRIVERS)))


def check_sensors(sensors):
    """Check every entry of a node's sensor list, and that ids are unique."""
    seen = []
    for s in sensors:
        check_sensor(s)
        if s["id"] in seen:
            raise ValueError("sensor %s: defined twice" % s["id"])
        seen.append(s["id"])


def _fail(message):
    raise ValueError("config.json: " + message)


def _is_num(v):
    return (type(v) is int or type(v) is float) and v - v == 0


def _only(obj, allowed, where):
    for key in obj:
        if key not in allowed:
            _fail("unknown field '%s%s'" % (where, key))


def _check_name(cfg, key):
    v = cfg.get(key)
    if type(v) is not str or not v or any(c not in _ID_CHARS for c in v):
        _fail("%s must be letters, digits, '-' and '_' (it becomes an MQTT topic level)" % key)


def load_config(path=CONFIG_PATH):
    """The config file as a dict; ValueError (naming config.json) if it
    cannot be read or is not a JSON object."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        _fail("cannot read %s" % path)
    try:
        cfg = json.loads(text)
    except ValueError:
        _fail("not valid JSON")
    if type(cfg) is not dict:
        _fail("must be a JSON object")
    return cfg


def check_broker(b):
    """Raise ValueError naming the field if the `broker` part is unusable."""
    if type(b) is not dict:
        _fail("broker must be an object")
    _only(b, BROKER_FIELDS, "broker.")
    if type(b.get("host")) is not str or not b["host"]:
        _fail("broker.host must be a non-empty string")
    if type(b.get("port")) is not int:
        _fail("broker.port must be an integer")
    if not 0 < b["port"] < 65536:
        _fail("broker.port must be 1 to 65535")
    ka = b.get("keepalive", DEFAULTS["keepalive"])
    if type(ka) is not int or not 0 <= ka < 65536:
        _fail("broker.keepalive must be an integer, 0 to 65535 s")
    for key in ("user", "password"):
        if key in b and type(b[key]) is not str:
            _fail("broker.%s must be a string" % key)
    if "password" in b and "user" not in b:
        _fail("broker.password needs broker.user")
    tls = b.get("tls")
    if tls is not None:
        if type(tls) is not dict:
            _fail("broker.tls must be an object")
        _only(tls, ("ca", "server_hostname"), "broker.tls.")
        if type(tls.get("ca")) is not str or not tls["ca"]:
            _fail("broker.tls.ca must be the path of the CA certificate (DER) on the flash")
        if "server_hostname" in tls and type(tls["server_hostname"]) is not str:
            _fail("broker.tls.server_hostname must be a string")


ETHERNET_PHYS = ("LAN8720", "IP101", "RTL8201", "DP83848", "KSZ8081")  # network.LAN's PHY_* types


def _gpio(v, where):
    if type(v) is not int or not 0 <= v <= 48:
        _fail("%s must be a GPIO number, 0 to 48" % where)


def _pin_name(v, where):
    """A CircuitPython `board` pin name: capitals, digits and underscores."""
    if type(v) is not str or not v or not v[0].isalpha() or \
            any(not (c.isupper() or c.isdigit() or c == "_") for c in v):
        _fail("%s must be a board pin name such as \"D5\" or \"SDA\"" % where)


def _check_bus(hal, key, fields, pin):
    bus = hal.get(key)
    if type(bus) is not dict:
        _fail("hal.%s must be an object with %s" % (key, ", ".join(fields)))
    _only(bus, fields + ("freq",), "hal.%s." % key)
    for f in fields:
        if f == "id":
            if type(bus.get("id")) is not int or bus["id"] < 0:
                _fail("hal.%s.id must be a bus number" % key)
        else:
            pin(bus.get(f), "hal.%s.%s" % (key, f))


def _check_board(hal, sensors):
    """The board layer needs a place for every sensor: trigger/echo pins for
    a GPIO ranger, the UART for an A02YYUW, the I2C bus for the BME280 and
    the QMC5883L. An ESP32 under MicroPython names GPIO numbers and bus
    ids; CircuitPython names the `board` module's pins and has no bus ids."""
    if hal["kind"] == "esp32":
        pin, uart, i2c = _gpio, ("id", "tx", "rx"), ("id", "sda", "scl")
    else:
        pin, uart, i2c = _pin_name, ("tx", "rx"), ("sda", "scl")
    pins = hal.get("pins", {})
    if type(pins) is not dict:
        _fail("hal.pins must be an object: sensor id -> {\"trig\": pin, \"echo\": pin}")
    for sid in pins:
        if all(s["id"] != sid for s in sensors):
            _fail("hal.pins.%s: no such sensor" % sid)
    for s in sensors:
        sid, kind = s["id"], type_module(s["type"])
        if kind.RANGED and s.get("driver", kind.DRIVER) != "a02yyuw":
            p = pins.get(sid)
            if type(p) is not dict:
                _fail("hal.pins.%s must give the sensor's trig and echo pins" % sid)
            _only(p, ("trig", "echo"), "hal.pins.%s." % sid)
            pin(p.get("trig"), "hal.pins.%s.trig" % sid)
            pin(p.get("echo"), "hal.pins.%s.echo" % sid)
        elif kind.RANGED:
            _check_bus(hal, "uart", uart, pin)
        else:
            _check_bus(hal, "i2c", i2c, pin)
    wdt = hal.get("wdt_s", DEFAULTS["wdt_s"])
    if type(wdt) is not int or not 5 <= wdt <= 600:
        _fail("hal.wdt_s must be an integer, 5 to 600 s")


def _check_network(net):
    if type(net) is not dict:
        _fail("network must be an object")
    kind = net.get("kind")
    if kind == "wifi":
        _only(net, ("kind", "ssid", "password"), "network.")
        if type(net.get("ssid")) is not str or not net["ssid"]:
            _fail("network.ssid must be a non-empty string")
        if type(net.get("password", "")) is not str:
            _fail("network.password must be a string")
    elif kind == "ethernet":
        _only(net, ("kind", "phy", "phy_addr", "mdc", "mdio", "power", "ref_clk"), "network.")
        if net.get("phy") not in ETHERNET_PHYS:
            _fail("network.phy must name the Ethernet PHY (e.g. LAN8720)")
        for key in ("phy_addr", "mdc", "mdio", "power", "ref_clk"):
            if key in net or key in ("phy_addr", "mdc", "mdio"):
                _gpio(net.get(key), "network." + key)
    else:
        _fail("network.kind must be \"wifi\" or \"ethernet\"")


def check_config(cfg):
    """Raise ValueError with the field's path ("config.json: broker.port
    must be an integer") if `cfg` is not a usable node config."""
    if type(cfg) is not dict:
        _fail("must be a JSON object")
    _only(cfg, FIELDS, "")
    _check_name(cfg, "site")
    _check_name(cfg, "node")
    check_broker(cfg.get("broker"))
    sensors = cfg.get("sensors")
    if type(sensors) is not list or not sensors:
        _fail("sensors must be a non-empty list")
    for i in range(len(sensors)):
        if type(sensors[i]) is not dict:
            _fail("sensors[%d] must be an object" % i)
    try:
        check_sensors(sensors)
    except ValueError as e:
        _fail("sensors: %s" % e)
    hal = cfg.get("hal")
    if type(hal) is not dict:
        _fail("hal must be an object")
    kind = hal.get("kind")
    if kind not in HAL_FIELDS:
        _fail("hal.kind must be \"sim\" (a recording), \"esp32\" or \"circuitpython\" (the board's sensors)")
    _only(hal, HAL_FIELDS[kind], "hal.")
    if kind == "sim":
        rec = hal.get("recording", DEFAULTS["recording"])
        if type(rec) is not str or not rec:
            _fail("hal.recording must be a file path")
        speed = hal.get("speed", DEFAULTS["speed"])
        if not _is_num(speed) or speed < 0:
            _fail("hal.speed must be a number, 0 or more (1 = real time, 0 = as fast as possible)")
    else:
        _check_board(hal, sensors)
    if "network" in cfg:
        _check_network(cfg["network"])
    if type(cfg.get("ntp", DEFAULTS["ntp"])) is not str:
        _fail("ntp must be a host name")
    if cfg.get("power", DEFAULTS["power"]) not in POWER_PROFILES:
        _fail("power must be \"always_on\" or \"duty_cycle\"")
    if cfg.get("power") == "duty_cycle" and kind not in BOARD_HALS:
        _fail("power \"duty_cycle\" needs a board's hal.kind, \"esp32\" or \"circuitpython\" (deep sleep is "
              "the board's)")
    if type(cfg.get("ha_discovery", False)) is not bool:
        _fail("ha_discovery must be true or false")
    for key, what in (("outbox_dir", "folder"), ("settings", "file")):
        v = cfg.get(key, DEFAULTS[key])
        if type(v) is not str or not v:
            _fail("%s must be a %s path" % (key, what))
    for key, low, high, what in (("outbox_kb", 8, 16384, "flash"),
                                 ("outbox_ram_kb", 4, 1024, "RAM, when the filesystem is read-only,")):
        kb = cfg.get(key, DEFAULTS[key])
        if type(kb) is not int or not low <= kb <= high:
            _fail("%s must be an integer, %d to %d (KB of %s for readings kept while the broker is away)"
                  % (key, low, high, what))
    health = cfg.get("health_s", DEFAULTS["health_s"])
    if not _is_num(health) or health <= 0:
        _fail("health_s must be a number above 0")
