"""A whole node inside MicroPython (tests/node_mp_run.py: core, publisher,
outbox, MQTT client) publishing a synthetic flood recording to a real
Mosquitto, read back by a paho-mqtt subscriber on the desk.

What reaches the subscriber is checked against a CPython replay of the
same recording: every message, in the same order, each with `seq` 1..N
(first sightings), through a broker outage, with QoS 1 repeats allowed only
as resends. The node reaches the broker through a relay (tests/test_mqtt.py)
that records what it sends, so DUP flags and QoS are checked on the wire.

The broker here keeps sessions across its restart (persistence on) and the
subscriber uses a persistent session: what the broker has acknowledged to
the node is then delivered to the subscriber even if the broker restarts
first. Without that, messages acknowledged while the subscriber is away
would be lost by the broker, which no node can prevent.
"""

import json
import os
import random
import select
import signal
import subprocess
import time

import pytest

from host_tools import mpy
from host_tools.desk import replay, synth
from host_tools.mosquitto import Broker
from tests.conftest import ROOT
from tests.paho_subscriber import Subscriber, retained_status, unique
from tests.test_mqtt import Relay, publishes

MAX_PENDING = 32  # citynode.link.mqtt.MQTTClient's default in-flight table, which the node uses
STORM_H = (16.0, 17.6)  # a slice of the flood event: the water rises past watch, warning, danger
MORNING_H = (0.0, 0.5)
OUTAGE_S = 2.0

# ---- fixtures


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """The flood event (plain JSON Lines) and two slices of it."""
    d = tmp_path_factory.mktemp("recordings")
    day = d / "flood-event.jsonl"
    synth.flood_event().write(day)
    lines = day.read_text().splitlines()
    out = {"day": day}
    for name, (a, b) in (("storm", STORM_H), ("morning", MORNING_H)):
        lo, hi = int(a * 3600000), int(b * 3600000)
        kept = [ln for ln in lines[1:] if lo <= json.loads(ln)["t"] < hi]
        out[name] = d / (name + ".jsonl")
        out[name].write_text("\n".join([lines[0]] + kept) + "\n")
    return out


@pytest.fixture(scope="module")
def broker():
    b = Broker()
    store = b.dir / "store"
    store.mkdir()
    conf = b.conf.read_text()
    assert "persistence false\n" in conf
    b.conf.write_text(conf.replace("persistence false\n", "persistence true\npersistence_location %s/\n"
                                   "max_queued_messages 100000\n" % store))
    with b:
        yield b


# ---- the desk's side


def start_node(port, recording, outbox, site, *extra):
    env = {**os.environ, "MICROPYPATH": "firmware:.:.frozen"}
    cmd = [mpy.micropython_binary(), "-X", "heapsize=256K", "tests/node_mp_run.py", str(port), str(recording),
           str(outbox), "--site", site, *extra]
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def finish(proc, timeout=120):
    """The node's DONE figures once it has exited."""
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    lines = [ln for ln in out.splitlines() if ln.startswith("DONE ")]
    assert lines, out
    return json.loads(lines[-1][5:])


def wire(relay, prefix):
    """Every reading the node sent, connection by connection, in order:
    (connection index, seq, dup, pid, qos, retain)."""
    out = []
    for i, conn in enumerate(relay.conns):
        for p in publishes(bytes(conn.c2s)):
            if p["topic"].startswith(prefix) and p["topic"] != prefix + "status":
                out.append((i, json.loads(p["payload"])["seq"], p["dup"], p["pid"], p["qos"], p["retain"]))
    return out


def sent_count(conn):
    """Readings sent so far on one live connection (an unfinished last packet not counted)."""
    return sum(1 for p in publishes(bytes(conn.c2s)) if not p["topic"].endswith("/status"))


class StormRun:
    """The node (MicroPython) replaying the storm through a relay, paced,
    with a subscriber on the desk; `finish()` checks it ended with every
    message published, and that the subscriber saw the replay's stream.
    Used as a context manager: the node and the relay do not outlive it."""

    def __init__(self, broker, recordings, tmp_path, stem, pace_ms):
        self.reference = replay.run(recordings["storm"]).messages
        self.n = len(self.reference)
        site = unique(stem)
        self.prefix = "citynode/%s/street-demo-1/" % site
        self.relay = Relay(broker.port)
        self.sub = Subscriber(broker.port, self.prefix)
        self.proc = start_node(self.relay.port, recordings["storm"], tmp_path / "outbox", site,
                               "--pace-ms", str(pace_ms))
        assert self.sub.wait(lambda: self.sub.first_seen() >= 100, timeout=15)

    def finish(self):
        """(the node's figures, the repeats the subscriber saw, what went on the wire)."""
        done = finish(self.proc)
        assert done["seq"] == self.n == done["published"] and done["settled"], done
        assert done["lost"] == 0 and done["dropped"] == 0
        assert self.sub.wait(lambda: self.sub.first_seen() >= self.n)
        return done, check_same_as_replay(self.sub, self.reference), wire(self.relay, self.prefix)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.sub.close()
        self.relay.close()


