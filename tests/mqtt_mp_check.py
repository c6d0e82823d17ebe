"""citynode.link.mqtt inside the real MicroPython interpreter, against a real
broker (tests/test_mqtt.py starts it, and the relays, and reads this output).

    micropython mqtt_mp_check.py PORT REC_PORT DEAD_PORT TLS_PORT BAD_TLS_PORT CA_DER PREFIX
    micropython mqtt_mp_check.py PORT --will TOPIC

PORT is the broker, REC_PORT a relay to it that records what the node sends,
DEAD_PORT a relay that goes silent after the CONNACK, TLS_PORT / BAD_TLS_PORT
TLS listeners whose certificate is for `localhost` / for another name, CA_DER
the test CA. Prints "ok <check>" per check and "ALL OK"; exits 1 at the first
failure. With --will it connects with a last will, prints READY and polls
until it is killed.
"""

import select
import sys
import time

from citynode.link.mqtt import MQTTClient

HOST = "127.0.0.1"


def check(name, cond, detail=""):
    if not cond:
        print("FAIL %s %s" % (name, detail))
        sys.exit(1)
    print("ok %s" % name)


# A loaded machine makes a wall-clock figure later, never earlier: lower
# bounds exact, upper ones with this much slack.
LOAD_SLACK_MS = 2000


def pump(clients, cond, ms=3000):
    t0 = time.ticks_ms()
    while not cond() and time.ticks_diff(time.ticks_ms(), t0) < ms:
        for c in clients:
            c.poll()
        time.sleep_ms(5)
    return cond()


def collector(client):
    got = []
    client.on_message = lambda topic, payload, retained, dup: got.append((topic, payload, retained, dup))
    return got


def first_seen(got, topic):
    seqs = []
    for t, p, _r, _d in got:
        if t == topic and int(p) not in seqs:
            seqs.append(int(p))
    return seqs


