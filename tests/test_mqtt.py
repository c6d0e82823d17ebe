"""citynode.link.mqtt against a real Mosquitto (host_tools/mosquitto.py), with a relay
that records and breaks connections, on CPython and inside MicroPython.
Each guarantee of docs/mqtt.md has a test here."""

import os
import select
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

from citynode import ticks
from citynode.link import mqtt
from citynode.link.mqtt import MQTTClient, MQTTError
from host_tools import mpy
from host_tools.mosquitto import HOST, Broker, free_port, make_pki
from tests.conftest import ROOT
from tests.paho_subscriber import unique

# ---- wire helpers (written from the MQTT 3.1.1 text, independent of the module)


def mqtt_str(b):
    return bytes((len(b) >> 8, len(b) & 0xFF)) + b


def split_packets(data):
    """(whole packets as bytes, the bytes of an unfinished last one)."""
    out, i = [], 0
    while i < len(data):
        n = shift = 0
        j = i + 1
        while j < len(data):
            b = data[j]
            j += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        else:
            break
        if j + n > len(data):
            break
        out.append(bytes(data[i:j + n]))
        i = j + n
    return out, bytes(data[i:])


def packets(data):
    """Split a byte stream into (first byte, body) MQTT packets; an
    unfinished last packet is left out."""
    out = []
    for p in split_packets(data)[0]:
        j = 1
        while p[j] & 0x80:
            j += 1
        out.append((p[0], p[j + 1:]))
    return out


def publishes(data):
    """The PUBLISH packets in a stream, as dicts."""
    out = []
    for first, body in packets(data):
        if first >> 4 != 3:
            continue
        n = (body[0] << 8) | body[1]
        qos = (first >> 1) & 3
        i = 2 + n + (2 if qos else 0)
        out.append({"topic": body[2:2 + n].decode(), "qos": qos, "dup": bool(first & 8),
                    "retain": bool(first & 1), "pid": int.from_bytes(body[i - 2:i], "big") if qos else None,
                    "payload": body[i:]})
    return out


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        assert chunk, "connection closed"
        buf += chunk
    return buf


# ---- a relay between clients and the broker that records and breaks things


