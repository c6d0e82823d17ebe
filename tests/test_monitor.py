"""`citynode monitor` (host_tools/field/monitor.py, host_tools/field/fleet.py) against a
real Mosquitto: the monitor runs as the command a user types, in a
subprocess; test traffic comes from paho-mqtt, or from the node's own
firmware (citynode.board.node on CPython) replaying a slice of the bundled
parking recording."""

import io
import json
import signal
import socket
import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from host_tools.desk import replay
from host_tools.field import fleet, monitor
from host_tools.mosquitto import HOST, Broker, free_port
from tests.conftest import ROOT
from tests.paho_subscriber import unique

PARKING = (7.5, 7.7)  # hours of the bundled parking day: a few arrivals on four bays


@pytest.fixture(scope="module")
def broker():
    with Broker() as b:
        yield b


def url(port):
    return "mqtt://%s:%d" % (HOST, port)


def wait_for(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        time.sleep(0.01)
    return cond()


class Monitor:
    """`citynode monitor ARGS` in a subprocess; its stdout and stderr lines
    are collected as they come. Starting returns once it is subscribed."""

    def __init__(self, port, *args):
        cmd = [sys.executable, "-m", "host_tools.cli", "monitor", "--broker", url(port), *args]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out, self.err = [], []
        self._threads = [threading.Thread(target=self._read, args=(f, into), daemon=True)
                         for f, into in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for t in self._threads:
            t.start()
        assert wait_for(lambda: any("watching" in ln for ln in self.err) or self.proc.poll() is not None)
        assert self.proc.poll() is None, self.err

    @staticmethod
    def _read(f, into):
        for line in f:
            into.append(line.rstrip("\n"))

    def records(self):
        return [json.loads(ln) for ln in list(self.out)]

    def wait(self, cond, timeout=10.0):
        assert wait_for(cond, timeout), (self.out, self.err)

    def stop(self):
        """Ctrl-C, the normal end of a monitor; returns its exit status."""
        self.proc.send_signal(signal.SIGINT)
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # a monitor that did not stop must not outlive the test
            self.proc.wait(timeout=5)
            raise
        for t in self._threads:
            t.join(timeout=5)
        return rc


class Publisher:
    """A paho client publishing test traffic at QoS 1, one message at a time."""

    def __init__(self, port):
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("pub"))
        self.client.connect(HOST, port)
        self.client.loop_start()

    def send(self, topic, payload, retain=False):
        body = payload if isinstance(payload, (bytes, str)) else json.dumps(payload, separators=(",", ":"))
        self.client.publish(topic, body, 1, retain).wait_for_publish(5)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def pub(broker):
    p = Publisher(broker.port)
    yield p
    p.close()


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "host_tools.cli", "monitor", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=30, check=False, stdin=subprocess.DEVNULL)


# ---- what --json prints


