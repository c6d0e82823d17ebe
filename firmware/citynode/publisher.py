"""The layer between the logic core and the broker: topics, per-node
sequence numbers, JSON payloads, and store-and-forward through the outbox.

    prefix = "citynode/%s/%s/" % (site, node)
    client = MQTTClient(node, broker, will_topic=prefix + "status")
    pub = Publisher(client, Outbox("/outbox"), site, node)
    core = Core(sensors, clock, pub.publish)
    while True:
        ...                      # read what is due, core.feed(...)
        pub.service()            # connect / poll, then send up to `budget` stored messages
        feed_the_watchdog()

Every message goes to `citynode/<site>/<node>/<suffix>` at QoS 1. Its
payload is the core's dict with `seq` added, serialised as compact JSON.
`bay/<id>` and `status` are retained; everything else (`water`, `env`,
`event`, `health`, ...) is not.

Order: a message is handed to the client at once only when the client is
connected, the outbox is empty and the client's in-flight table has room.
Otherwise it is appended to the outbox, and `service()` sends the outbox
oldest first once the client is connected. Nothing new overtakes the
backlog, and the client's in-flight table (resent in order, with DUP, after
a reconnect) only ever holds messages older than the outbox's. So `seq`
rises by one from message to message as a subscriber sees them first;
QoS 1 resends may repeat a `seq` already seen.

`seq` starts at 1 on a new outbox folder. It is kept in RAM and leased in
blocks of `seq_block` numbers from a small file `seq` in the outbox's
folder (one write per block). After a reset the node starts at the end of
the last block leased, so numbers never repeat or go back across resets,
at the price of a gap of up to `seq_block - 1` at each reset. `seq_block=0`
keeps the counter in RAM only: it starts at 1 again after a reset.

What can still be lost (all counted or bounded):
- a message the client has accepted leaves the outbox; until the broker
  acknowledges it, it lives only in the client's in-flight table in RAM, so
  a reset loses up to `client.max_pending` of them;
- the outbox drops its oldest whole segment when full (`dropped`);
- a message neither the client nor the outbox would take (a flash write
  error, a payload too large for a segment) is counted in `lost`.
"""

import json
import os

from citynode.outbox import decode, encode

SEQ_BLOCK = 64


def retained(suffix):
    """Whether the topic suffix is published retained: a bay's state and the
    node's status are; readings and events are not."""
    return suffix == "status" or suffix.startswith("bay/")


def _suffix(topic):
    """`water` from `citynode/<site>/<node>/water`."""
    return topic.split("/", 3)[-1]


class Publisher:
    """Publishes the core's messages through `client` (a `citynode.mqtt`
    client), storing in `outbox` (a `citynode.outbox.Outbox`) what cannot
    go now. `service()` sends at most `budget` stored messages per call.

    Counters: `seq` (the last number given, 0 before the first message),
    `published` (messages handed to the client, directly or from the outbox;
    each once, whatever the client resends), `stored` (messages put in the
    outbox), `lost` (messages neither could take, and unreadable records
    skipped); `counters()` adds the outbox depth and drops.
    """

    def __init__(self, client, outbox, site, node, budget=8, seq_block=SEQ_BLOCK):
        if budget < 1:
            raise ValueError("budget must be at least 1")
        self.client = client
        self.outbox = outbox
        self.prefix = "citynode/%s/%s/" % (site, node)
        self.budget = budget
        self.published = 0
        self.stored = 0
        self.lost = 0
        self._block = seq_block
        folder = getattr(outbox, "folder", None)
        self._seq_path = folder + "/seq" if folder and seq_block > 0 else None
        self._leased = self._load_seq()  # numbers from here on were never given
        self.seq = self._leased - 1

    def resume(self, seq):
        """Carry on numbering after `seq` (kept through deep sleep), when
        that is inside the block leased at boot: no gap after a sleep."""
        if 0 < seq < self._leased:
            self.seq = seq

    # ---- the core's side

    def publish(self, t, topic, payload):
        """The core's publish callback: `topic` is a suffix (`water`,
        `bay/<id>`, ...), `payload` a dict that gets `seq` added in place.
        `t` (the reading's tick) is not sent. Never raises for a broker or
        flash failure."""
        self.seq = n = self._next_seq()
        payload["seq"] = n
        full = self.prefix + topic
        body = json.dumps(payload, separators=(",", ":"))
        if self.client.connected and not self.outbox.pending() and self._send(full, body, retained(topic)):
            return
        try:
            self.outbox.append(encode(full, body))
            self.stored += 1
        except (OSError, ValueError):
            self.lost += 1

    # ---- the main loop's side

    def service(self):
        """Call every main-loop turn: keeps the connection (`maintain()`),
        then, if connected, sends up to `budget` stored messages, oldest
        first. A record leaves the outbox only once the client has accepted
        it (it then stays in the client's in-flight table until PUBACK).
        Returns the number sent from the outbox."""
        self.client.maintain()
        if self.client.connected and self.outbox.pending():
            return self.outbox.drain(self._forward, self.budget)
        return 0

    def counters(self):
        """The figures for the node's health payload."""
        return {"seq": self.seq, "published": self.published, "outbox_depth": self.outbox.pending(),
                "in_flight": self.client.pending(), "dropped": self.outbox.dropped, "lost": self.lost}

    # ---- internals

    def _send(self, topic, body, retain):
        """Hand one message to the client at QoS 1; True once it has taken it."""
        c = self.client
        if not c.connected or c.pending() >= c.max_pending:
            return False
        try:
            pid = c.publish(topic, body, 1, retain)
        except OSError:  # the client's MQTTError: its in-flight table is full
            return False
        if pid is None:
            return False
        self.published += 1
        return True

    def _forward(self, data):
        try:
            topic, body = decode(data)
        except ValueError:  # cannot be sent, ever: skip it rather than block the backlog
            self.lost += 1
            return True
        return self._send(topic, body, retained(_suffix(topic)))

    def _next_seq(self):
        n = self.seq + 1
        if self._seq_path is not None and n >= self._leased:
            self._leased = n + self._block
            try:  # noqa: SIM105 - MicroPython has no contextlib
                self._save_seq(self._leased)
            except OSError:
                pass  # tried again at the next block; the numbers in RAM stay right
        return n

    def _load_seq(self):
        """The first number never given: the larger of `seq` and a `seq.tmp`
        a reset left behind, or 1."""
        best = 1
        if self._seq_path is None:
            return best
        for path in (self._seq_path, self._seq_path + ".tmp"):
            try:
                with open(path) as f:
                    v = int(f.read())
            except (OSError, ValueError):
                continue
            if v > best:
                best = v
        return best

    def _save_seq(self, value):
        path = self._seq_path
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % value)
        try:
            os.rename(tmp, path)
        except OSError:  # FAT will not rename over a file
            try:  # noqa: SIM105 - MicroPython has no contextlib
                os.remove(path)
            except OSError:
                pass
            os.rename(tmp, path)
