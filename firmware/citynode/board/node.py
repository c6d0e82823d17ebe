"""The node's main loop: config, hardware layer, core, publisher, broker,
remote commands.

    from citynode.board import node
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
with a watchdog, the network and NTP: citynode.board.hal_esp32). Both hand the
loop `(sensor, tick, sample)`; everything else is the same code. Runs under
MicroPython (the board, the virtual board) and CPython (the desk).
"""

import gc
import json
import os

from citynode import VERSION, forget, ticks, topic_prefix
from citynode.config import CONFIG_PATH, DEFAULTS
from citynode.sense.core import Core
from citynode.ticks import add as ticks_add
from citynode.ticks import diff as ticks_diff
from citynode.ticks import now_ms as ticks_ms
from citynode.ticks import sleep_ms

SLEEP_MIN_MS = 20000  # duty cycle: deep-sleep only when nothing is due for this long
WAKE_LEAD_MS = 5000  # and wake this much before it (boot, network, broker)
SETTLE_MS = 30000  # at the end of a recording: at most this long to empty the outbox
REBOOT_SETTLE_MS = 5000  # before a commanded reboot: at most this long to get the ack out
LINGER_S = 24 * 3600  # then the connection is kept (no more messages) this long
SAFE_IDLE_S = 24 * 3600  # how long safe mode idles before main() returns to the REPL
_TURN_MS = 20  # the longest sleep in one turn of a waiting loop
RETAINED_CMD = "retained commands are not run (publish commands without the retain flag)"


# ---- config: the checks live in citynode.config, loaded for the boot
# ---- and dropped afterwards (they are a good part of the node's code)


def load_config(path=CONFIG_PATH):
    """The config file as a dict; ValueError (naming config.json) if it
    cannot be read or is not a JSON object."""
    from citynode import config
    return config.load_config(path)


def check_config(cfg):
    """Raise ValueError with the field's path (\"config.json: broker.port
    must be an integer\") if `cfg` is not a usable node config."""
    from citynode import config
    config.check_config(cfg)


def check_broker(b):
    """Raise ValueError naming the field if the `broker` part is unusable."""
    from citynode import config
    config.check_broker(b)


def _client(cfg, will):
    # The connection's modules are imported where they are used, so a board
    # that only checks its config (record mode) does not carry them.
    from citynode.link.mqtt import MQTTClient

    b = cfg["broker"]
    prefix = topic_prefix(cfg.get("site"), cfg.get("node"))
    ca = hostname = None
    tls = b.get("tls")
    if tls:
        with open(tls["ca"], "rb") as f:
            ca = f.read()
        hostname = tls.get("server_hostname")
    return MQTTClient("%s-%s" % (cfg.get("site"), cfg.get("node")), b["host"], b["port"], user=b.get("user"),
                      password=b.get("password"), keepalive=b.get("keepalive", DEFAULTS["keepalive"]),
                      ssl_ca=ca, server_hostname=hostname, will_topic=prefix + "status" if will else None)


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
        from citynode.board.hal_sim import SimHal
        from citynode.board.recording import Reader

        reader = Reader(hal.get("recording", DEFAULTS["recording"]))
        try:
            return SimHal(reader, speed=hal.get("speed", DEFAULTS["speed"]))
        except ValueError as e:  # bus-level samples: no emulated parts on a board
            reader.close()
            raise ValueError("hal.recording: %s" % e) from None
    if hal["kind"] == "circuitpython":
        from citynode.board.hal_circuitpython import CircuitPythonHal

        return CircuitPythonHal(cfg)
    from citynode.board.hal_esp32 import BoardHal

    return BoardHal(cfg)