def test_json_lines_for_a_known_sequence(broker, pub):
    site = unique("json")
    base = "citynode/%s/street-1/" % site
    pub.send(base + "status", "online", retain=True)
    pub.send(base + "bay/bay-01", {"state": "free", "ts": 1783994350, "seq": 1}, retain=True)
    m = Monitor(broker.port, "--json", "--site", site)
    pub.send(base + "bay/bay-01", {"state": "occupied", "ts": 1783994358, "seq": 2})
    pub.send(base + "event", {"kind": "occupancy", "sensor": "bay-01", "state": "occupied", "ts": 1783994358,
                              "seq": 3})
    pub.send(base + "water", {"sensor": "street", "level_mm": 150, "rate_mm_min": 4, "alert": "warning",
                              "state": "clear", "ts": 1784048780, "seq": 4})
    pub.send(base + "env", {"temp_c": 18.4, "humidity_pct": 62.5, "pressure_pa": 101210, "sound_mm_s": 342992,
                            "ts": 1783987200, "seq": 5})
    pub.send(base + "health", {"uptime_s": 61, "heap_free": None, "outbox_depth": 0, "fw": "0.1.0",
                               "a_key_from_a_later_firmware": [1, 2], "ts": 1783987200, "seq": 6})
    pub.send(base + "cmd/ack", {"cmd": "status", "id": "op-1", "ok": True, "seq": 7})
    pub.send(base + "status", '{"state":"safe_mode","reason":"config.json: hal.speed must be a number"}')
    pub.send(base + "status", "offline")
    m.wait(lambda: len(m.out) >= 10)
    assert m.stop() == 0
    n = '{"site":"%s","node":"street-1",' % site
    assert m.out == [
        n + '"kind":"status","seq":null,"payload":{"state":"online"},"flags":{"retained":true}}',
        n + '"kind":"bay/bay-01","seq":1,"payload":{"state":"free","ts":1783994350,"seq":1},'
            '"flags":{"retained":true}}',
        n + '"kind":"bay/bay-01","seq":2,"payload":{"state":"occupied","ts":1783994358,"seq":2},"flags":{}}',
        n + '"kind":"event","seq":3,"payload":{"kind":"occupancy","sensor":"bay-01","state":"occupied",'
            '"ts":1783994358,"seq":3},"flags":{}}',
        n + '"kind":"water","seq":4,"payload":{"sensor":"street","level_mm":150,"rate_mm_min":4,'
            '"alert":"warning","state":"clear","ts":1784048780,"seq":4},"flags":{}}',
        n + '"kind":"env","seq":5,"payload":{"temp_c":18.4,"humidity_pct":62.5,"pressure_pa":101210,'
            '"sound_mm_s":342992,"ts":1783987200,"seq":5},"flags":{}}',
        n + '"kind":"health","seq":6,"payload":{"uptime_s":61,"heap_free":null,"outbox_depth":0,"fw":"0.1.0",'
            '"a_key_from_a_later_firmware":[1,2],"ts":1783987200,"seq":6},"flags":{}}',
        n + '"kind":"cmd/ack","seq":7,"payload":{"cmd":"status","id":"op-1","ok":true,"seq":7},"flags":{}}',
        n + '"kind":"status","seq":null,"payload":{"state":"safe_mode",'
            '"reason":"config.json: hal.speed must be a number"},"flags":{}}',
        n + '"kind":"status","seq":null,"payload":{"state":"offline"},"flags":{}}',
    ]
    assert m.err == ["citynode monitor: watching citynode/%s/+/{status,bay/+,water,env,event,health,cmd/ack} "
                     "on %s:%d, stale after 180 s" % (site, HOST, broker.port)]


def test_gaps_duplicates_late_and_a_counter_reset_are_flagged(broker, pub):
    site = unique("seq")
    js = Monitor(broker.port, "--json", "--site", site)
    plain = Monitor(broker.port, "--site", site)  # stdout is a pipe: plain lines
    sent = [("a", 1), ("a", 2), ("a", 2), ("a", 5), ("a", 3), ("a", 6), ("b", 10), ("b", 11), ("b", 1)]
    for i, (node, seq) in enumerate(sent):
        # b's last message: the same number as an earlier one, other content: a fresh counter
        reading = {"sensor": "s", "level_mm": seq * 10 + (i == 8), "rate_mm_min": 0, "alert": "normal",
                   "state": "clear", "ts": 1784048780, "seq": seq}
        pub.send("citynode/%s/%s/water" % (site, node), reading)
    js.wait(lambda: len(js.out) >= len(sent))
    got = [(r["node"], r["seq"], r["flags"]) for r in js.records()]
    assert got == [("a", 1, {}), ("a", 2, {}), ("a", 2, {"duplicate": True}), ("a", 5, {"gap": 2}),
                   ("a", 3, {"late": True}), ("a", 6, {}), ("b", 10, {}), ("b", 11, {}),
                   ("b", 1, {"seq_reset": True})]
    plain.wait(lambda: any("resets 1" in ln for ln in plain.out) and any("seq 6, 5 msgs" in ln
                                                                          for ln in plain.out))
    assert js.stop() == 0 and plain.stop() == 0
    last = {ln.split()[1]: ln for ln in plain.out}  # HH:MM:SS site/node ...
    assert last["%s/a" % site].endswith("| seq 6, 5 msgs, gaps 1, dup 1, late 1"), last
    assert last["%s/b" % site].endswith("| seq 1, 3 msgs, gaps 0, dup 0, resets 1"), last
    assert "water s 60 mm, +0 mm/min, normal" in last["%s/a" % site]