def sightings(sub):
    """The seqs in the order first seen, the message each first carried, and
    the repeats as (seq, dup flag); a repeat must carry the same message."""
    first = {}
    order = []
    repeats = []
    for suffix, p, dup in sub.data():
        seq = p["seq"]
        if seq in first:
            assert first[seq] == (suffix, p), "seq %d repeated with another message" % seq
            repeats.append((seq, dup))
        else:
            first[seq] = (suffix, p)
            order.append(seq)
    return order, first, repeats


def check_one_to(order, n):
    """`order` is 1..n."""
    want = list(range(1, n + 1))
    if order != want:
        bad = next(i for i in range(min(len(order), len(want)) + 1)
                   if i >= len(order) or i >= len(want) or order[i] != want[i])
        raise AssertionError("seq out of line at position %d: got %s, want %s (%d received, %d published)"
                             % (bad, order[bad:bad + 5], want[bad:bad + 5], len(order), len(want)))


def check_same_as_replay(sub, reference):
    """First sightings of `seq` run 1..N with no gap or reordering and carry
    exactly the replay's messages; a repeat carries a seq already seen and the
    same message. Returns the repeats as (seq, dup flag)."""
    order, first, repeats = sightings(sub)
    check_one_to(order, len(reference))
    for seq, (_t, topic, payload) in zip(order, reference, strict=True):
        suffix, p = first[seq]
        p = dict(p)
        del p["seq"]
        assert (suffix, p) == (topic, payload), "seq %d: %r, the replay has %r" % (seq, (suffix, p),
                                                                                   (topic, payload))
    return repeats


# ---- tests


def test_a_day_of_readings_arrives_complete_in_order_with_seq(broker, recordings, tmp_path):
    """The whole flood day, unpaced: every message the core publishes reaches
    the subscriber once, seq 1..N, all at QoS 1, none retained, none resent."""
    reference = replay.run(recordings["day"]).messages
    site = unique("day")
    prefix = "citynode/%s/street-demo-1/" % site
    relay = Relay(broker.port)
    try:
        with Subscriber(broker.port, prefix) as sub:
            done = finish(start_node(relay.port, recordings["day"], tmp_path / "outbox", site))
            n = len(reference)
            assert done["seq"] == n == done["published"] and done["settled"], (done, len(relay.conns))
            assert done["lost"] == 0 and done["dropped"] == 0 and done["outbox_depth"] == 0
            assert sub.wait(lambda: sub.first_seen() >= n)
            assert check_same_as_replay(sub, reference) == []
            sent = wire(relay, prefix)
            assert [s for _c, s, _d, _p, _q, _r in sent] == list(range(1, n + 1))
            assert {(q, r, d) for _c, _s, d, _p, q, r in sent} == {(1, False, False)}
            assert sub.status()[:1] == [b"online"] and sub.status()[-1] == b"offline"  # birth; clean end
    finally:
        relay.close()
    print("day: %d messages, %d stored in the outbox on the way" % (n, done["stored"]))


