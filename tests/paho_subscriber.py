"""The desk's view of a node: a paho-mqtt subscriber, independent of the
firmware's own MQTT client, so what the integration tests check is what a
third-party consumer really receives."""

import contextlib
import itertools
import json
import os
import threading
import time

import paho.mqtt.client as paho

HOST = "127.0.0.1"
_ids = itertools.count(1)


def unique(stem):
    """A fresh name per call, so tests sharing a broker never see each other."""
    return "%s-%d-%d" % (stem, os.getpid(), next(_ids))


def _client(client_id, clean):
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean,
                    protocol=paho.MQTTv311)
    c.reconnect_delay_set(0.1, 0.4)
    return c


class Subscriber:
    """A subscriber to `prefix#` at QoS 1 with a persistent session, pumped
    by a thread; `got` holds (topic, payload, retained, dup) as they arrive.
    `paused` stops it reading (the broker's messages wait unacknowledged);
    after the broker goes away it reconnects (its session kept by the
    broker)."""

    def __init__(self, port, prefix):
        self.prefix = prefix
        self.got = []
        self.client = _client(unique("sub"), clean=False)
        self.client.on_message = lambda _c, _u, m: self.got.append(
            (m.topic, m.payload, m.retain, bool(m.dup)))
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.connect(HOST, port, keepalive=30)
        self.client.subscribe(prefix + "#", 1)
        end = time.monotonic() + 5
        while not subscribed.is_set() and time.monotonic() < end:
            self.client.loop(0.01)
        assert subscribed.is_set(), "no SUBACK from the broker"
        self.paused = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            if self.paused.is_set():
                time.sleep(0.01)
                continue
            if self.client.loop(0.01) != paho.MQTT_ERR_SUCCESS:
                time.sleep(0.1)
                with contextlib.suppress(OSError):
                    self.client.reconnect()

    def data(self):
        """What the node published, status aside: (suffix, payload dict, dup).
        Commands sent to it (`cmd/<name>`, not `cmd/ack`) are not its own."""
        return [(t[len(self.prefix):], json.loads(p), d) for t, p, _r, d in list(self.got)
                if t != self.prefix + "status" and (not t.startswith(self.prefix + "cmd/")
                                                     or t == self.prefix + "cmd/ack")]

    def first_seen(self):
        return len({p["seq"] for _s, p, _d in self.data()})

    def status(self):
        return [p for t, p, _r, _d in list(self.got) if t == self.prefix + "status"]

    def wait(self, cond, timeout=10.0):
        end = time.monotonic() + timeout
        while not cond() and time.monotonic() < end:
            time.sleep(0.01)
        return cond()

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.client.disconnect()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def retained_status(port, prefix, timeout=15):
    """What a newly arriving subscriber gets, retained, on the node's
    status: (payload, retained) or None. A subscriber that comes before the
    node has published gets the message live (not flagged retained): another
    one then comes, until `timeout` runs out."""
    end = time.monotonic() + timeout
    got = []
    while time.monotonic() < end and not (got and got[0][1]):
        got = []
        c = _client(unique("late"), clean=True)
        c.on_message = lambda _c, _u, m, got=got: got.append((m.payload, m.retain))
        c.connect(HOST, port, keepalive=10)
        c.subscribe(prefix + "status", 1)
        wait = time.monotonic() + 3
        while not got and time.monotonic() < wait:
            c.loop(0.01)
        c.disconnect()
    return got[0] if got else None


def publish(port, topic, payload, retain=False):
    """Publish one message at QoS 1 and wait for its PUBACK."""
    c = _client(unique("pub"), clean=True)
    c.connect(HOST, port, keepalive=10)
    info = c.publish(topic, payload, qos=1, retain=retain)
    end = time.monotonic() + 5
    while not info.is_published() and time.monotonic() < end:
        c.loop(0.01)
    c.disconnect()
    assert info.is_published(), "no PUBACK for %s" % topic
