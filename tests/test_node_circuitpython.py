"""A CircuitPython node on the desk: the real firmware (code.py, the
citynode package, Adafruit's BME280 library) on emulated CircuitPython
modules (host_tools/emulators/circuitpython: board, busio, digitalio,
pulseio, wifi, socketpool, rtc, alarm, microcontroller, storage,
supervisor, time, os), under MicroPython's unix interpreter, against a real
Mosquitto, read by a paho-mqtt subscriber.

The emulated parts replay a bus-level recording on the world's virtual
clock, which moves only when the firmware waits: the run is the same on a
busy machine. What this cannot show: CircuitPython's own interpreter, the
radio, the ESP32-S3's timing.
"""

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from citynode import VERSION
from host_tools import mpy
from host_tools.desk import rawbus, replay
from host_tools.mosquitto import HOST, Broker
from host_tools.paths import FIRMWARE, ROOT
from tests.paho_subscriber import Subscriber, publish, unique
from tests.test_node_vboard import STORM_H, storm_slice
from tests.test_schemas import StrictValidator, load_schema

MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"
EMULATION = ROOT / "host_tools" / "emulators" / "circuitpython"
HEALTH_S = 600
WIFI = {"ssid": "city-iot", "password": 'pa"ss\\word', "rssi": -58, "join_ms": 1200}
HAL = {"kind": "circuitpython", "pins": {"street": {"trig": "D5", "echo": "D6"}},
       "i2c": {"sda": "SDA", "scl": "SCL"}}
PARTS = {"street": {"trig": "D5", "echo": "D6"}, "env": {"scl": "SCL", "sda": "SDA"}}
RUN_TIMEOUT_S = 300  # real seconds; the storm takes about one


@pytest.fixture(scope="module")
def broker():
    with Broker() as b:
        yield b


@pytest.fixture(scope="module")
def storm(tmp_path_factory):
    """The storm slice (plain JSON Lines) and its bus-level twin."""
    d = tmp_path_factory.mktemp("storm")
    plain = d / "storm.jsonl"
    last = storm_slice(plain)
    bus = d / "storm-bus.jsonl"
    rawbus.to_raw(plain, bus)
    return plain, bus, last - int(STORM_H[0] * 3600000)


def toml_string(s):
    return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"')