def test_a_broker_restart_loses_and_reorders_nothing(broker, recordings, tmp_path):
    """Mid-storm the link first goes dark (sent, never acknowledged: the
    node's in-flight table fills, later readings go to the outbox), then the
    broker is stopped for OUTAGE_S and started again on the same port. The
    subscriber still gets seq 1..N in order with the replay's messages;
    repeats are resends of a seq already seen."""
    with StormRun(broker, recordings, tmp_path, "storm", 12) as run:
        relay, sub, n = run.relay, run.sub, run.n
        sub.paused.set()  # the broker's messages to it now wait unacknowledged
        time.sleep(0.3)
        conn = relay.conns[0]
        relay.hold()
        t_dark = time.monotonic()
        # Held until the node stops sending: its in-flight table is full.
        last, still = sent_count(conn), time.monotonic()
        while time.monotonic() - still < 0.4 and time.monotonic() - t_dark < 5:
            time.sleep(0.05)
            now = sent_count(conn)
            if now != last:
                last, still = now, time.monotonic()
        held_s = time.monotonic() - t_dark
        broker.stop()
        t_down = time.monotonic()
        relay.drop()
        relay.release()
        time.sleep(OUTAGE_S)
        broker.start()
        down_s = time.monotonic() - t_down
        sub.paused.clear()
        done, repeats, sent = run.finish()
        assert done["stored"] > 0

    # On the wire: all QoS 1, none retained; a seq sent again is a resend of
    # the same packet id with DUP, and a first transmission has DUP 0.
    assert {(q, r) for _c, _s, _d, _p, q, r in sent} == {(1, False)}
    pid_of = {}
    resent = []
    for c, seq, dup, pid, _q, _r in sent:
        if seq in pid_of:
            assert dup and pid == pid_of[seq], (c, seq, dup, pid)
            resent.append(seq)
        else:
            assert not dup, (c, seq)
            pid_of[seq] = pid
    assert sorted(pid_of) == list(range(1, n + 1))
    # What the dark link swallowed was the full in-flight table, resent first
    # on the next connection, in order.
    assert len(resent) == MAX_PENDING and resent == sorted(resent)
    reconnect = [s for c, s, _d, _p, _q, _r in sent if c == 1][:MAX_PENDING]
    assert reconnect == resent
    # A repeat at the subscriber is flagged DUP by the broker, or is a
    # message the node itself resent.
    for seq, dup in repeats:
        assert dup or seq in resent, seq
    flagged = sum(1 for _s, d in repeats if d)
    print("storm: %d messages; link dark %.1f s then broker down %.1f s; %d stored in the outbox; "
          "%d resent by the node with DUP; %d repeats at the subscriber (%d flagged DUP by the broker)"
          % (n, held_s, down_s, done["stored"], len(resent), len(repeats), flagged))


@pytest.mark.parametrize("direction", ["node-to-broker", "broker-to-node"])
def test_a_connection_cut_mid_packet_loses_and_reorders_nothing(broker, recordings, tmp_path, direction):
    """The proxy closes the connection in the middle of a packet: of a
    PUBLISH the node is sending, or of what the broker is sending back
    (PUBACKs). The node reconnects and resends what was not acknowledged:
    seq 1..N in order at the subscriber, the replay's messages, repeats
    only as resends."""
    with StormRun(broker, recordings, tmp_path, "cut", 5) as run:
        relay = run.relay
        if direction == "node-to-broker":
            relay.c2s_cut_after = 61  # a PUBLISH is ~150 bytes: this ends inside one
        else:
            relay.budget_action = "cut"
            relay.s2c_budget = 3  # inside the next PUBACK (4 bytes)
        assert run.sub.wait(lambda: len(relay.conns) >= 2, timeout=10)  # cut, and connected again
        _done, repeats, sent = run.finish()
    first = {}
    for c, seq, dup, _pid, _q, _r in sent:
        if seq in first:
            assert dup and c > first[seq], (c, seq)  # only a later connection resends, with DUP
        else:
            first[seq] = c
    print("cut %s: %d messages, %d connections, %d repeats at the subscriber"
          % (direction, run.n, len(relay.conns), len(repeats)))


def test_a_killed_node_leaves_offline_on_status(broker, recordings, tmp_path):
    site = unique("kill")
    prefix = "citynode/%s/street-demo-1/" % site
    with Subscriber(broker.port, prefix) as sub:
        proc = start_node(broker.port, recordings["morning"], tmp_path / "outbox", site, "--linger")
        try:
            ready, _, _ = select.select([proc.stdout], [], [], 20)
            line = proc.stdout.readline() if ready else ""
            assert line.startswith("DONE "), line
            done = json.loads(line[5:])
            assert done["settled"] and done["seq"] > 0
            assert sub.wait(lambda: sub.first_seen() >= done["seq"])
            assert retained_status(broker.port, prefix) == (b"online", True)
            proc.send_signal(signal.SIGKILL)  # power gone: no DISCONNECT
            proc.wait(timeout=5)
            assert sub.wait(lambda: sub.status()[-1:] == [b"offline"], timeout=5)
            assert retained_status(broker.port, prefix) == (b"offline", True)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=5)
            proc.stdout.close()


# ---- power cuts

KILLS = 30
KILL_SEED = 20261207
TEARS = 8  # of the kills, those in the middle of a write to the outbox
OUTAGE_KILLS = 3  # kills in a row while the broker is down, twice