def test_a_silent_node_is_flagged_stale_and_resumes(broker, pub):
    from rich.console import Console

    site = unique("stale")
    m = Monitor(broker.port, "--json", "--site", site, "--stale", "0.5")
    # the same, as a live table on a terminal, in this process; it ends while `quiet` is stale
    screen, notes = io.StringIO(), io.StringIO()
    table = threading.Thread(target=monitor.run, args=(HOST, broker.port), kwargs=dict(
        site=site, stale_s=0.5, duration=1.5, err=notes, console=Console(file=screen, force_terminal=True,
                                                                         width=200)))
    table.start()
    assert wait_for(lambda: "watching" in notes.getvalue())
    pub.send("citynode/%s/quiet/health" % site, {"uptime_s": 5, "fw": "0.1.0", "seq": 1})
    pub.send("citynode/%s/gone/status" % site, "offline")  # says it is away: not stale
    m.wait(lambda: len(m.out) >= 3)
    table.join(10)
    pub.send("citynode/%s/quiet/health" % site, {"uptime_s": 65, "fw": "0.1.0", "seq": 2})
    m.wait(lambda: len(m.out) >= 4)
    assert m.stop() == 0
    r = m.records()[:4]  # (it may go stale again before it stops)
    assert [(x["node"], x["kind"]) for x in r] == [("quiet", "health"), ("gone", "status"),
                                                    ("quiet", "stale"), ("quiet", "health")]
    # Never flagged before --stale; how much later depends on the machine's load.
    assert r[2]["flags"] == {"stale": True} and 0.5 <= r[2]["payload"]["silent_s"] < 10
    assert r[3]["flags"] == {"resumed": True}
    shown = screen.getvalue()
    assert "citynode monitor" in shown and "%s/quiet" % site in shown and "offline" in shown
    assert "online STALE" not in shown and "- STALE" in shown and "up 5s, fw 0.1.0" in shown


def test_the_monitors_own_outage_is_not_the_nodes_silence():
    """The broker goes away for longer than --stale: the monitor says it has
    lost the connection, connects again by itself, flags no node meanwhile,
    and goes on with the sequence."""
    with Broker() as b:
        m = Monitor(b.port, "--json", "--stale", "1.5")
        p = Publisher(b.port)
        p.send("citynode/s/n/water", {"level_mm": 1, "seq": 1})
        m.wait(lambda: len(m.out) == 1)
        p.close()
        b.stop()
        time.sleep(2)
        b.start()
        m.wait(lambda: "connected again" in " ".join(m.err))
        p = Publisher(b.port)
        p.send("citynode/s/n/water", {"level_mm": 2, "seq": 2})
        m.wait(lambda: len(m.out) == 2)
        p.close()
        assert m.stop() == 0
    assert [(r["kind"], r["seq"], r["flags"]) for r in m.records()] == [("water", 1, {}), ("water", 2, {})]
    assert "lost the connection to %s:%d" % (HOST, b.port) in m.err[1]


def test_fleet_state_in_a_share_from_one_and_bad_payloads():
    """host_tools.field.fleet alone: a share member tells repeats but no gaps; the
    demo's nodes count from seq 1; what is not a proper payload is flagged
    and still shown; retained messages stay out of the sequence."""
    share = fleet.Fleet(contiguous=False)
    flags = [share.take("citynode/s/n/water", b'{"seq":%d}' % q, False, 0)["flags"] for q in (5, 9, 9, 7)]
    assert flags == [{}, {}, {"duplicate": True}, {}]
    assert (share.nodes[("s", "n")].seq.distinct, fleet.seq_text(share.nodes[("s", "n")])) == (
        3, "seq 9, 3 msgs, dup 1")
    demo_nodes = fleet.Fleet()
    n = demo_nodes.add("s", "n", 0, first_seq=1, expected=4)
    assert demo_nodes.take("citynode/s/n/bay/b", b'{"state":"free","seq":40}', True, 0)["flags"] == {
        "retained": True}
    assert demo_nodes.take("citynode/s/n/env", b'{"temp_c":1.5,"seq":3}', False, 0)["flags"] == {"gap": 2}
    assert (n.seq.missing, n.done(), n.bays) == (2, False, {"b": "free"})
    bad = [demo_nodes.take("citynode/s/n/" + kind, body, False, 0) for kind, body in (
        ("water", b"12 mm"), ("water", b'{"level_mm":3}'), ("health", b"\xff"))]
    assert [(r["payload"], r["flags"]) for r in bad] == [
        ("12 mm", {"bad_payload": "not a JSON object"}), ({"level_mm": 3}, {"bad_payload": "no integer seq"}),
        ("\ufffd", {"bad_payload": "not UTF-8"})]
    with pytest.raises(ValueError):
        demo_nodes.take("other/s/n/water", b"{}", False, 0)