def make_drive(d, config):
    """A CIRCUITPY drive: boot.py, code.py, citynode/ and lib/ as .py, settings.toml
    with the Wi-Fi secrets, config.json without them."""
    d.mkdir()
    for name in ("boot.py", "code.py"):
        shutil.copy(FIRMWARE / "circuitpython" / name, d / name)
    shutil.copytree(FIRMWARE / "citynode", d / "citynode", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("adafruit_bme280", "adafruit_bus_device"):
        shutil.copytree(os.path.join(mpy.library_path(), name), d / "lib" / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    (d / "settings.toml").write_text("CIRCUITPY_WIFI_SSID = %s\nCIRCUITPY_WIFI_PASSWORD = %s\n"
                                     % (toml_string(WIFI["ssid"]), toml_string(WIFI["password"])))
    (d / "config.json").write_text(json.dumps(config))
    return d


def node_config(port, site, sensors, **extra):
    cfg = {"site": site, "node": "feather-1", "broker": {"host": HOST, "port": port, "keepalive": 30},
           "network": {"kind": "wifi"}, "sensors": sensors, "hal": HAL, "outbox_dir": "/outbox",
           "settings": "/settings.json", "health_s": HEALTH_S}
    cfg.update(extra)
    return cfg


class Board:
    """The emulated board: its drive, its world, and the interpreter run
    from power-up (again after each reset, as the board would)."""

    def __init__(self, tmp_path, config, recording, end_ms, **world):
        self.dir = tmp_path
        self.drive = make_drive(tmp_path / "CIRCUITPY", config)
        self.state = tmp_path / "world-state.json"
        cfg = {"recording": str(recording), "parts": PARTS, "wifi": WIFI, "state": str(self.state),
               "end_ms": end_ms}
        cfg.update(world)
        (tmp_path / "world.json").write_text(json.dumps(cfg))
        self.env = dict(os.environ, MICROPYPATH=str(EMULATION),
                        CITYNODE_CP_WORLD=str(tmp_path / "world.json"))
        self.outputs = []

    def start(self):
        return subprocess.Popen([str(MICROPYTHON), "-X", "heapsize=1M", str(EMULATION / "launch.py"),
                                 str(self.drive)], cwd=self.dir, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    def kept(self):
        return json.loads(self.state.read_text())

    def run(self, boots=50):
        """Power-up, and every restart the board makes, until the world ends."""
        for _ in range(boots):
            p = self.start()
            out, _ = p.communicate(timeout=RUN_TIMEOUT_S)
            self.outputs.append(out)
            assert p.returncode == 0, out
            if self.kept()["reason"] == "END":
                return self.kept()
        raise AssertionError("still restarting after %d boots" % boots)


def first_sightings(data):
    """{seq: (topic suffix, payload)} of the first copy of each message, and
    the order they came in; a QoS 1 repeat must equal its first copy."""
    first, order = {}, []
    for suffix, p, _dup in data:
        if p["seq"] in first:
            assert first[p["seq"]] == (suffix, p)
        else:
            first[p["seq"]] = (suffix, p)
            order.append(p["seq"])
    return first, order


def test_the_storm_through_emulated_parts_is_the_micropython_stream(broker, storm, tmp_path):
    """The storm's bus-level twin read through the real drivers on emulated
    CircuitPython parts publishes what MicroPython's replay of the plain
    recording does: same topics and payloads in the same order, every stamp
    later by the same whole seconds (the board read its first sensor after
    joining Wi-Fi); seq 1..N; `online`, then the will at the power cut
    that ends the run; health valid, from
    CircuitPython's reset reason and the radio's RSSI."""
    plain, bus, last_ms = storm
    reference = replay.run(plain).messages
    header = json.loads(plain.read_text().split("\n", 1)[0])
    site = unique("cp")
    prefix = "citynode/%s/feather-1/" % site
    board = Board(tmp_path, node_config(broker.port, site, header["sensors"]), bus, last_ms + 5000)
    with Subscriber(broker.port, prefix) as sub:
        kept = board.run()
        assert kept["boots"] == 1 and kept["wdt_resets"] == 0, kept
        assert sub.wait(lambda: len(sub.got) >= len(reference), timeout=30)
        # the world's end is a power cut: the will says so
        assert sub.wait(lambda: sub.status() == [b"online", b"offline"], timeout=30), sub.status()
        time.sleep(0.5)  # nothing more may come
        data = sub.data()
    first, order = first_sightings(data)
    assert order == list(range(1, len(order) + 1))
    stream = [first[s] for s in order]
    readings = [(suffix, p) for suffix, p in stream if suffix != "health"]
    assert [(s, {k: v for k, v in p.items() if k not in ("seq", "ts")}) for s, p in readings] == [
        (topic, {k: v for k, v in payload.items() if k != "ts"}) for _t, topic, payload in reference]
    shifts = {p["ts"] - want["ts"] for (_s, p), (_t, _tp, want) in zip(readings, reference, strict=True)}
    assert len(shifts) == 1 and 0 <= shifts.pop() <= 2
    health = [p for suffix, p in stream if suffix == "health"]
    assert len(health) == int(last_ms / 1000 // HEALTH_S)
    schema = StrictValidator(load_schema("health"))
    for h in health:
        assert not list(schema.iter_errors(h)), h
        assert (h["reset"], h["rssi"], h["fw"]) == ("power", WIFI["rssi"], VERSION)
        assert h["lost"] == h["dropped"] == 0
    assert WIFI["password"] not in "".join(board.outputs)
    assert (board.drive / "outbox").is_dir()  # boot.py gave the drive to the code: the outbox is on flash


AWAY_MS = 10 * 60 * 1000  # Wi-Fi out of reach for the first ten minutes of the run


def run_with_usb_drive(broker, storm, tmp_path, name, **extra):
    """BOOT held as boot.py runs and Wi-Fi away for AWAY_MS: the storm's
    first 30 minutes; the first copy of each message, by seq."""
    plain, bus, _last_ms = storm
    header = json.loads(plain.read_text().split("\n", 1)[0])
    site = unique(name)
    prefix = "citynode/%s/feather-1/" % site
    board = Board(tmp_path, node_config(broker.port, site, header["sensors"], health_s=60, **extra), bus,
                  30 * 60 * 1000, held=["BUTTON"], wifi=dict(WIFI, away_until_ms=AWAY_MS))
    with Subscriber(broker.port, prefix) as sub:
        board.run()
        assert sub.wait(lambda: sub.status()[-1:] == [b"offline"], timeout=30), sub.status()
        time.sleep(0.5)
        first, _order = first_sightings(sub.data())
    assert "BOOT held: the drive is writable over USB" in board.outputs[0]
    assert not (board.drive / "outbox").exists()  # nothing written: the drive is USB's
    return first


def test_a_drive_left_to_usb_keeps_the_outbox_in_ram_and_loses_nothing(broker, storm, tmp_path):
    """BOOT held at start: boot.py leaves the drive writable over USB, so
    read-only to the code (writes fail with EROFS). The node still runs,
    its outbox in RAM, and says so in every health message; the readings
    taken while Wi-Fi was out of reach reach the broker once it is back,
    seq 1..N without a gap, nothing dropped."""
    first = run_with_usb_drive(broker, storm, tmp_path, "cpro")
    assert sorted(first) == list(range(1, len(first) + 1))
    health = [p for suffix, p in first.values() if suffix == "health"]
    assert health and all(h["dropped"] == h["lost"] == 0 for h in health)
    note = "filesystem read-only: outbox in RAM (32 KB, lost at a reset), settings not stored"
    assert all(h["notes"] == [note] for h in health)
    away = [h for h in health if h["uptime_s"] < AWAY_MS // 1000]
    assert len(away) >= 8  # health went on while Wi-Fi was away ...
    assert all(h["outbox_depth"] == h["seq"] - 1 for h in away)  # ... with every message before it in RAM
    assert all(h["outbox_depth"] < 5 for h in health if h["uptime_s"] > AWAY_MS // 1000 + 60)  # then sent


def test_a_full_ram_outbox_drops_the_oldest_and_counts_them(broker, storm, tmp_path):
    """The same with 4 KB of RAM for the outbox: the outage overfills it,
    the oldest readings go, and health counts exactly the messages missing."""
    first = run_with_usb_drive(broker, storm, tmp_path, "cpdrop", outbox_ram_kb=4)
    missing = set(range(1, max(first) + 1)) - set(first)
    dropped = max(p["dropped"] for suffix, p in first.values() if suffix == "health")
    assert missing and len(missing) == dropped
    assert max(missing) < min(s for s in first if s > min(missing))  # the oldest went: one run of seqs


def test_commands_birth_and_will(broker, storm, tmp_path):
    """`online` is retained once the node is up; a command is answered on
    cmd/ack; `reboot` restarts the board (reset reason soft in health); a
    board that dies leaves `offline` from the will."""
    plain, bus, last_ms = storm
    header = json.loads(plain.read_text().split("\n", 1)[0])
    site = unique("cpcmd")
    prefix = "citynode/%s/feather-1/" % site
    board = Board(tmp_path, node_config(broker.port, site, header["sensors"], health_s=60), bus,
                  24 * 3600 * 1000, speed=20)
    with Subscriber(broker.port, prefix) as sub:
        p = board.start()
        try:
            assert sub.wait(lambda: b"online" in sub.status(), timeout=30), board.outputs
            publish(broker.port, prefix + "cmd/status", json.dumps({"id": "s1"}))
            assert sub.wait(lambda: any(s == "cmd/ack" for s, _p, _d in sub.data()), timeout=30)
            ack = [pl for s, pl, _d in sub.data() if s == "cmd/ack"][0]
            assert (ack["cmd"], ack["id"], ack["ok"]) == ("status", "s1", True), ack
            publish(broker.port, prefix + "cmd/reboot", json.dumps({"id": "r1"}))
            out, _ = p.communicate(timeout=60)
            assert board.kept()["reason"] == "SOFTWARE", out
            assert ("cmd/ack", "r1") in [(s, pl.get("id")) for s, pl, _d in sub.data()]
            p = board.start()
            assert sub.wait(lambda: any(s == "health" and pl["reset"] == "soft" for s, pl, _d in sub.data()),
                            timeout=60)
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=10)
            assert sub.wait(lambda: sub.status()[-1:] == [b"offline"], timeout=60), sub.status()
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_duty_cycle_sleeps_and_wakes_where_it_was(broker, storm, tmp_path):
    """With `power: duty_cycle` the node deep-sleeps through `alarm` between
    readings: the core's state, `seq` and the health schedule go to
    `alarm.sleep_memory` and come back on each DEEP_SLEEP_ALARM start, so
    the messages run 1..N without a gap or a repeat across the sleeps and
    the storm's alerts are raised once each, as in the replay."""
    plain, bus, last_ms = storm
    reference = replay.run(plain).messages
    header = json.loads(plain.read_text().split("\n", 1)[0])
    site = unique("cpduty")
    prefix = "citynode/%s/feather-1/" % site
    board = Board(tmp_path, node_config(broker.port, site, header["sensors"], power="duty_cycle"), bus,
                  last_ms + 5000)
    with Subscriber(broker.port, prefix) as sub:
        kept = board.run(boots=500)
        assert sub.wait(lambda: sub.status()[-1:] == [b"offline"], timeout=30), sub.status()
        time.sleep(0.5)
        data = sub.data()
    sleeps = kept["deep_sleeps"]
    assert kept["boots"] == len(sleeps) + 1 >= 10, kept
    first, order = first_sightings(data)
    assert order == list(range(1, len(order) + 1))
    stream = [first[s] for s in order]
    alerts = [(p["kind"], p.get("alert")) for s, p in stream if s == "event"]
    assert alerts == [(p["kind"], p.get("alert")) for _t, topic, p in reference if topic == "event"]
    health = [p for s, p in stream if s == "health"]
    assert health and all(h["reset"] == "deepsleep" for h in health), health
    print("duty cycle: %d boots, %d messages, slept %.0f%% of %d s"
          % (kept["boots"], len(order), 100 * sum(sleeps) / kept["now_ms"], kept["now_ms"] // 1000))
