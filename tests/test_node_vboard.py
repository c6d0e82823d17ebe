"""The node's main loop (firmware/boot.py, main.py, citynode/board/node.py) on the
virtual board, against a real Mosquitto.

The flash holds exactly what would be copied to an ESP32: boot.py, main.py,
the citynode package (.py), a recording as /rec.jsonl and /config.json.
Power-up runs boot.py then main.py; a paho-mqtt subscriber on the desk
reads what the node publishes, and that is
compared with a CPython replay of the same recording.
"""

import json
import os
import select
import shutil
import subprocess
import termios
import threading
import time
import tty

import pytest

from citynode import VERSION
from citynode.board.node import check_config
from host_tools import mpy
from host_tools.desk import replay, synth
from host_tools.desk.vboard import VirtualBoard
from host_tools.mosquitto import HOST, Broker
from tests.conftest import ROOT
from tests.paho_subscriber import Subscriber, publish, retained_status, unique
from tests.test_schemas import StrictValidator, load_schema

STORM_H = (16.0, 17.6)  # the water rises past watch, warning and danger: ~1150 samples
HEALTH_S = 600


MPREMOTE = mpy.mpremote_binary()


# ---- fixtures and helpers


@pytest.fixture(scope="module")
def broker():
    with Broker() as b:
        yield b


def storm_slice(path):
    """Write the storm slice of the synthetic flood event to `path` as plain
    JSON Lines; returns the recording time (ms) of its last sample."""
    lines = list(synth.flood_event().lines())
    lo, hi = int(STORM_H[0] * 3600000), int(STORM_H[1] * 3600000)
    kept = [ln for ln in lines[1:] if lo <= json.loads(ln)["t"] < hi]
    path.write_text("\n".join([lines[0]] + kept) + "\n")
    return json.loads(kept[-1])["t"]


@pytest.fixture(scope="module")
def storm(tmp_path_factory):
    """A slice of the synthetic flood event, as plain JSON Lines."""
    path = tmp_path_factory.mktemp("rec") / "storm.jsonl"
    storm_slice(path)
    return path