# ---- shared subscriptions


def test_two_monitors_in_one_share_group_split_the_traffic(broker, pub):
    site = unique("share")
    pub.send("citynode/%s/n0/status" % site, "online", retain=True)
    group = [Monitor(broker.port, "--json", "--site", site, "--share", "city") for _ in range(2)]
    sent = set()
    kinds = ("water", "env", "event", "health")
    for i in range(200):
        node, kind, seq = "n%d" % (i % 3), kinds[i % 4], i // 3 + 1
        pub.send("citynode/%s/%s/%s" % (site, node, kind), {"i": i, "seq": seq})
        sent.add((node, kind, seq))
    pub.send("citynode/%s/n0/bay/b1" % site, {"state": "occupied", "ts": 1, "seq": 999})

    def readings(m):
        return [(r["node"], r["kind"], r["seq"]) for r in m.records() if r["kind"] in kinds]

    assert wait_for(lambda: sum(len(readings(m)) for m in group) >= len(sent))
    for m in group:
        m.wait(lambda m=m: any(r["kind"] == "bay/b1" for r in m.records()))
    time.sleep(0.3)  # anything doubled would have come by now
    for m in group:
        assert m.stop() == 0
    a, b = (readings(m) for m in group)
    assert len(a) + len(b) == len(sent) and set(a) | set(b) == sent  # nothing lost, nothing doubled
    assert a and b  # both took a share
    for m in group:
        r = m.records()
        # the retained status and the (live) bay reach every member, through plain subscriptions
        assert [x["flags"] for x in r if x["kind"] == "status"] == [{"retained": True}]
        assert [x["payload"]["state"] for x in r if x["kind"] == "bay/b1"] == ["occupied"]
        assert all(x["flags"] == {} for x in r if x["kind"] in kinds)  # no gap flags in a share
        plain_part = "watching citynode/%s/+/{status,bay/+} " % site
        shared_part = "$share/city/citynode/%s/+/{water,env,event,health,cmd/ack} on" % site
        assert plain_part + shared_part in m.err[0]


# ---- a node's retained state and its will, from the firmware itself