class Relay:
    """Forwards loopback TCP connections to `upstream`, recording what each
    client sends (`conns[i].c2s`). Faults, applied to live connections:
    `hold()` passes nothing either way (client bytes are still recorded),
    `s2c_budget` lets that many more broker->client bytes through and then
    stalls (`budget_action="stall"`) or closes ("cut"), `chunk` delivers
    broker->client bytes in pieces of that size, `lose_publishes` makes the
    next that many client PUBLISH packets vanish on a connection that
    otherwise works (a broker that loses a message), `c2s_cut_after` lets
    that many more client bytes through and then closes the connection (a
    cut in the middle of whatever the client was sending), `drop()` closes
    all."""

    class Conn:
        def __init__(self, client, server):
            self.client, self.server = client, server
            self.pending = b""  # client bytes not yet framed (while losing publishes)
            self.c2s = bytearray()
            self.c2s_times = []  # (monotonic time, bytes)
            self.open = True
            self.done = threading.Event()

    def __init__(self, upstream):
        self.upstream = upstream
        self.conns = []
        self.forward_c2s = True
        self.s2c_budget = None
        self.budget_action = "stall"
        self.chunk = 0
        self.lose_publishes = 0
        self.c2s_cut_after = None
        self.last_s2c = None
        self._stop = False
        self._ls = socket.socket()
        self._ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._ls.bind((HOST, 0))
        self._ls.listen(8)
        self._ls.settimeout(0.05)
        self.port = self._ls.getsockname()[1]
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def hold(self):
        self.forward_c2s = False
        self.budget_action = "stall"
        self.s2c_budget = 0

    def release(self):
        self.forward_c2s = True
        self.s2c_budget = None

    def drop(self):
        for c in self.conns:
            c.open = False
        for c in self.conns:
            c.done.wait(timeout=2)

    def close(self):
        self._stop = True
        self.drop()
        for t in self._threads:
            t.join(timeout=2)
        self._ls.close()

    def _accept(self):
        while not self._stop:
            try:
                c, _ = self._ls.accept()
            except (TimeoutError, OSError):
                continue
            try:
                u = socket.create_connection((HOST, self.upstream), timeout=2)
            except OSError:
                c.close()
                continue
            conn = Relay.Conn(c, u)
            self.conns.append(conn)
            t = threading.Thread(target=self._pump, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _pump(self, conn):
        c, u = conn.client, conn.server
        watch = [c, u]
        try:
            while conn.open and not self._stop:
                ready, _, _ = select.select(watch, [], [], 0.02)
                for s in ready:
                    data = s.recv(65536)
                    if s is c:
                        if not data:
                            return
                        conn.c2s += data
                        conn.c2s_times.append((time.monotonic(), data))
                        if self.c2s_cut_after is not None:
                            keep = data[:self.c2s_cut_after]
                            self.c2s_cut_after -= len(keep)
                            u.sendall(keep)
                            if self.c2s_cut_after == 0:
                                self.c2s_cut_after = None  # the next connection passes
                                return
                        elif self.forward_c2s:
                            u.sendall(self._c2s_kept(conn, data))
                    elif not data:
                        if self.forward_c2s:
                            return
                        watch = [c]  # a black hole hides the broker going away
                    elif not self._to_client(conn, data):
                        return
        except OSError:
            pass
        finally:
            conn.open = False
            c.close()
            u.close()
            conn.done.set()

    def _c2s_kept(self, conn, data):
        """What of the client's bytes goes on: all, unless PUBLISH packets
        are to be lost, in which case whole packets are framed first."""
        if not self.lose_publishes and not conn.pending:
            return data
        whole, conn.pending = split_packets(conn.pending + data)
        out = bytearray()
        for packet in whole:
            if packet[0] >> 4 == 3 and self.lose_publishes:
                self.lose_publishes -= 1
                continue
            out += packet
        return bytes(out)

    def _to_client(self, conn, data):
        if self.s2c_budget is not None:
            keep = data[:self.s2c_budget]
            self.s2c_budget -= len(keep)
            cut = self.s2c_budget == 0 and self.budget_action == "cut"
            self._send(conn.client, keep)
            if cut:
                self.s2c_budget = None  # the next connection passes
                return False
            return True
        self._send(conn.client, data)
        return True

    def _send(self, s, data):
        step = self.chunk or len(data) or 1
        for i in range(0, len(data), step):
            s.sendall(data[i:i + step])
            self.last_s2c = time.monotonic()
            if self.chunk:
                time.sleep(0.002)


# ---- fixtures and client helpers


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def broker(pki):
    with Broker(pki) as b:
        yield b


@pytest.fixture
def relay(broker):
    r = Relay(broker.port)
    yield r
    r.close()


def collect(client):
    got = []
    client.on_message = lambda topic, payload, retained, dup: got.append((topic, payload, retained, dup))
    return got


def listener(port, topic, qos=1):
    """A subscriber (this module's client, on CPython) and the list it fills."""
    c = MQTTClient(unique("listener"), HOST, port)
    got = collect(c)
    c.connect()
    assert c.subscribe(topic, qos) == qos
    return c, got


def pump(clients, cond, timeout=3.0, every=0.005):
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        for c in clients:
            c.poll()
        time.sleep(every)
    return cond()


# ---- CONNECT, will, birth


def test_connect_birth_and_retained_status_on_the_wire(broker, relay):
    """The CONNECT and birth bytes the node sends, and the retained `online`
    a raw-socket subscriber gets, are exactly what MQTT 3.1.1 prescribes."""
    cid, status = unique("wire"), unique("w") + "/status"
    node = MQTTClient(cid, HOST, relay.port, user="u", password="p", keepalive=7, will_topic=status,
                      clean=False)
    node.connect()
    assert node.connected and not node.session_present
    assert pump([node], lambda: node.pending() == 0)
    sent = packets(relay.conns[0].c2s)
    body = (mqtt_str(b"MQTT") + bytes((4, 0x80 | 0x40 | 0x20 | 0x08 | 0x04, 0, 7)) + mqtt_str(cid.encode())
            + mqtt_str(status.encode()) + mqtt_str(b"offline") + mqtt_str(b"u") + mqtt_str(b"p"))
    assert sent[0] == (0x10, body)  # user, password, will retained QoS 1, will, clean off
    assert sent[1] == (0x33, mqtt_str(status.encode()) + b"\x00\x01" + b"online")  # QoS 1, retained

    raw = socket.create_connection((HOST, broker.port), timeout=3)
    try:
        body = mqtt_str(b"MQTT") + b"\x04\x02\x00\x3c" + mqtt_str(unique("raw").encode())
        raw.sendall(bytes((0x10, len(body))) + body)
        assert recv_exact(raw, 4) == b"\x20\x02\x00\x00"
        sub = b"\x00\x01" + mqtt_str(status.encode()) + b"\x00"
        raw.sendall(bytes((0x82, len(sub))) + sub)
        assert recv_exact(raw, 5) == b"\x90\x03\x00\x01\x00"
        retained = mqtt_str(status.encode()) + b"online"
        assert recv_exact(raw, 2 + len(retained)) == bytes((0x31, len(retained))) + retained
    finally:
        raw.close()
    node.disconnect()


def test_will_offline_retained_when_the_connection_dies(broker, relay):
    status = unique("will") + "/status"
    node = MQTTClient(unique("will"), HOST, relay.port, will_topic=status)
    node.connect()
    assert pump([node], lambda: node.pending() == 0)  # the birth is at the broker (it goes through a relay)
    live, got = listener(broker.port, status)
    assert pump([node, live], lambda: (status, b"online", True, False) in got)  # birth, retained
    relay.drop()  # the node's connection dies without DISCONNECT
    assert pump([node, live], lambda: (status, b"offline", False, False) in got)
    assert not node.connected
    late, got_late = listener(broker.port, status)
    assert pump([late], lambda: got_late == [(status, b"offline", True, False)])
    live.disconnect()
    late.disconnect()


def test_disconnect_leaves_offline_retained(broker):
    status = unique("bye") + "/status"
    node = MQTTClient(unique("bye"), HOST, broker.port, will_topic=status)
    node.connect()
    node.disconnect()
    assert not node.connected
    late, got = listener(broker.port, status)
    assert pump([late], lambda: got == [(status, b"offline", True, False)])
    late.disconnect()


DISCONNECTS = 100


def test_a_clean_disconnect_never_publishes_the_will(broker):
    """DISCONNECTS sessions, each ended by disconnect() while a reply waits
    unread in the node's socket: the PUBACK of the birth message, or (every
    other time) the PINGRESP to a PINGREQ sent just before. A socket closed
    with unread bytes is reset, and the reset would take the DISCONNECT
    with it. Every time the broker must close the connection itself (it had
    the DISCONNECT), and a subscriber sees `online` then the clean
    `offline` of each session, never a will."""
    prefix = unique("bye")
    got = []
    watcher = MQTTClient(unique("watch"), HOST, broker.port)
    watcher.on_message = lambda topic, payload, retained, dup: got.append((topic, payload))
    watcher.connect()
    # QoS 0: the broker's QoS 1 in-flight window to the watcher cannot hold
    # back one message behind another.
    assert watcher.subscribe(prefix + "/+/status", 0) == 0
    closed = []
    for i in range(DISCONNECTS):
        status = "%s/%d/status" % (prefix, i)
        node = MQTTClient("%s-%d" % (prefix, i), HOST, broker.port, will_topic=status)
        node.connect()
        if i % 2:  # a PINGREQ, as poll() sends it when due
            node._send(b"\xc0\x00", ticks.add(ticks.now_ms(), 5000))
        # Wait for the reply (the PUBACK, the PINGRESP) to be in the socket, unread.
        assert select.select([node._sock], [], [], 5)[0]
        closed.append(node.disconnect())
        assert not node.connected
        watcher.poll()
    assert closed == [True] * DISCONNECTS
    # The broker publishes each session's messages in order; the sentinel
    # comes after the last of them.
    sentinel = MQTTClient(unique("sentinel"), HOST, broker.port)
    sentinel.connect()
    sentinel.publish(prefix + "/end/status", b"end", qos=1)
    assert pump([sentinel, watcher], lambda: (prefix + "/end/status", b"end") in got, timeout=10)
    sentinel.disconnect()
    watcher.disconnect()
    want = []
    for i in range(DISCONNECTS):
        want += [("%s/%d/status" % (prefix, i), b"online"), ("%s/%d/status" % (prefix, i), b"offline")]
    assert got == want + [(prefix + "/end/status", b"end")]


def test_subscriptions_are_in_place_before_the_birth_message(broker, relay):
    """After a reconnect (clean session: the broker forgot the
    subscription), a controller that sends a command as soon as it sees
    `online` reaches the node: on the wire the SUBSCRIBE goes before the
    birth, and the client waits for its SUBACK in between."""
    prefix = unique("birth")
    status, cmd = prefix + "/status", prefix + "/cmd/x"
    controller = MQTTClient(unique("controller"), HOST, broker.port)
    controller.on_message = lambda topic, payload, retained, dup: (
        payload == b"online" and not retained and controller.publish(cmd, b"go", qos=1))
    controller.connect()
    assert controller.subscribe(status, 1) == 1
    node = MQTTClient(unique("node"), HOST, relay.port, will_topic=status)
    got = collect(node)
    node.subscribe(prefix + "/cmd/+", 1)
    for attempt in range(2):  # the first connection, and a reconnect after the link died
        del got[:]
        node.connect()
        assert pump([node, controller], lambda: (cmd, b"go", False, False) in got, timeout=5), attempt
        kinds = [first >> 4 for first, _body in packets(relay.conns[attempt].c2s)]
        assert kinds[:3] == [1, 8, 3], kinds  # CONNECT, SUBSCRIBE, then the birth PUBLISH
        relay.drop()
        assert pump([node], lambda: not node.connected)
    controller.disconnect()


# ---- publish, subscribe


def test_qos1_acknowledged_qos0_sent_and_packet_ids(broker):
    topic = unique("pub")
    sub, got = listener(broker.port, topic + "/#")
    node = MQTTClient(unique("pub"), HOST, broker.port)
    node.connect()
    assert node.publish(topic + "/a", b"zero") is None
    pids = [node.publish(topic + "/b", "m%d" % i, qos=1) for i in range(3)]
    assert pids == [1, 2, 3] and node.pending() == 3
    assert pump([node, sub], lambda: node.pending() == 0 and len(got) == 4)
    assert got[0] == (topic + "/a", b"zero", False, False)
    assert [p for t, p, r, d in got[1:]] == [b"m0", b"m1", b"m2"]
    node.disconnect()
    sub.disconnect()


def test_packet_ids_wrap_and_skip_zero_and_ids_in_flight():
    c = MQTTClient("ids", HOST, 1)
    assert c.publish("t", b"", qos=1) == 1  # queued: not connected, so never acknowledged
    c._pid = 65533
    assert [c.publish("t", b"", qos=1) for _ in range(3)] == [65534, 65535, 2]
    assert c.pending() == 4
    with pytest.raises(ValueError):
        c.publish("t", b"", qos=2)


def test_queue_is_bounded():
    c = MQTTClient("full", HOST, 1, max_pending=3)
    for _ in range(3):
        c.publish("t", b"", qos=1)
    with pytest.raises(MQTTError):
        c.publish("t", b"", qos=1)
    assert c.publish("t", b"", qos=0) is None  # QoS 0 while disconnected: dropped, no error


def test_subscribe_qos0_and_qos1_with_puback_for_qos1(broker, relay):
    topic = unique("sub")
    pub = MQTTClient(unique("pub"), HOST, broker.port)
    pub.connect()
    pub.publish(topic + "/1", b"kept", qos=1, retain=True)
    assert pump([pub], lambda: pub.pending() == 0)
    node = MQTTClient(unique("node"), HOST, relay.port)
    got = collect(node)
    node.connect()
    assert node.subscribe(topic + "/0", 0) == 0
    assert node.subscribe(topic + "/1", 1) == 1
    assert pump([node], lambda: (topic + "/1", b"kept", True, False) in got)  # a retained message
    pub.publish(topic + "/0", b"q0", qos=1)
    pub.publish(topic + "/1", b"q1", qos=1)
    assert pump([node, pub], lambda: len(got) == 3)
    assert got[1:] == [(topic + "/0", b"q0", False, False), (topic + "/1", b"q1", False, False)]
    sent = packets(relay.conns[0].c2s)
    subs = [body for first, body in sent if first == 0x82]
    assert subs[0][2:] == mqtt_str((topic + "/0").encode()) + b"\x00"
    assert subs[1][2:] == mqtt_str((topic + "/1").encode()) + b"\x01"
    pubacks = [body for first, body in sent if first == 0x40]
    assert len(pubacks) == 2  # the retained one and q1; the QoS 0 delivery is not acknowledged
    node.disconnect()
    pub.disconnect()


def test_oversized_message_is_skipped_not_fatal(broker):
    topic = unique("big")
    node = MQTTClient(unique("big"), HOST, broker.port, max_packet=512)
    got = collect(node)
    node.connect()
    node.subscribe(topic, 1)
    pub = MQTTClient(unique("pub"), HOST, broker.port)
    pub.connect()
    pub.publish(topic, b"x" * 5000, qos=1)
    pub.publish(topic, b"small", qos=1)
    assert pump([node, pub], lambda: got == [(topic, None, False, False), (topic, b"small", False, False)])
    assert node.dropped == 1 and node.connected
    node.disconnect()
    pub.disconnect()


# ---- a broker that loses a message on a live connection


def test_a_lost_puback_means_a_new_connection_and_a_resend(broker):
    """The broker answers (PINGRESP, later PUBACKs) but one PUBLISH never
    arrives: after `ack_timeout_ms` without its PUBACK the client treats the
    connection as broken, reconnects and sends it again with DUP."""
    relay = Relay(broker.port)
    try:
        topic = unique("lost")
        sub, got = listener(broker.port, topic)
        node = MQTTClient(unique("node"), HOST, relay.port, ack_timeout_ms=800)
        node.connect()
        relay.lose_publishes = 1  # the next PUBLISH vanishes on the way
        for i in range(1, 4):
            node.publish(topic, b"%d" % i, qos=1)
        assert pump([node, sub], lambda: len(got) == 2 and node.pending() == 1)
        assert [int(p) for _t, p, _r, _d in got] == [2, 3]
        assert pump([node, sub], lambda: not node.connected, timeout=3)
        assert str(node.last_error).startswith("no PUBACK for ")
        assert pump([node, sub], lambda: node.maintain() and node.pending() == 0 and len(got) == 3, timeout=5)
        assert len(relay.conns) == 2
        again = [p for p in publishes(relay.conns[1].c2s) if p["topic"] == topic]
        assert [(int(p["payload"]), p["dup"]) for p in again] == [(1, True)]
        assert [int(p) for _t, p, _r, _d in got] == [2, 3, 1]
        sub.disconnect()
        node.disconnect()
    finally:
        relay.close()


# ---- an outage: kept, resent with DUP, in order, none lost


def test_outage_keeps_qos1_and_resends_in_order_with_dup():
    with Broker() as b:
        relay = Relay(b.port)
        try:
            topic = unique("seq")
            sub, got = listener(b.port, topic)
            node = MQTTClient(unique("node"), HOST, relay.port)
            node.connect()
            for i in range(1, 4):
                node.publish(topic, b"%d" % i, qos=1)
            assert pump([node, sub], lambda: node.pending() == 0 and len(got) == 3)

            relay.hold()  # the link goes dark: sent, never acknowledged
            for i in range(4, 7):
                node.publish(topic, b"%d" % i, qos=1)
            assert pump([node], lambda: len(publishes(relay.conns[0].c2s)) == 6)
            b.stop()
            relay.drop()
            assert pump([node], lambda: not node.connected)
            for i in range(7, 10):  # published while the broker is down
                assert node.publish(topic, b"%d" % i, qos=1) is not None
            assert node.pending() == 6
            b.start()
            relay.release()
            sub.connect()  # subscribes again by itself: a clean session lost it
            assert 500 <= node.next_attempt_ms() <= 1250
            assert pump([node, sub], lambda: node.maintain() and node.pending() == 0, timeout=5)
            assert pump([sub], lambda: len(got) >= 9)
            seqs = [int(p) for t, p, r, d in got]
            assert seqs == list(range(1, 10))  # none lost, in order

            first = [p for p in publishes(relay.conns[0].c2s) if p["topic"] == topic]
            again = [p for p in publishes(relay.conns[-1].c2s) if p["topic"] == topic]
            assert [int(p["payload"]) for p in again] == list(range(4, 10))
            assert [p["dup"] for p in again] == [True] * 3 + [False] * 3  # 7..9 go out for the first time
            assert [p["pid"] for p in again[:3]] == [p["pid"] for p in first[3:6]]
            sub.disconnect()
            node.disconnect()
        finally:
            relay.close()


# ---- keepalive and dead peers


# A loaded machine can only make a wall-clock figure later, never earlier:
# measured in real time, the lower bounds are exact and the upper ones
# generous; the rule itself is checked on a clock moved by hand.
LOAD_SLACK_S = 2.0


def test_keepalive_pings_and_dead_peer_noticed_within_1_5_keepalive(broker, relay):
    node = MQTTClient(unique("ka"), HOST, relay.port, keepalive=2)
    node.connect()
    t0 = time.monotonic()
    assert not pump([node], lambda: not node.connected, timeout=2.2, every=0.02)  # healthy: stays up
    conn = relay.conns[0]
    pings = [t - t0 for t, data in conn.c2s_times if data == b"\xc0\x00"]
    assert pings and 0.95 <= pings[0] <= 1.0 + LOAD_SLACK_S  # PINGREQ after keepalive/2 of quiet
    relay.hold()
    last = relay.last_s2c
    assert pump([node], lambda: not node.connected, timeout=3.0 + 2 * LOAD_SLACK_S, every=0.02)
    silent = time.monotonic() - last
    assert 2.0 <= silent <= 3.0 + LOAD_SLACK_S, silent  # keepalive 2 s: noticed within 3 s
    assert "silent" in str(node.last_error)


def test_the_keepalive_rule_on_a_clock_moved_by_hand(broker, relay, monkeypatch):
    now = [ticks.now_ms()]
    monkeypatch.setattr(mqtt, "ticks_ms", lambda: now[0])  # the client's clock stands still unless moved
    node = MQTTClient(unique("ka-clock"), HOST, relay.port, keepalive=2)
    node.connect()
    relay.hold()  # from here nothing reaches the client: no PINGRESP either
    start = now[0]
    steps = []
    for ms in (999, 1000, 2499, 2500):  # keepalive 2 s: ping at 1 s of quiet, closed at 2.5 s of silence
        now[0] = ticks.add(start, ms)
        node.poll()
        steps.append((ms, node._ping_out, node.connected))
    assert steps == [(999, False, True), (1000, True, True), (2499, True, True), (2500, True, False)]
    assert str(node.last_error) == "broker silent for 2500 ms"


def test_broker_that_never_answers_cannot_block_connect(pki):
    with socket.socket() as mute:  # accepts (the kernel does) and never says a word
        mute.bind((HOST, 0))
        mute.listen(4)
        for ca in (None, pki["ca_der"].read_bytes()):  # no CONNACK; no TLS handshake
            c = MQTTClient(unique("mute"), HOST, mute.getsockname()[1], ssl_ca=ca, op_timeout_ms=300)
            t0 = time.monotonic()
            assert c.maintain() is False
            assert time.monotonic() - t0 < 0.3 + LOAD_SLACK_S and not c.connected
            assert isinstance(c.last_error, OSError)


# ---- partial packets


def test_packets_arriving_in_pieces(broker, relay):
    relay.chunk = 3
    topic = unique("pieces")
    node = MQTTClient(unique("pieces"), HOST, relay.port)
    got = collect(node)
    node.connect()
    assert node.subscribe(topic, 1) == 1
    pub = MQTTClient(unique("pub"), HOST, broker.port)
    pub.connect()
    pub.publish(topic, bytes(range(256)) * 2, qos=1)
    assert pump([node, pub], lambda: got == [(topic, bytes(range(256)) * 2, False, False)])
    assert node.connected
    node.disconnect()
    pub.disconnect()


def test_cut_mid_packet_is_an_error_then_a_clean_reconnect(broker, relay):
    topic = unique("cut")
    node = MQTTClient(unique("cut"), HOST, relay.port, clean=False)
    got = collect(node)
    node.connect()
    assert node.subscribe(topic, 1) == 1
    relay.budget_action = "cut"
    relay.s2c_budget = 40  # the broker's next packet is cut after 40 of its ~220 bytes
    pub = MQTTClient(unique("pub"), HOST, broker.port)
    pub.connect()
    pub.publish(topic, b"y" * 200, qos=1)
    assert pump([node, pub], lambda: not node.connected)
    assert got == [] and isinstance(node.last_error, MQTTError)
    assert pump([node], lambda: node.maintain(), timeout=1.0 + 4 * LOAD_SLACK_S)  # after ~1 s of backoff
    assert node.session_present
    assert pump([node], lambda: got == [(topic, b"y" * 200, False, True)])  # redelivered, DUP
    assert not [f for f, body in packets(relay.conns[-1].c2s) if f == 0x82]  # the session kept it
    node.disconnect()
    pub.disconnect()


def test_stall_mid_packet_is_bounded_by_op_timeout(broker, relay):
    topic = unique("stall")
    node = MQTTClient(unique("stall"), HOST, relay.port, op_timeout_ms=400)
    node.connect()
    node.subscribe(topic, 1)
    relay.s2c_budget = 30  # then nothing more: the packet never completes
    pub = MQTTClient(unique("pub"), HOST, broker.port)
    pub.connect()
    pub.publish(topic, b"z" * 200, qos=1)
    longest = 0.0
    end = time.monotonic() + 3
    while node.connected and time.monotonic() < end:
        t = time.monotonic()
        node.poll()
        longest = max(longest, time.monotonic() - t)
        pub.poll()
        time.sleep(0.005)
    assert not node.connected and "timed out" in str(node.last_error)
    assert 0.3 <= longest <= 0.4 + LOAD_SLACK_S, longest
    pub.disconnect()


# ---- backoff


def test_backoff_grows_doubling_jittered_bounded_and_resets(monkeypatch, broker):
    now = [10_000]
    monkeypatch.setattr(mqtt, "ticks_ms", lambda: now[0])
    closed = free_port()
    c = MQTTClient(unique("bo"), HOST, closed, op_timeout_ms=500)
    attempts = []
    real_open = c._open
    monkeypatch.setattr(c, "_open", lambda end: (attempts.append(now[0]), real_open(end)))
    for n in range(10):
        assert c.next_attempt_ms() == 0
        assert c.maintain() is False and len(attempts) == n + 1
        wait = c.next_attempt_ms()
        nominal = min(60_000, 1000 << n)
        assert 0.75 * nominal <= wait <= 1.25 * nominal, (n, wait)
        now[0] += wait - 1
        assert c.maintain() is False and len(attempts) == n + 1  # too early: no attempt
        now[0] += 1
    firsts = []
    for _ in range(200):  # many nodes failing once: their waits spread out
        x = MQTTClient("x", HOST, closed, op_timeout_ms=500)
        x.maintain()
        firsts.append(x.next_attempt_ms())
    assert min(firsts) >= 750 and max(firsts) <= 1250
    assert len(set(firsts)) > 50 and min(firsts) < 850 and max(firsts) > 1150

    relay = Relay(broker.port)
    try:
        c.port = relay.port  # the broker is back
        assert c.maintain() is True and c.connected
        relay.drop()
        assert pump([c], lambda: not c.connected)
        assert 750 <= c.next_attempt_ms() <= 1250  # reset on success: back to the base delay
    finally:
        relay.close()


# ---- TLS


def test_tls_connects_with_the_ca(broker, pki):
    ca = pki["ca_der"].read_bytes()
    topic = unique("tls")
    sub, got = listener(broker.port, topic)
    node = MQTTClient(unique("tls"), HOST, broker.tls_port, ssl_ca=ca, server_hostname="localhost")
    node.connect()
    assert isinstance(node._sock, ssl.SSLSocket)
    node.publish(topic, b"secure", qos=1)
    assert pump([node, sub], lambda: node.pending() == 0 and got == [(topic, b"secure", False, False)])
    assert node.disconnect()  # the broker closed the connection: it had the DISCONNECT
    sub.disconnect()


def test_tls_refuses_a_server_with_the_wrong_name(broker, pki):
    ca = pki["ca_der"].read_bytes()
    node = MQTTClient(unique("tls"), HOST, broker.bad_tls_port, ssl_ca=ca, server_hostname="localhost")
    with pytest.raises(ssl.SSLCertVerificationError):
        node.connect()
    assert not node.connected
    assert node.maintain() is False and node.next_attempt_ms() > 0  # counted as a failure, backs off


# ---- inside MicroPython


def run_micropython(*args, timeout=60):
    # ".frozen" keeps the interpreter's frozen `ssl` importable once MICROPYPATH is set
    env = {**os.environ, "MICROPYPATH": "firmware:.:.frozen"}
    return subprocess.run([mpy.micropython_binary(), "-X", "heapsize=256K", "tests/mqtt_mp_check.py", *args],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)


MP_CHECKS = ["runtime", "subscribe qos1 granted", "connect", "birth online", "qos1 returns packet id",
             "qos1 acknowledged", "qos0 and qos1 delivered", "node subscribes qos0", "node subscribes qos1",
             "node receives qos0 and qos1", "disconnected", "kept while disconnected",
             "resent and acknowledged", "none lost, in order", "clean disconnect", "dead peer noticed",
             "dead peer within 1.5 x keepalive", "poll bounded",
             "tls connects with the CA", "tls qos1 acknowledged", "tls clean disconnect",
             "tls refuses a wrong server name",
             "maintain reports failure", "backoff jittered", "packet ids wrap past 65535 and skip 0"]


def test_micropython_client(broker, pki):
    rec, dead = Relay(broker.port), Relay(broker.port)
    dead.s2c_budget = 4  # the CONNACK, then silence
    prefix = unique("mp")
    try:
        proc = run_micropython(str(broker.port), str(rec.port), str(dead.port), str(broker.tls_port),
                               str(broker.bad_tls_port), str(pki["ca_der"]), prefix)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0 and "ALL OK" in proc.stdout, out
        for name in MP_CHECKS:
            assert "ok %s\n" % name in proc.stdout, name
        # On the wire: the resends carry DUP and their first ids, in order;
        # those queued while disconnected go out for the first time.
        seq = prefix + "/seq"
        first = [p for p in publishes(rec.conns[0].c2s) if p["topic"] == seq]
        again = [p for p in publishes(rec.conns[1].c2s) if p["topic"] == seq]
        assert [int(p["payload"]) for p in first] == [1, 2, 3, 4, 5]
        assert [int(p["payload"]) for p in again] == list(range(1, 9))
        assert [p["dup"] for p in again] == [True] * 5 + [False] * 3
        assert [p["pid"] for p in again[:5]] == [p["pid"] for p in first]
    finally:
        rec.close()
        dead.close()


def test_micropython_node_killed_leaves_offline(broker):
    status = unique("mpwill") + "/status"
    env = {**os.environ, "MICROPYPATH": "firmware:.:.frozen"}
    proc = subprocess.Popen([mpy.micropython_binary(), "-X", "heapsize=256K", "tests/mqtt_mp_check.py",
                             str(broker.port), "--will", status], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        assert ready and proc.stdout.readline().strip() == "READY"
        live, got = listener(broker.port, status)
        assert pump([live], lambda: (status, b"online", True, False) in got)
        proc.send_signal(signal.SIGKILL)  # power gone: no DISCONNECT
        proc.wait(timeout=5)
        assert pump([live], lambda: (status, b"offline", False, False) in got)
        live.disconnect()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=5)
        proc.stdout.close()