class PowerUp:
    """One power-up of the node (MicroPython) with `--trace`: reads what it
    prints, line by line, as it comes."""

    def __init__(self, port, recording, outbox, site, *extra):
        self.proc = start_node(port, recording, outbox, site, "--trace", "--backoff-ms", "100", *extra)
        self.lines = []
        self._buf = b""
        line = self.wait(("BOOT ", "TEAR"))  # a write torn while the outbox recovers comes first
        self.boot = json.loads(line[5:]) if line.startswith("BOOT ") else None

    def wait(self, prefix, count=1, timeout=60):
        """Read until `count` lines starting with `prefix` (a str, or a
        tuple of them) have come since the last call; returns the last."""
        end = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while time.monotonic() < end:
            while b"\n" in self._buf:
                line, self._buf = self._buf.split(b"\n", 1)
                line = line.decode()
                self.lines.append(line)
                if line.startswith(prefix):
                    count -= 1
                    if count <= 0:
                        return line
            if select.select([fd], [], [], 0.5)[0]:
                chunk = os.read(fd, 65536)
                assert chunk, "the node exited:\n" + "\n".join(self.lines[-20:])
                self._buf += chunk
        tail = "\n".join(self.lines[-20:])
        raise AssertionError("no %r from the node in %d s:\n%s" % (prefix, timeout, tail))

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc.stdout.close()


def test_power_cuts_at_random_moments_lose_nothing(broker, recordings, tmp_path):
    """The node replays the storm and is killed (SIGKILL: no DISCONNECT, no
    flush, nothing saved) at KILLS seeded random moments, then powered up
    again on the same outbox, each time starting the storm over. TEARS of
    the kills come in the middle of a file write to the outbox (half of it
    on flash); 2 x OUTAGE_KILLS come while the broker is down. A last
    power-up replays the storm to its end. The subscriber (persistent
    session) sees every seq from 1 to the last one given, in order of first
    arrival; a seq seen again carries the same message and is either a
    resend the node flagged DUP on the wire or a redelivery the broker
    flagged DUP."""
    rng = random.Random(KILL_SEED)
    tears = set(rng.sample(range(KILLS), TEARS))
    downs = (rng.randrange(2, 12), rng.randrange(15, KILLS - OUTAGE_KILLS))
    down_at = {a: a + OUTAGE_KILLS for a in downs}  # stopped before power-up a, started before a + 3
    site = unique("cuts")
    prefix = "citynode/%s/street-demo-1/" % site
    outbox = tmp_path / "outbox"
    relay = Relay(broker.port)
    sub = Subscriber(broker.port, prefix)
    boots = []
    try:
        for k in range(KILLS):
            if k in down_at:
                broker.stop()
            if k in down_at.values():
                broker.start()
            extra = ["--pace-ms", "2"]
            if k in tears:
                extra += ["--tear", str(rng.randint(1, 40))]  # the n-th write: mostly appends, some state
            node = PowerUp(relay.port, recordings["storm"], outbox, site, *extra)
            try:
                if k in tears:
                    if node.boot is not None:
                        node.wait("TEAR")
                else:
                    node.wait("P ", rng.randint(1, 30))
                    time.sleep(rng.random() * 0.05)
            finally:
                node.kill()
            if node.boot is not None:
                boots.append(node.boot)
        assert broker.proc is not None
        last = PowerUp(relay.port, recordings["storm"], outbox, site)
        done = json.loads(last.wait("DONE ", timeout=120)[5:])
        assert last.proc.wait(timeout=30) == 0
        last.proc.stdout.close()
        n = done["seq"]
        assert done["settled"] and done["lost"] == 0 and done["dropped"] == 0, done
        assert sub.wait(lambda: sub.first_seen() >= n, timeout=60), (sub.first_seen(), n)
        order, _first, repeats = sightings(sub)
        check_one_to(order, n)
        sent = wire(relay, prefix)
    finally:
        if broker.proc is None:
            broker.start()
        sub.close()
        relay.close()

    times = {}
    for _c, seq, dup, _pid, _q, _r in sent:
        assert seq <= n
        if seq in times:
            assert dup, "seq %d sent again without DUP" % seq
        times[seq] = times.get(seq, 0) + 1
    assert sorted(times) == list(range(1, n + 1))
    for seq, dup in repeats:
        assert dup or times[seq] > 1, seq
    resent = sum(1 for t in times.values() if t > 1)
    torn = sum(1 for b in boots if b["recovered_bytes_lost"])
    assert resent > 0 and torn > 0  # what was in flight went again; some kills cut a record in two
    assert sum(1 for b in boots if b["pending"]) > len(boots) // 2  # power-ups with messages waiting on flash
    print("power cuts: %d kills (%d mid-write, %d cutting a record, %d with the broker down); %d messages; "
          "%d sent again with DUP; %d repeats at the subscriber; last run: %d outbox writes for %d messages"
          % (KILLS, TEARS, torn, 2 * OUTAGE_KILLS, n, resent, len(repeats), done["outbox_writes"],
             done["stored"]))
