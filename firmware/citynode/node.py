"""The node's main loop: config, hardware layer, core, publisher, broker.

    from citynode import node
    node.main()                  # what main.py does at power-up

`main()` reads `/config.json`, checks it, builds a `Node` and runs it; a
missing or invalid config, or any error while running, puts the node in
safe mode (one line on the console, a retained `safe_mode` status if the
broker part of the config is usable, then an idle loop a Ctrl-C ends)
instead of a traceback and a reset loop. docs/node.md has the config
format, the loop and the health payload.

Only the simulated hardware layer exists so far (`hal.kind` "sim"): the
samples come from a recording on the flash, paced by the recording's own
timestamps. Runs under MicroPython (the board, the virtual board) and
CPython (the desk).
"""

import gc
import json

from citynode import VERSION, ticks
from citynode.config import _ID_CHARS, check_sensors
from citynode.core import SLACK_MS, Core
from citynode.mqtt import MQTTClient
from citynode.outbox import Outbox
from citynode.publisher import Publisher
from citynode.recording import Reader
from citynode.ticks import add as ticks_add
from citynode.ticks import diff as ticks_diff
from citynode.ticks import now_ms as ticks_ms
from citynode.ticks import sleep_ms

CONFIG_PATH = "/config.json"
FIELDS = ("site", "node", "broker", "sensors", "hal", "outbox_dir", "health_s")
BROKER_FIELDS = ("host", "port", "keepalive", "user", "password")
HAL_FIELDS = ("kind", "recording", "speed")
DEFAULTS = {"outbox_dir": "/outbox", "health_s": 60, "recording": "/rec.jsonl", "speed": 1, "keepalive": 60}
SETTLE_MS = 30000  # at the end of a recording: at most this long to empty the outbox
LINGER_S = 24 * 3600  # then the connection is kept (no more messages) this long
SAFE_IDLE_S = 24 * 3600  # how long safe mode idles before main() returns to the REPL
_TURN_MS = 20  # the longest sleep in one turn of a waiting loop


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
    _only(hal, HAL_FIELDS, "hal.")
    if hal.get("kind") != "sim":
        _fail("hal.kind must be \"sim\" (the only hardware layer so far)")
    rec = hal.get("recording", DEFAULTS["recording"])
    if type(rec) is not str or not rec:
        _fail("hal.recording must be a file path")
    speed = hal.get("speed", DEFAULTS["speed"])
    if not _is_num(speed) or speed < 0:
        _fail("hal.speed must be a number, 0 or more (1 = real time, 0 = as fast as possible)")
    box = cfg.get("outbox_dir", DEFAULTS["outbox_dir"])
    if type(box) is not str or not box:
        _fail("outbox_dir must be a folder path")
    health = cfg.get("health_s", DEFAULTS["health_s"])
    if not _is_num(health) or health <= 0:
        _fail("health_s must be a number above 0")


def _client(cfg, will):
    b = cfg["broker"]
    prefix = "citynode/%s/%s/" % (cfg.get("site"), cfg.get("node"))
    return MQTTClient("%s-%s" % (cfg.get("site"), cfg.get("node")), b["host"], b["port"], user=b.get("user"),
                      password=b.get("password"), keepalive=b.get("keepalive", DEFAULTS["keepalive"]),
                      will_topic=prefix + "status" if will else None)


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


class Node:
    """Core + MQTT client (will on status) + outbox + publisher, fed by the
    simulated hardware layer. `run()` is the main loop."""

    def __init__(self, cfg):
        self.cfg = cfg
        hal = cfg["hal"]
        self.speed = hal.get("speed", DEFAULTS["speed"])
        self.health_ms = ticks.ms(cfg.get("health_s", DEFAULTS["health_s"]))
        self.reset = reset_cause()
        self.boot_ms = ticks_ms()
        self.client = _client(cfg, True)
        self.outbox = Outbox(cfg.get("outbox_dir", DEFAULTS["outbox_dir"]))
        self.publisher = Publisher(self.client, self.outbox, cfg["site"], cfg["node"])
        self.reader = Reader(hal.get("recording", DEFAULTS["recording"]))
        if self.reader.parts:
            self.reader.close()
            raise ValueError("hal.recording: bus-level samples need the desk's emulated parts")
        self.clock = ticks.Clock(self.reader.header["start"], 0)
        self.core = Core(cfg["sensors"], self.clock, self.publisher.publish)
        self.samples = 0  # samples read from the recording
        self.taken = 0  # of those, handed to the core
        self.unknown = 0  # samples of sensors the config does not have
        self.healths = 0

    def service(self):
        """One turn of housekeeping: the connection and the outbox."""
        self.publisher.service()

    def _wait_until(self, deadline):
        while True:
            left = ticks_diff(deadline, ticks_ms())
            if left <= 0:
                return
            self.service()
            sleep_ms(min(left, _TURN_MS))

    def health(self, t):
        """Publish the node's health at recording tick `t`."""
        c = self.publisher.counters()
        payload = {"uptime_s": ticks_diff(ticks_ms(), self.boot_ms) // 1000, "heap_free": heap_free(),
                   "outbox_depth": c["outbox_depth"], "in_flight": c["in_flight"], "dropped": c["dropped"],
                   "lost": c["lost"], "published": c["published"], "samples": self.samples,
                   "taken": self.taken, "fw": VERSION, "reset": self.reset, "ts": self.clock.epoch(t)}
        self.healths += 1
        self.publisher.publish(t, "health", payload)  # adds "seq": this message's own number

    def run(self, max_samples=None):
        """Feed the recording's due samples to the core, paced by `speed`,
        publish health every `health_s` of recording time, then keep
        servicing until the outbox and the in-flight table are empty (at
        most SETTLE_MS). Returns a summary dict."""
        core = self.core
        due_at = core.due_at
        self.service()  # the first connection attempt
        first = prev = deadline = next_health = None
        for rec in self.reader:
            sid = rec.get("s")
            if sid is None:  # ground truth: not something a node measures
                continue
            raw_t = rec["t"]
            if first is None:
                first = prev = raw_t
                deadline = ticks_ms()
                next_health = raw_t + self.health_ms
            if self.speed > 0:
                deadline = ticks_add(deadline, int((raw_t - prev) / self.speed + 0.5))
                self._wait_until(deadline)
            prev = raw_t
            t = raw_t & ticks.MASK
            while raw_t >= next_health:
                self.health(t)
                next_health += self.health_ms
            self.samples += 1
            if sid not in due_at:
                self.unknown += 1
                continue
            due = due_at[sid]
            if due is None or ticks.diff(t, due) >= -SLACK_MS:
                self.taken += 1
                core.feed(sid, t, rec)
            self.service()
            if max_samples is not None and self.samples >= max_samples:
                self.reader.close()
                break
        return self.settle()

    def settle(self, timeout_ms=SETTLE_MS):
        """Service until nothing waits in the outbox or for a PUBACK (and the
        client is connected), at most `timeout_ms`. Returns the summary."""
        end = ticks_add(ticks_ms(), timeout_ms)
        while self.outbox.pending() or self.client.pending() or not self.client.connected:
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
        return done

    def linger(self, seconds=LINGER_S):
        """Keep the connection alive (keepalive, retained `online`) without
        publishing anything, up to `seconds`; a Ctrl-C ends it."""
        end = ticks_add(ticks_ms(), seconds * 1000)
        while ticks_diff(end, ticks_ms()) > 0:
            self.service()
            sleep_ms(100)


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