class Node:
    """Core + MQTT client (will on status) + outbox + publisher + remote
    commands, fed by a hardware layer (`make_hal(cfg)` unless given).
    `run()` is the main loop."""

    def __init__(self, cfg, hal=None):
        from citynode.link.publisher import Publisher

        self.cfg = cfg
        self.hal = hal if hal is not None else make_hal(cfg)
        self.health_ms = ticks.ms(cfg.get("health_s", DEFAULTS["health_s"]))
        self.reset = self.hal.reset_cause()
        self.uptime = ticks.Clock(0, ticks_ms())  # seconds since boot, past the ticks' 6.2 days
        self.prefix = topic_prefix(cfg["site"], cfg["node"])
        self.client = _client(cfg, True)
        self.notes = []  # what went wrong at boot but did not stop the node; sent in health
        if self.hal.writable():
            from citynode.link.outbox import Outbox

            self.outbox = Outbox(cfg.get("outbox_dir", DEFAULTS["outbox_dir"]),
                                 max_bytes=cfg.get("outbox_kb", DEFAULTS["outbox_kb"]) * 1024)
        else:
            from citynode.link.ramoutbox import RamOutbox

            kb = cfg.get("outbox_ram_kb", DEFAULTS["outbox_ram_kb"])
            self.outbox = RamOutbox(kb * 1024)
            self._note("filesystem read-only: outbox in RAM (%d KB, lost at a reset), settings not stored"
                       % kb)
        self.publisher = Publisher(self.client, self.outbox, cfg["site"], cfg["node"])
        self.clock = self.hal.clock()
        self.core = Core(cfg["sensors"], self.clock, self.publisher.publish)
        self.settings = cfg.get("settings", DEFAULTS["settings"])
        self.reboot_requested = False
        try:
            os.stat(self.settings)
        except OSError:
            pass  # nothing stored: the command code need not even load
        else:
            note = self._commands().load()
            forget("citynode.link.commands")
            if note is not None:
                self._note("settings: " + note)
        self.duty = cfg.get("power", DEFAULTS["power"]) == "duty_cycle"
        if self.duty and not self.hal.DEEP_SLEEP:
            raise ValueError("power \"duty_cycle\": this hardware layer cannot deep-sleep")
        self.next_health = None  # the tick of the next health message
        if self.duty:
            self._wake()
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

    # ---- duty cycle

    def _wake(self):
        """After deep sleep: the core, `seq` and the health schedule where
        they were. Any other start: what was kept is stale, and dropped."""
        data = self.hal.load_state()
        if data is None:
            return
        from citynode.board.state import restore

        self.hal.save_state(b"")
        if self.reset != "deepsleep":
            return
        try:
            kept = json.loads(data)
            restore(self.core, kept["core"])
            self.publisher.resume(kept["seq"])
            self.next_health = kept["health"]
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            self._note("state kept through deep sleep is unreadable (%s): starting afresh" % e)

    def _maybe_sleep(self):
        """Duty cycle: deep-sleep until shortly before the next reading (or
        health message) when that is at least SLEEP_MIN_MS away and nothing
        would be lost: no ack waiting, nothing in flight, and the outbox
        empty (or the broker unreachable and the outbox on flash; one in
        RAM keeps the node awake until it is empty). A state that cannot
        be kept (sleep memory too small, the flash read-only) keeps it
        awake too."""
        if not self.duty or self._acks or self.client.pending() or self.reboot_requested:
            return
        if self.outbox.pending() and (self.client.connected or not self.client.backoff_ms
                                      or not self.outbox.durable):
            return
        _sid, left = self.hal.first_due(self.core.due_at)
        if self.next_health is not None:
            left = min(left, ticks_diff(self.next_health, self.hal.now()))
        if left < SLEEP_MIN_MS:
            return
        from citynode.board.state import snapshot

        base = Core(self.cfg["sensors"], self.clock, None)  # what the config alone gives
        kept = {"core": snapshot(self.core, base), "seq": self.publisher.seq, "health": self.next_health}
        base = None
        try:
            self.hal.save_state(json.dumps(kept, separators=(",", ":")).encode())
        except OSError:
            return
        self.client.disconnect()
        self.publisher.flush()  # nothing acknowledged is sent again after the wake
        self.hal.sleep(left - WAKE_LEAD_MS)

    # ---- commands

    def _commands(self):
        """The remote-command code, loaded when needed (commands are rare,
        and it is a good part of the node's code): re-applies nothing by
        itself; `load()` re-applies the stored settings."""
        from citynode.link.commands import Commands

        return Commands(self.core, self.settings)

    def _on_message(self, topic, payload, retained, dup):
        """A message on `cmd/+`: answered on `cmd/ack` (queued here, sent by
        `service()`, never from inside the client's poll)."""
        if not topic.startswith(self.prefix + "cmd/"):  # not ours: a broker's matching error
            return
        suffix = topic[len(self.prefix):]
        if suffix == "cmd/ack":  # our own answers come back through cmd/+
            return
        self.commands_handled += 1
        if retained:
            ack = {"cmd": suffix[4:], "id": None, "ok": False, "reason": RETAINED_CMD}
        else:
            commands = self._commands()
            commands.load()  # what is stored, so a new setting is added to it (and applied: the same)
            ack = commands.handle(suffix, payload)
            self.reboot_requested = self.reboot_requested or commands.reboot_requested
            commands = None
            forget("citynode.link.commands")
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
            from citynode.link.discovery import announce

            if announce(self.client, self.cfg, VERSION):
                self.discovery = False
                forget("citynode.link.discovery")

    def _wait_until(self, deadline):
        while True:
            left = ticks_diff(deadline, ticks_ms())
            if left <= 0:
                return
            self.service()
            self._maybe_sleep()
            sleep_ms(min(left, _TURN_MS))

    def health(self, t):
        """Publish the node's health at tick `t`."""
        c = self.publisher.counters()
        payload = {"uptime_s": self.uptime.epoch(ticks_ms()), "heap_free": heap_free(),
                   "rssi": self.hal.rssi(), "outbox_depth": c["outbox_depth"], "in_flight": c["in_flight"],
                   "dropped": c["dropped"], "lost": c["lost"], "published": c["published"],
                   "samples": self.samples, "taken": self.taken, "commands": self.commands_handled,
                   "fw": VERSION, "reset": self.reset, "ts": self.clock.epoch(t)}
        if self.notes:
            payload["notes"] = self.notes
        self.healths += 1
        self.publisher.publish(t, "health", payload)  # adds "seq": this message's own number

    def _health_due(self, t):
        """Publish health at tick `t` if it is due: once, however late; after
        a silence (more than a period late, or a due tick further ahead than
        a period, which only aliased ticks give) at once, and every
        `health_s` from then on."""
        if self.next_health is None:
            self.next_health = ticks_add(t, self.health_ms)
            return
        d = ticks_diff(t, self.next_health)
        if 0 <= d < self.health_ms:
            self.health(t)
            self.next_health = ticks_add(self.next_health, self.health_ms)
        elif d >= 0 or d < -self.health_ms:
            self.health(t)
            self.next_health = ticks_add(t, self.health_ms)

    def run(self, max_samples=None):
        """Feed the hardware layer's samples to the core, publish health
        every `health_s`, answer commands; at the end of a recording keep
        servicing until the outbox and the in-flight table are empty (at
        most SETTLE_MS). Returns a summary dict. A `reboot` command settles
        (at most REBOOT_SETTLE_MS) and resets the board."""
        core = self.core
        self.service()  # the first connection attempt
        for sid, t, sample in self.hal.stream(core, self._wait_until):
            self._health_due(t)
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
        if self.reboot_requested:
            self.settle(REBOOT_SETTLE_MS)  # the ack goes out first
            self.client.disconnect()
            self.publisher.flush()
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
                client.publish(topic_prefix(site, node) + "status", status, 1, True)  # sent once connected
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


def main(path=CONFIG_PATH, prepare=None):
    """Power-up: load and check the config, run the node, keep its
    connection; any failure ends in safe mode, never in a traceback.
    `prepare(cfg)` completes the loaded config before it is checked (on
    CircuitPython: the secrets from settings.toml)."""
    cfg = None
    try:
        cfg = load_config(path)
        if prepare is not None:
            prepare(cfg)
        check_config(cfg)
    except ValueError as e:
        return safe_mode(cfg, str(e))
    forget("citynode.config")  # checked: the checks can go
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
