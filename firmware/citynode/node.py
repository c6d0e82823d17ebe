"""The node's main loop: config, hardware layer, core, publisher, broker,
remote commands.

    from citynode import node
    node.main()                  # what main.py does at power-up

`main()` reads `/config.json`, checks it, builds a `Node` and runs it; a
missing or invalid config, or any error while running, puts the node in
safe mode (one line on the console, a retained `safe_mode` status if the
broker part of the config is usable, then an idle loop a Ctrl-C ends)
instead of a traceback and a reset loop. docs/node.md has the config
format, the loop, commands and the health payload.

The hardware layer (`hal.kind`) is either "sim" (samples from a recording
on the flash, paced by its own timestamps: the virtual board) or "esp32"
(the drivers on the board's pins, read when the core says they are due,
with a watchdog, the network and NTP: citynode.hal_esp32). Both hand the
loop `(sensor, tick, sample)`; everything else is the same code. Runs under
MicroPython (the board, the virtual board) and CPython (the desk).
"""

import gc
import json

from citynode import VERSION, ticks
from citynode.config import _ID_CHARS, check_sensors
from citynode.core import Core
from citynode.ticks import add as ticks_add
from citynode.ticks import diff as ticks_diff
from citynode.ticks import now_ms as ticks_ms
from citynode.ticks import sleep_ms

CONFIG_PATH = "/config.json"
FIELDS = ("site", "node", "broker", "network", "ntp", "power", "ha_discovery", "sensors", "hal", "outbox_dir",
          "settings", "health_s")
BROKER_FIELDS = ("host", "port", "keepalive", "user", "password", "tls")
HAL_FIELDS = {"sim": ("kind", "recording", "speed"), "esp32": ("kind", "pins", "i2c", "uart", "wdt_s")}
POWER_PROFILES = ("always_on", "duty_cycle")
DEFAULTS = {"outbox_dir": "/outbox", "settings": "/settings.json", "health_s": 60, "recording": "/rec.jsonl",
            "speed": 1, "keepalive": 60, "ntp": "pool.ntp.org", "power": "always_on", "wdt_s": 30}
SETTLE_MS = 30000  # at the end of a recording: at most this long to empty the outbox
REBOOT_SETTLE_MS = 5000  # before a commanded reboot: at most this long to get the ack out
LINGER_S = 24 * 3600  # then the connection is kept (no more messages) this long
SAFE_IDLE_S = 24 * 3600  # how long safe mode idles before main() returns to the REPL
_TURN_MS = 20  # the longest sleep in one turn of a waiting loop
RETAINED_CMD = "retained commands are not run (publish commands without the retain flag)"


# ---- config


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


def _gpio(v, where):
    if type(v) is not int or not 0 <= v <= 48:
        _fail("%s must be a GPIO number, 0 to 48" % where)


def _check_bus(hal, key, fields):
    bus = hal.get(key)
    if type(bus) is not dict:
        _fail("hal.%s must be an object with %s" % (key, ", ".join(fields)))
    _only(bus, fields + ("freq",), "hal.%s." % key)
    for f in fields:
        if f == "id":
            if type(bus.get("id")) is not int or bus["id"] < 0:
                _fail("hal.%s.id must be a bus number" % key)
        else:
            _gpio(bus.get(f), "hal.%s.%s" % (key, f))