def main(port, rec_port, dead_port, tls_port, bad_tls_port, ca_path, prefix):
    check("runtime", sys.implementation.name == "micropython")
    sub = MQTTClient(prefix + "-sub", HOST, port)
    got = collector(sub)
    sub.connect()
    check("subscribe qos1 granted", sub.subscribe(prefix + "/#", 1) == 1)

    status = prefix + "/status"
    node = MQTTClient(prefix + "-node", HOST, rec_port, will_topic=status)
    mine = collector(node)
    node.connect()
    check("connect", node.connected)
    check("birth online", pump([node, sub], lambda: (status, b"online", False, False) in got))

    node.publish(prefix + "/q0", b"zero")
    pid = node.publish(prefix + "/q1", b"one", qos=1)
    check("qos1 returns packet id", isinstance(pid, int) and 0 < pid < 65536)
    check("qos1 acknowledged", pump([node, sub], lambda: node.pending() == 0))
    check("qos0 and qos1 delivered", pump([node, sub], lambda: (prefix + "/q0", b"zero", False, False) in got
                                          and (prefix + "/q1", b"one", False, False) in got))

    check("node subscribes qos0", node.subscribe(prefix + "/cmd/0", 0) == 0)
    check("node subscribes qos1", node.subscribe(prefix + "/cmd/1", 1) == 1)
    sub.publish(prefix + "/cmd/0", b"c0", qos=1)
    sub.publish(prefix + "/cmd/1", b"c1", qos=1)
    want = [(prefix + "/cmd/0", b"c0", False, False), (prefix + "/cmd/1", b"c1", False, False)]
    check("node receives qos0 and qos1", pump([node, sub], lambda: mine == want), mine)

    # Sent but never acknowledged (the link drops before any PUBACK is read:
    # no DISCONNECT), then queued while disconnected: all resent, in order,
    # after reconnecting.
    seq = prefix + "/seq"
    for i in range(1, 6):
        node.publish(seq, str(i), qos=1)
    node._close()
    check("disconnected", not node.connected)
    for i in range(6, 9):
        node.publish(seq, str(i), qos=1)
    check("kept while disconnected", node.pending() >= 8, node.pending())
    node.connect()
    check("resent and acknowledged", pump([node, sub], lambda: node.pending() == 0))
    check("none lost, in order", pump([node, sub], lambda: first_seen(got, seq) == list(range(1, 9))),
          first_seen(got, seq))
    node.disconnect()

    # A clean disconnect while a reply waits unread (the birth's PUBACK, or a
    # PINGRESP): the broker closes the connection itself, every time.
    closed = 0
    for i in range(10):
        bye = MQTTClient(prefix + "-bye", HOST, port, will_topic=prefix + "/bye/status")
        bye.connect()
        if i % 2:
            bye._send(b"\xc0\x00", time.ticks_add(time.ticks_ms(), 2000))
        ready = select.poll()
        ready.register(bye._sock, select.POLLIN)
        ready.poll(2000)
        closed += bye.disconnect()
    check("clean disconnect", closed == 10, closed)

    # A broker that goes silent after CONNACK: noticed within 1.5 x keepalive.
    dead = MQTTClient(prefix + "-dead", HOST, dead_port, keepalive=1, op_timeout_ms=1000)
    dead.connect()
    t0 = time.ticks_ms()
    longest = 0
    while dead.connected and time.ticks_diff(time.ticks_ms(), t0) < 1500 + 2 * LOAD_SLACK_MS:
        t1 = time.ticks_ms()
        dead.poll()
        longest = max(longest, time.ticks_diff(time.ticks_ms(), t1))
        time.sleep_ms(10)
    silent = time.ticks_diff(time.ticks_ms(), t0)
    check("dead peer noticed", not dead.connected)
    check("dead peer within 1.5 x keepalive", 1000 <= silent <= 1500 + LOAD_SLACK_MS, silent)
    check("poll bounded", longest <= 1000 + LOAD_SLACK_MS, longest)
    print("dead peer after %d ms, longest poll %d ms" % (silent, longest))

    with open(ca_path, "rb") as f:
        ca = f.read()
    tls = MQTTClient(prefix + "-tls", HOST, tls_port, ssl_ca=ca, server_hostname="localhost")
    tls.connect()
    tls.publish(prefix + "/tls", b"secure", qos=1)
    check("tls connects with the CA", tls.connected)
    check("tls qos1 acknowledged", pump([tls, sub], lambda: tls.pending() == 0
                                        and (prefix + "/tls", b"secure", False, False) in got))
    check("tls clean disconnect", tls.disconnect())

    bad = MQTTClient(prefix + "-bad", HOST, bad_tls_port, ssl_ca=ca, server_hostname="localhost")
    try:
        bad.connect()
        refused = None
    except (OSError, ValueError) as e:
        refused = e
    check("tls refuses a wrong server name", refused is not None and not bad.connected)
    print("wrong name refused: %s %s" % (type(refused).__name__, str(refused).strip()))
    check("maintain reports failure", bad.maintain() is False and bad.next_attempt_ms() > 0)

    c = MQTTClient("backoff", HOST, 1)
    for n in range(10):
        c._fails = n
        c._backoff()
        nominal = min(60000, 1000 << n)
        check("backoff %d" % n, nominal * 3 // 4 <= c.backoff_ms <= nominal * 5 // 4, c.backoff_ms)
    seen = []
    for _ in range(50):
        c._fails = 0
        c._backoff()
        if c.backoff_ms not in seen:
            seen.append(c.backoff_ms)
    check("backoff jittered", len(seen) > 10, seen)

    c._pid = 65534
    ids = [c.publish("x", b"", qos=1) for _ in range(3)]
    check("packet ids wrap past 65535 and skip 0", ids == [65535, 1, 2], ids)

    sub.disconnect()
    print("ALL OK")


def will(port, topic):
    node = MQTTClient("mp-will-" + topic.replace("/", "-"), HOST, port, will_topic=topic, keepalive=30)
    node.connect()
    pump([node], lambda: node.pending() == 0, 5000)  # the birth is at the broker, retained
    print("READY")
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < 20000:
        node.poll()
        time.sleep_ms(20)


if len(sys.argv) > 2 and sys.argv[2] == "--will":
    will(int(sys.argv[1]), sys.argv[3])
else:
    a = sys.argv[1:]
    main(int(a[0]), int(a[1]), int(a[2]), int(a[3]), int(a[4]), a[5], a[6])