@pytest.fixture
def parking_node(broker, tmp_path):
    """The node's firmware (citynode.board.node.main on CPython) replaying a slice
    of the parking day into the broker, then lingering connected."""
    rec = tmp_path / "rec.jsonl"
    info = replay.make_slice(ROOT / "recordings" / "parking-day.jsonl.gz", PARKING, rec)
    site = unique("park")
    cfg = {"site": site, "node": info["header"]["node"], "sensors": info["header"]["sensors"],
           "broker": {"host": HOST, "port": broker.port, "keepalive": 30},
           "hal": {"kind": "sim", "recording": str(rec), "speed": 0},
           "outbox_dir": str(tmp_path / "outbox"), "health_s": 300}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    proc = subprocess.Popen([sys.executable, "-c", "from citynode.board import node; node.main(%r)"
                             % str(tmp_path / "config.json")], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("citynode: recording done")
        bays = {}
        for _t, topic, p in replay.run(rec).messages:
            if topic.startswith("bay/"):
                bays[topic[4:]] = p["state"]
        yield proc, site, info["header"]["node"], bays
    finally:
        proc.kill()
        proc.wait(10)


def test_retained_status_and_bays_reach_a_monitor_started_later(broker, parking_node):
    _proc, site, node, bays = parking_node
    p = run_cli("--broker", url(broker.port), "--site", site, "--once", "--json")
    assert p.returncode == 0, p.stderr
    r = [json.loads(ln) for ln in p.stdout.splitlines()]
    assert all(x["flags"] == {"retained": True} and x["node"] == node for x in r)
    assert r[0]["kind"] == "status" and r[0]["payload"] == {"state": "online"}
    assert {x["kind"][4:]: x["payload"]["state"] for x in r[1:]} == bays
    assert len(r) == 1 + len(bays) == 5
    p = run_cli("--broker", url(broker.port), "--site", site, "--once")
    occupied = sorted(b for b, s in bays.items() if s == "occupied")
    assert p.stdout.count("\n") == 1
    assert "%s/%s online" % (site, node) in p.stdout and "last seen not live yet" in p.stdout
    free = len(bays) - len(occupied)
    assert "bays %d occupied, %d free: %s" % (len(occupied), free, " ".join(occupied)) in p.stdout


def test_a_killed_node_is_shown_offline_by_its_will(broker, parking_node):
    proc, site, node, _bays = parking_node
    m = Monitor(broker.port, "--json", "--site", site)
    m.wait(lambda: len(m.out) >= 5)  # the retained state
    proc.kill()
    m.wait(lambda: len(m.out) >= 6)
    assert m.stop() == 0
    last = m.records()[-1]
    assert (last["node"], last["kind"], last["flags"]) == (node, "status", {})
    assert last["payload"] == {"state": "offline"}
    p = run_cli("--broker", url(broker.port), "--site", site, "--once")
    assert "%s/%s offline" % (site, node) in p.stdout


# ---- errors


def test_bad_url_and_unreachable_broker_are_one_line_with_status_2():
    p = run_cli("--broker", "http://x")
    assert p.returncode == 2
    assert p.stderr.splitlines() == ["citynode monitor: error: --broker must look like mqtt://HOST:PORT, "
                                     "not 'http://x'"]
    port = free_port()
    p = run_cli("--broker", url(port), "--json")
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.splitlines() == ["citynode monitor: error: cannot reach the broker at %s:%d: "
                                     "Connection refused" % (HOST, port)]
    p = run_cli("--site", "a/b")
    assert p.returncode == 2 and len(p.stderr.splitlines()) == 1 and "--site" in p.stderr


def test_a_server_that_is_no_broker_is_one_line_with_status_2():
    with socket.create_server((HOST, 0)) as server:
        def answer():
            conn, _ = server.accept()
            with conn:
                conn.recv(100)
                conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")

        threading.Thread(target=answer, daemon=True).start()
        port = server.getsockname()[1]
        p = run_cli("--broker", url(port), "--once")
    assert p.returncode == 2
    assert p.stderr.splitlines() == ["citynode monitor: error: %s:%d closed the connection without accepting "
                                     "it (is it an MQTT broker?)" % (HOST, port)]


def test_auth_refused_is_one_line_and_the_password_never_shows(tmp_path):
    b = Broker()
    pw = tmp_path / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pw), "ops", "s3cret-pw"], check=True, timeout=10)
    b.conf.write_text(b.conf.read_text().replace("allow_anonymous true", "allow_anonymous false\n"
                                                 "password_file %s" % pw))
    with b:
        env = {"PATH": "/usr/bin:/bin", "CITYNODE_MQTT_PASSWORD": "wrong-pw"}
        p = run_cli("--broker", url(b.port), "--user", "ops", "--once", env=env)
        assert p.returncode == 2
        assert p.stderr.splitlines() == ["citynode monitor: error: the broker at %s:%d refused the "
                                         "connection: Not authorized (check --user and "
                                         "$CITYNODE_MQTT_PASSWORD)" % (HOST, b.port)]
        env["CITYNODE_MQTT_PASSWORD"] = "s3cret-pw"
        p = run_cli("--broker", url(b.port), "--user", "ops", "--once", env=env)
        assert p.returncode == 0 and "watching" in p.stderr
        assert "s3cret-pw" not in p.stdout + p.stderr
        p = run_cli("--broker", url(b.port), "--user", "ops", env={"PATH": "/usr/bin:/bin"})
        assert p.returncode == 2
        assert p.stderr.splitlines() == ["citynode monitor: error: --user ops needs a password: set "
                                         "$CITYNODE_MQTT_PASSWORD (there is no terminal to ask on)"]


def test_help_explains_the_options_with_examples():
    p = run_cli("--help")
    assert p.returncode == 0
    for word in ("--broker", "--site", "--user", "CITYNODE_MQTT_PASSWORD", "--stale", "--json", "--share",
                 "--once", "--duration", "examples:", "$share/GROUP", "docs/monitor.md"):
        assert word in p.stdout, word
    top = subprocess.run([sys.executable, "-m", "host_tools.cli", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=30, check=False).stdout
    assert "monitor" in top