def _check_esp32(hal, sensors):
    """The board layer needs a place for every sensor: trigger/echo pins for
    a GPIO ranger, the UART for an A02YYUW, the I2C bus for the BME280 and
    the QMC5883L."""
    pins = hal.get("pins", {})
    if type(pins) is not dict:
        _fail("hal.pins must be an object: sensor id -> {\"trig\": GPIO, \"echo\": GPIO}")
    for sid in pins:
        if all(s["id"] != sid for s in sensors):
            _fail("hal.pins.%s: no such sensor" % sid)
    for s in sensors:
        sid, kind = s["id"], s["type"]
        if kind in ("bay_ultrasonic", "water") and s.get("driver", "hc-sr04") != "a02yyuw":
            p = pins.get(sid)
            if type(p) is not dict:
                _fail("hal.pins.%s must give the sensor's trig and echo GPIOs" % sid)
            _only(p, ("trig", "echo"), "hal.pins.%s." % sid)
            _gpio(p.get("trig"), "hal.pins.%s.trig" % sid)
            _gpio(p.get("echo"), "hal.pins.%s.echo" % sid)
        elif kind in ("bay_ultrasonic", "water"):
            _check_bus(hal, "uart", ("id", "tx", "rx"))
        else:
            _check_bus(hal, "i2c", ("id", "sda", "scl"))
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
        if net.get("phy") not in ("LAN8720", "IP101", "RTL8201", "DP83848", "KSZ8081"):
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
        _fail("hal.kind must be \"sim\" (a recording) or \"esp32\" (the board's sensors)")
    _only(hal, HAL_FIELDS[kind], "hal.")
    if kind == "sim":
        rec = hal.get("recording", DEFAULTS["recording"])
        if type(rec) is not str or not rec:
            _fail("hal.recording must be a file path")
        speed = hal.get("speed", DEFAULTS["speed"])
        if not _is_num(speed) or speed < 0:
            _fail("hal.speed must be a number, 0 or more (1 = real time, 0 = as fast as possible)")
    else:
        _check_esp32(hal, sensors)
    if "network" in cfg:
        _check_network(cfg["network"])
    if type(cfg.get("ntp", DEFAULTS["ntp"])) is not str:
        _fail("ntp must be a host name")
    if cfg.get("power", DEFAULTS["power"]) not in POWER_PROFILES:
        _fail("power must be \"always_on\" or \"duty_cycle\"")
    if type(cfg.get("ha_discovery", False)) is not bool:
        _fail("ha_discovery must be true or false")
    for key in ("outbox_dir", "settings"):
        v = cfg.get(key, DEFAULTS[key])
        if type(v) is not str or not v:
            _fail("%s must be a path" % key)
    health = cfg.get("health_s", DEFAULTS["health_s"])
    if not _is_num(health) or health <= 0:
        _fail("health_s must be a number above 0")


def _client(cfg, will):
    # The connection's modules are imported where they are used, so a board
    # that only checks its config (record mode) does not carry them.
    from citynode.mqtt import MQTTClient

    b = cfg["broker"]
    prefix = "citynode/%s/%s/" % (cfg.get("site"), cfg.get("node"))
    ca = hostname = None
    tls = b.get("tls")
    if tls:
        with open(tls["ca"], "rb") as f:
            ca = f.read()
        hostname = tls.get("server_hostname")
    return MQTTClient("%s-%s" % (cfg.get("site"), cfg.get("node")), b["host"], b["port"], user=b.get("user"),
                      password=b.get("password"), keepalive=b.get("keepalive", DEFAULTS["keepalive"]),
                      ssl_ca=ca, server_hostname=hostname, will_topic=prefix + "status" if will else None)


def reset_cause():
    """"power", "soft", "hard", "watchdog", "deepsleep" where the port
    says (an ESP32), else "unknown" (the unix port has no reset_cause)."""
    try:
        import machine

        cause = machine.reset_cause()
    except (ImportError, AttributeError):
        return "unknown"
    for name, attr in (("power", "PWRON_RESET"), ("soft", "SOFT_RESET"), ("hard", "HARD_RESET"),
                       ("watchdog", "WDT_RESET"), ("deepsleep", "DEEPSLEEP_RESET")):
        if getattr(machine, attr, None) == cause:
            return name
    return "unknown"


def heap_free():
    """Free heap in bytes after a collection, or None (CPython)."""
    if not hasattr(gc, "mem_free"):
        return None
    gc.collect()
    return gc.mem_free()


# ---- the node


def make_hal(cfg):
    """The hardware layer the config names; imported here so a board loads
    only its own (the recording reader stays off an ESP32's heap)."""
    hal = cfg["hal"]
    if hal["kind"] == "sim":
        from citynode.hal_sim import SimHal
        from citynode.recording import Reader

        reader = Reader(hal.get("recording", DEFAULTS["recording"]))
        if reader.parts:
            reader.close()
            raise ValueError("hal.recording: bus-level samples need the desk's emulated parts")
        return SimHal(reader, speed=hal.get("speed", DEFAULTS["speed"]))
    from citynode.hal_esp32 import BoardHal

    return BoardHal(cfg)