def make_flash(d, recording, config):
    """A board's flash: boot.py, main.py, citynode/ (.py), /rec.jsonl, /config.json."""
    d.mkdir()
    fw = ROOT / "firmware"
    shutil.copy(fw / "boot.py", d / "boot.py")
    shutil.copy(fw / "main.py", d / "main.py")
    shutil.copytree(fw / "citynode", d / "citynode", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(recording, d / "rec.jsonl")
    if config is not None:
        (d / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    return d


def node_config(port, site, sensors, **extra):
    cfg = {"site": site, "node": "street-demo-1", "broker": {"host": HOST, "port": port, "keepalive": 30},
           "sensors": sensors, "hal": {"kind": "sim", "recording": "/rec.jsonl", "speed": 0},
           "outbox_dir": "/outbox", "health_s": HEALTH_S}
    cfg.update(extra)
    return cfg


class Console:
    """The board's port opened as a serial terminal; a thread keeps reading
    it so the board's output never backs up."""

    def __init__(self, port):
        self.fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd, termios.TCSANOW)  # keep what the board printed before
        self.buf = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            r, _, _ = select.select([self.fd], [], [], 0.05)
            if r:
                try:
                    self.buf += os.read(self.fd, 4096)
                except OSError:
                    return

    def line(self, start, timeout):
        """The first whole output line starting with `start`, or None."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for ln in self.buf.decode("utf-8", "replace").splitlines(keepends=True):
                if ln.startswith(start) and ln.endswith("\n"):
                    return ln.strip()
            time.sleep(0.05)
        return None

    def close(self):
        self._stop.set()
        self._thread.join(timeout=2)
        os.close(self.fd)


# ---- config checks (CPython, no board)


@pytest.mark.parametrize("change, message", [
    (lambda c: c["broker"].update(port="1883"), "config.json: broker.port must be an integer"),
    (lambda c: c["broker"].pop("host"), "config.json: broker.host must be a non-empty string"),
    (lambda c: c.update(node="street/1"), "config.json: node must be letters, digits"),
    (lambda c: c["hal"].update(speed=-1), "config.json: hal.speed must be a number, 0 or more"),
    (lambda c: c["hal"].update(kind="esp8266"),
     "config.json: hal.kind must be \"sim\" (a recording), \"esp32\" or \"circuitpython\""),
    (lambda c: c.update(hal={"kind": "esp32"}),
     "config.json: hal.pins.street must give the sensor's trig and echo pins"),
    (lambda c: c.update(hal={"kind": "circuitpython", "pins": {"street": {"trig": "D5", "echo": 6}}}),
     "config.json: hal.pins.street.echo must be a board pin name such as \"D5\" or \"SDA\""),
    (lambda c: c.update(hal={"kind": "circuitpython", "pins": {"street": {"trig": "D5", "echo": "D6"}},
                             "i2c": {"id": 0, "sda": "SDA", "scl": "SCL"}}),
     "config.json: unknown field 'hal.i2c.id'"),
    (lambda c: c.update(hal={"kind": "esp32", "pins": {"street": {"trig": 5, "echo": 49}}}),
     "config.json: hal.pins.street.echo must be a GPIO number, 0 to 48"),
    (lambda c: c.update(hal={"kind": "esp32", "pins": {"street": {"trig": 5, "echo": 18}}}),
     "config.json: hal.i2c must be an object with id, sda, scl"),
    (lambda c: c.update(hal={"kind": "esp32", "pins": {"street": {"trig": 5, "echo": 18}, "bay": {}},
                             "i2c": {"id": 0, "sda": 21, "scl": 22}}),
     "config.json: hal.pins.bay: no such sensor"),
    (lambda c: c.update(hal={"kind": "esp32", "pins": {"street": {"trig": 5, "echo": 18}},
                             "i2c": {"id": 0, "sda": 21, "scl": 22}, "wdt_s": 1}),
     "config.json: hal.wdt_s must be an integer, 5 to 600 s"),
    (lambda c: c.update(network={"kind": "wifi"}), "config.json: network.ssid must be a non-empty string"),
    (lambda c: c.update(network={"kind": "lte"}),
     "config.json: network.kind must be \"wifi\" or \"ethernet\""),
    (lambda c: c.update(power="eco"), "config.json: power must be \"always_on\" or \"duty_cycle\""),
    (lambda c: c.update(ha_discovery="yes"), "config.json: ha_discovery must be true or false"),
    (lambda c: c["broker"].update(tls={"ca": ""}),
     "config.json: broker.tls.ca must be the path of the CA certificate (DER) on the flash"),
    (lambda c: c["sensors"][0].update(pings=0),
     "config.json: sensors: sensor street: field 'pings' must be above 0"),
    (lambda c: c.update(sensors=[]), "config.json: sensors must be a non-empty list"),
    (lambda c: c.update(brokr={}), "config.json: unknown field 'brokr'"),
    (lambda c: c.update(health_s=0), "config.json: health_s must be a number above 0"),
])
def test_check_config_names_the_field(storm, change, message):
    sensors = json.loads(storm.read_text().split("\n", 1)[0])["sensors"]
    cfg = node_config(1883, "s1", sensors)
    check_config(cfg)  # the unchanged config is valid
    board = dict(cfg, hal={"kind": "esp32", "pins": {"street": {"trig": 5, "echo": 18}},
                           "i2c": {"id": 0, "sda": 21, "scl": 22}},
                 network={"kind": "wifi", "ssid": "city", "password": "x"}, power="duty_cycle",
                 ha_discovery=True)
    check_config(board)  # and so is its ESP32 twin
    check_config(dict(board, hal={"kind": "circuitpython", "pins": {"street": {"trig": "D5", "echo": "D6"}},
                                  "i2c": {"sda": "SDA", "scl": "SCL"}}))  # and its CircuitPython one
    change(cfg)
    with pytest.raises(ValueError) as e:
        check_config(cfg)
    assert str(e.value).startswith(message), str(e.value)


# ---- the node on the virtual board


def test_power_up_publishes_the_replay_in_order_with_health(broker, storm, tmp_path):
    """Power-up runs boot.py and main.py; the node publishes the recording's
    messages: status `online` retained, seq 1..N without gap or reordering,
    the same topics and payloads as the CPython replay (health aside), and
    health payloads valid against docs/schemas/health.schema.json."""
    reference = replay.run(storm).messages
    header = json.loads(storm.read_text().split("\n", 1)[0])
    site = unique("vb")
    prefix = "citynode/%s/street-demo-1/" % site
    flash = make_flash(tmp_path / "flash", storm, node_config(broker.port, site, header["sensors"]))
    with Subscriber(broker.port, prefix) as sub, VirtualBoard(flash) as board:
        console = Console(board.port)
        try:
            done_line = console.line("citynode: recording done ", timeout=40)
            assert done_line, console.buf.decode(errors="replace")
            done = json.loads(done_line[len("citynode: recording done "):])
            assert console.buf.startswith(b"citynode boot\n")  # boot.py ran first
            assert done["settled"] and done["lost"] == 0 and done["dropped"] == 0, done
            n = done["seq"]
            assert n == len(reference) + done["health"], done
            assert sub.wait(lambda: sub.first_seen() >= n, timeout=10), (sub.first_seen(), n)
            time.sleep(0.5)  # nothing more may come
            assert retained_status(broker.port, prefix) == (b"online", True)
        finally:
            console.close()
        data = sub.data()
        assert sub.status()[:1] == [b"online"]

    # seq 1..N, first sightings, in order; a QoS 1 repeat only repeats.
    first = {}
    order = []
    for suffix, p, _dup in data:
        if p["seq"] in first:
            assert first[p["seq"]] == (suffix, p)
        else:
            first[p["seq"]] = (suffix, p)
            order.append(p["seq"])
    assert order == list(range(1, n + 1))

    stream = [first[s] for s in order]
    health = [p for suffix, p in stream if suffix == "health"]
    readings = [(suffix, {k: v for k, v in p.items() if k != "seq"})
                for suffix, p in stream if suffix != "health"]
    assert readings == [(topic, payload) for _t, topic, payload in reference]

    assert len(health) == done["health"] >= 1
    schema = StrictValidator(load_schema("health"))
    for h in health:
        assert not list(schema.iter_errors(h)), h
        assert h["fw"] == VERSION and h["reset"] == "unknown"  # the unix port has no reset_cause
        assert isinstance(h["heap_free"], int) and h["heap_free"] > 0
        assert h["dropped"] == 0 and h["lost"] == 0
    # Every HEALTH_S of recording time, stamped like the readings.
    start = header["start"]
    assert [h["ts"] for h in health] == [start + int(STORM_H[0] * 3600) + HEALTH_S * (i + 1)
                                         for i in range(len(health))]
    assert [h["samples"] for h in health] == sorted(h["samples"] for h in health)
    print("vboard node: %d messages (%d health), %d samples, %d taken"
          % (n, len(health), done["samples"], done["taken"]))


@pytest.mark.skipif(MPREMOTE is None, reason="mpremote not installed: run 'make setup'")
@pytest.mark.parametrize("case", ["bad-field", "no-config"])
def test_bad_config_is_safe_mode_and_the_board_stays_reachable(broker, storm, tmp_path, case):
    """A config with a bad field: one line on the console, a retained
    `safe_mode` status naming the field, then an idle loop that mpremote's
    Ctrl-C interrupts. Without a config there is no broker to tell: the line
    only, and the board is just as reachable."""
    site = unique("safe")
    prefix = "citynode/%s/street-demo-1/" % site
    header = json.loads(storm.read_text().split("\n", 1)[0])
    cfg = None
    if case == "bad-field":
        cfg = node_config(broker.port, site, header["sensors"])
        cfg["hal"]["speed"] = "fast"
    flash = make_flash(tmp_path / "flash", storm, cfg)
    with VirtualBoard(flash) as board:
        console = Console(board.port)
        try:
            line = console.line("citynode safe mode: ", timeout=15)
        finally:
            console.close()
        if case == "bad-field":
            assert line == ("citynode safe mode: config.json: hal.speed must be a number, 0 or more "
                            "(1 = real time, 0 = as fast as possible)")
            got = retained_status(broker.port, prefix)
            assert got is not None and got[1] is True
            status = json.loads(got[0])
            assert status == {"state": "safe_mode", "reason": line[len("citynode safe mode: "):],
                              "fw": VERSION}
        else:
            assert line == "citynode safe mode: config.json: cannot read /config.json"
        assert not board.wait_booted(0.5)  # still idling, not crashed nor reset
        boots = board.boots
        p = subprocess.run([MPREMOTE, "connect", board.port, "resume", "exec", "print(7*6)"],
                           capture_output=True, text=True, timeout=30, check=False)
        assert p.returncode == 0, (p.stdout, p.stderr)
        assert p.stdout.strip().splitlines()[-1] == "42"
        assert board.boots == boots  # interrupted, not reset


def test_the_same_loop_on_cpython_paced_by_speed(broker, storm, tmp_path):
    """node.py on the desk: `speed` 250 paces 300 s of recording to about
    1.2 s of wall time, and the readings are the replay's first ones."""
    from citynode.board.node import Node

    lines = storm.read_text().splitlines()
    header = json.loads(lines[0])
    first_t = json.loads(lines[1])["t"]
    short = tmp_path / "short.jsonl"
    kept = [ln for ln in lines[1:] if json.loads(ln)["t"] < first_t + 300000]
    short.write_text("\n".join([lines[0]] + kept) + "\n")
    reference = replay.run(short).messages
    site = unique("cp")
    cfg = node_config(broker.port, site, header["sensors"], outbox_dir=str(tmp_path / "outbox"), health_s=120)
    cfg["hal"].update(recording=str(short), speed=250)
    check_config(cfg)
    with Subscriber(broker.port, "citynode/%s/street-demo-1/" % site) as sub:
        node = Node(cfg)
        t0 = time.monotonic()
        done = node.run()
        wall = time.monotonic() - t0
        assert done["settled"] and done["health"] == 2 and done["seq"] == len(reference) + 2, done
        assert sub.wait(lambda: sub.first_seen() >= done["seq"])
        node.client.disconnect()
    last_t = max(json.loads(ln)["t"] for ln in short.read_text().splitlines()[1:] if '"s"' in ln)
    # Never faster than the pace; and paced, not played in real time (300 s):
    # the upper bound is generous, for a machine busy with other work.
    assert (last_t - first_t) / 250 / 1000 - 0.05 <= wall < 60
    got = [(s, {k: v for k, v in p.items() if k != "seq"}) for s, p, _d in sub.data() if s != "health"]
    assert got == [(topic, payload) for _t, topic, payload in reference]


# ---- remote commands


def _short(storm, path, samples):
    lines = storm.read_text().splitlines()
    path.write_text("\n".join(lines[:samples + 1]) + "\n")
    return path


def test_commands_are_acked_validated_persisted_and_reboot_resets(broker, storm, tmp_path):
    """The node on the virtual board, its recording done, keeps answering
    on cmd/+: every malformed command (bad JSON, a wrong type, an unknown
    command, a 64 KB payload) gets an error ack and changes nothing; a good
    one is applied and stored; `reboot` resets the board, which comes back
    with the stored setting and refuses the retained command it finds."""
    header = json.loads(storm.read_text().split("\n", 1)[0])
    site = unique("cmd")
    prefix = "citynode/%s/street-demo-1/" % site
    cfg = node_config(broker.port, site, header["sensors"], settings="/settings.json")
    flash = make_flash(tmp_path / "flash", _short(storm, tmp_path / "short.jsonl", 200), cfg)
    ack_schema = StrictValidator(load_schema("ack"))

    def acks():
        return [p for suffix, p, _d in sub.data() if suffix == "cmd/ack"]

    def send(name, payload, retain=False):
        n = len(acks())
        publish(broker.port, prefix + "cmd/" + name, payload, retain=retain)
        assert sub.wait(lambda: len(acks()) > n, timeout=10), (name, console.buf[-400:])
        return acks()[n]

    def answer(ack):  # what the node decided, without its stamps
        assert not list(ack_schema.iter_errors(ack)), ack
        return {k: v for k, v in ack.items() if k not in ("ts", "seq")}

    with Subscriber(broker.port, prefix) as sub, VirtualBoard(flash) as board:
        console = Console(board.port)
        try:
            assert console.line("citynode: recording done ", timeout=40), console.buf.decode(errors="replace")
            before = answer(send("status", json.dumps({"id": "s1"})))
            assert before["ok"] and before["status"]["sensors"][1]["id"] == "street"
            got = [answer(send("set_thresholds", b"{not json")),
                   answer(send("set_interval", json.dumps({"sensor": "env", "period_s": "30"}))),
                   answer(send("self_destruct", b"{}")),
                   answer(send("reboot", b"{" * 65536))]
            assert got == [
                {"cmd": "set_thresholds", "id": None, "ok": False, "reason": "not JSON"},
                {"cmd": "set_interval", "id": None, "ok": False,
                 "reason": "field 'period_s' must be a number"},
                {"cmd": "self_destruct", "id": None, "ok": False,
                 "reason": "unknown command 'self_destruct' (one of reboot, recalibrate, set_interval, "
                           "set_thresholds, status)"},
                {"cmd": "reboot", "id": None, "ok": False,
                 "reason": "payload too large (over the MQTT client's packet limit, limit 1024)"}]
            assert answer(send("status", json.dumps({"id": "s1"}))) == before  # nothing changed
            assert not (flash / "settings.json").exists()
            ok = answer(send("set_interval", json.dumps({"id": "op-1", "sensor": "env", "period_s": 30})))
            assert ok == {"cmd": "set_interval", "id": "op-1", "ok": True}
            stored = json.loads((flash / "settings.json").read_text())
            assert stored == {"version": 1, "sensors": {"env": {"period_s": 30}}}
            # Live subscribers get a retained message without the retain flag:
            # run now, refused when the broker replays it after the reboot.
            assert answer(send("status", b"{}", retain=True))["ok"]
            boots = board.boots
            reboot = answer(send("reboot", json.dumps({"id": "r1"})))
            assert reboot == {"cmd": "reboot", "id": "r1", "ok": True}
            assert sub.wait(lambda: board.boots == boots + 1 and board.soft_resets == 1, timeout=15)
            assert sub.wait(lambda: sub.status()[-2:] == [b"offline", b"online"], timeout=20), (
                sub.status(), console.buf.decode(errors="replace")[-2000:])
            assert sub.wait(lambda: len(acks()) >= 10, timeout=10)
            assert answer(acks()[9]) == {"cmd": "status", "id": None, "ok": False,
                                         "reason": "retained commands are not run (publish commands without "
                                                   "the retain flag)"}
            after = answer(send("status", json.dumps({"id": "s1"})))
            env = [e for e in after["status"]["sensors"] if e["id"] == "env"]
            assert env == [{"id": "env", "type": "env", "period_s": 30}]  # kept across the reset
        finally:
            publish(broker.port, prefix + "cmd/status", b"", retain=True)  # clear the retained command
            console.close()
    seqs = [p["seq"] for _s, p, _d in sub.data()]
    assert seqs == sorted(seqs)


def test_health_after_a_silence_the_ticks_alias_comes_once_then_every_health_s(broker, storm, tmp_path):
    """Two 300 s stretches 13 days apart (the ticks wrap once in between and
    alias the silence to half a day): health every 120 s in each, one at
    once after the silence, never a burst for the missed periods; the
    readings are the replay's, gap events included."""
    from citynode.board.node import Node

    lines = storm.read_text().splitlines()
    header = json.loads(lines[0])
    first_t = json.loads(lines[1])["t"]
    recs = [json.loads(ln) for ln in lines[1:] if json.loads(ln)["t"] < first_t + 300000]
    later = [dict(r, t=r["t"] + 13 * 86400000) for r in recs]
    gapped = tmp_path / "gapped.jsonl"
    gapped.write_text("\n".join([lines[0]] + [json.dumps(r) for r in recs + later]) + "\n")
    reference = replay.run(gapped).messages
    gaps = [p["gap_s"] for _t, topic, p in reference if p.get("kind") == "gap"]
    assert len(gaps) == 2 and all(13 * 86400 - 300 < g < 13 * 86400 for g in gaps), gaps
    site = unique("gap")
    cfg = node_config(broker.port, site, header["sensors"], outbox_dir=str(tmp_path / "outbox"), health_s=120)
    cfg["hal"].update(recording=str(gapped))
    check_config(cfg)
    with Subscriber(broker.port, "citynode/%s/street-demo-1/" % site) as sub:
        node = Node(cfg)
        done = node.run()
        assert done["settled"] and done["health"] == 2 + 3, done
        assert sub.wait(lambda: sub.first_seen() >= done["seq"])
        node.client.disconnect()
    got = [(s, {k: v for k, v in p.items() if k != "seq"}) for s, p, _d in sub.data() if s != "health"]
    assert got == [(topic, payload) for _t, topic, payload in reference]