class Node:
    """Core + MQTT client (will on status) + outbox + publisher + remote
    commands, fed by a hardware layer (`make_hal(cfg)` unless given).
    `run()` is the main loop."""

    def __init__(self, cfg, hal=None):
        from citynode.commands import Commands
        from citynode.outbox import Outbox
        from citynode.publisher import Publisher

        self.cfg = cfg
        self.hal = hal if hal is not None else make_hal(cfg)
        self.health_ms = ticks.ms(cfg.get("health_s", DEFAULTS["health_s"]))
        self.reset = reset_cause()
        self.boot_ms = ticks_ms()
        self.prefix = "citynode/%s/%s/" % (cfg["site"], cfg["node"])
        self.client = _client(cfg, True)
        self.outbox = Outbox(cfg.get("outbox_dir", DEFAULTS["outbox_dir"]))
        self.publisher = Publisher(self.client, self.outbox, cfg["site"], cfg["node"])
        self.clock = self.hal.clock()
        self.core = Core(cfg["sensors"], self.clock, self.publisher.publish)
        self.commands = Commands(self.core, cfg.get("settings", DEFAULTS["settings"]))
        self.notes = []  # what went wrong at boot but did not stop the node; sent in health
        note = self.commands.load()
        if note is not None:
            self._note("settings: " + note)
        self.discovery = cfg.get("ha_discovery", False)  # True until the config topics are out
        self._acks = []
        self.client.on_message = self._on_message
        self.client.subscribe(self.prefix + "cmd/+", 1)  # sent at each connect
        self.samples = 0  # samples the hardware layer handed over
        self.taken = 0  # of those, fed to the core (due, and of a configured sensor)
        self.unknown = 0  # samples of sensors the config does not have
        self.healths = 0
        self.commands_handled = 0

    def _note(self, text):
        _say("citynode: " + text)
        self.notes.append(text)

    # ---- commands

    def _on_message(self, topic, payload, retained, dup):
        """A message on `cmd/+`: answered on `cmd/ack` (queued here, sent by
        `service()`, never from inside the client's poll)."""
        suffix = topic[len(self.prefix):] if topic.startswith(self.prefix) else topic
        if suffix == "cmd/ack":  # our own answers come back through cmd/+
            return
        self.commands_handled += 1
        if retained:
            ack = {"cmd": suffix[4:], "id": None, "ok": False, "reason": RETAINED_CMD}
        else:
            ack = self.commands.handle(suffix, payload)
        self._acks.append(ack)

    def service(self):
        """One turn of housekeeping: the hardware layer (watchdog, network),
        the connection, the outbox, command acks, discovery."""
        self.hal.service()
        self.publisher.service()
        while self._acks:
            ack = self._acks.pop(0)
            t = self.hal.now()
            ack["ts"] = self.clock.epoch(t)
            self.publisher.publish(t, "cmd/ack", ack)
        if self.discovery and self.client.connected:
            from citynode.discovery import announce

            announce(self.client, self.cfg, VERSION)
            self.discovery = False

    def _wait_until(self, deadline):
        while True:
            left = ticks_diff(deadline, ticks_ms())
            if left <= 0:
                return
            self.service()
            sleep_ms(min(left, _TURN_MS))

    def health(self, t):
        """Publish the node's health at tick `t`."""
        c = self.publisher.counters()
        payload = {"uptime_s": ticks_diff(ticks_ms(), self.boot_ms) // 1000, "heap_free": heap_free(),
                   "rssi": self.hal.rssi(), "outbox_depth": c["outbox_depth"], "in_flight": c["in_flight"],
                   "dropped": c["dropped"], "lost": c["lost"], "published": c["published"],
                   "samples": self.samples, "taken": self.taken, "commands": self.commands_handled,
                   "fw": VERSION, "reset": self.reset, "ts": self.clock.epoch(t)}
        if self.notes:
            payload["notes"] = self.notes
        self.healths += 1
        self.publisher.publish(t, "health", payload)  # adds "seq": this message's own number

    def run(self, max_samples=None):
        """Feed the hardware layer's samples to the core, publish health
        every `health_s`, answer commands; at the end of a recording keep
        servicing until the outbox and the in-flight table are empty (at
        most SETTLE_MS). Returns a summary dict. A `reboot` command settles
        (at most REBOOT_SETTLE_MS) and resets the board."""
        core = self.core
        self.service()  # the first connection attempt
        next_health = None
        for sid, t, sample in self.hal.stream(core, self._wait_until):
            if next_health is None:
                next_health = ticks_add(t, self.health_ms)
            while ticks_diff(t, next_health) >= 0:
                self.health(t)
                next_health = ticks_add(next_health, self.health_ms)
            self.samples += 1
            if sid not in core.due_at:
                self.unknown += 1
            elif sample is not None:
                self.taken += 1
                core.feed(sid, t, sample)
            self.service()
            self._reboot_if_asked()
            if max_samples is not None and self.samples >= max_samples:
                self.hal.close()
                break
        return self.settle()

    def _reboot_if_asked(self):
        if self.commands.reboot_requested:
            self.settle(REBOOT_SETTLE_MS)  # the ack goes out first
            self.client.disconnect()
            self.hal.reboot()

    def settle(self, timeout_ms=SETTLE_MS):
        """Service until nothing waits in the outbox or for a PUBACK (and the
        client is connected), at most `timeout_ms`. Returns the summary."""
        end = ticks_add(ticks_ms(), timeout_ms)
        while self.outbox.pending() or self.client.pending() or not self.client.connected or self._acks:
            if ticks_diff(end, ticks_ms()) <= 0:
                break
            self.service()
            sleep_ms(5)
        done = self.publisher.counters()
        done["settled"] = self.outbox.pending() == 0 and self.client.pending() == 0
        done["samples"] = self.samples
        done["taken"] = self.taken
        done["unknown"] = self.unknown
        done["health"] = self.healths
        done["commands"] = self.commands_handled
        return done

    def linger(self, seconds=LINGER_S):
        """Keep the connection alive (keepalive, retained `online`) and keep
        answering commands, publishing nothing else, up to `seconds`; a
        Ctrl-C ends it. A `reboot` command resets the board."""
        end = ticks_add(ticks_ms(), seconds * 1000)
        while ticks_diff(end, ticks_ms()) > 0:
            self.service()
            self._reboot_if_asked()
            sleep_ms(50)


# ---- safe mode and the entry point


def _say(line):
    print(line)


def safe_mode(cfg, reason, idle_s=SAFE_IDLE_S):
    """Print one line; if the config's broker part is usable, publish a
    retained `{"state": "safe_mode", "reason": ...}` on the status topic;
    then idle (servicing the connection) for `idle_s`. Never raises except
    KeyboardInterrupt (a Ctrl-C from mpremote)."""
    _say("citynode safe mode: %s" % reason)
    client = None
    try:
        if type(cfg) is dict:
            try:
                check_broker(cfg.get("broker"))
            except ValueError:
                pass
            else:
                site = cfg.get("site") if type(cfg.get("site")) is str and cfg.get("site") else "unknown"
                node = cfg.get("node") if type(cfg.get("node")) is str and cfg.get("node") else "unknown"
                cfg = {"site": site, "node": node, "broker": cfg["broker"]}
                client = _client(cfg, False)
                status = json.dumps({"state": "safe_mode", "reason": reason, "fw": VERSION})
                client.publish("citynode/%s/%s/status" % (site, node), status, 1, True)  # sent once connected
    except Exception as e:  # noqa: BLE001 - safe mode must not fail
        _say("citynode safe mode: no status published: %r" % (e,))
        client = None
    end = ticks_add(ticks_ms(), idle_s * 1000)
    while ticks_diff(end, ticks_ms()) > 0:
        if client is not None:
            try:
                client.maintain()
            except Exception:  # noqa: BLE001 - keep idling without the broker
                client = None
        sleep_ms(100)


def main(path=CONFIG_PATH):
    """Power-up: load and check the config, run the node, keep its
    connection; any failure ends in safe mode, never in a traceback."""
    cfg = None
    try:
        cfg = load_config(path)
        check_config(cfg)
    except ValueError as e:
        return safe_mode(cfg, str(e))
    n = None
    try:
        n = Node(cfg)
        done = n.run()
        _say("citynode: recording done " + json.dumps(done))
    except Exception as e:  # noqa: BLE001 - anything at all: safe mode, not a reset loop
        if n is not None:
            try:  # noqa: SIM105 - MicroPython has no contextlib
                n.client.disconnect()
            except Exception:  # noqa: BLE001
                pass
        return safe_mode(cfg, "%s: %s" % (type(e).__name__, e))
    n.linger()
