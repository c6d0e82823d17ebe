"""The layer between the logic core and the broker: topics, per-node
sequence numbers, JSON payloads, and store-and-forward through the outbox.

    prefix = topic_prefix(site, node)
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

Every message is appended to the outbox first, the moment the core hands it
over, and stays there until the broker acknowledges it (PUBACK): the
outbox's acknowledged-up-to mark passes a record only then. Records are
handed to the client oldest first, as its in-flight table has room, so
nothing overtakes anything: `seq` rises by one from message to message as
a subscriber first sees them. After a reset the outbox hands out again,
in order, what was not acknowledged; what the run before may have sent
goes with DUP. QoS 1 resends may repeat a `seq` already seen.

`seq` starts at 1 on a new outbox folder. After a reset it carries on
from the `seq` of the newest record in the outbox (kept on flash even
once acknowledged), so numbers neither repeat nor skip across resets.

What can still be lost:
- the outbox drops its oldest whole segment when full (counted in
  `dropped`);
- a message the outbox would not take (a flash write error, a payload too
  large for a segment) is counted in `lost`;
- a message whose append a reset cuts short was never accepted: its
  number goes to the next message after the reset.
"""

import json

from citynode import topic_prefix
from citynode.link.outbox import decode, encode


def retained(suffix):
    """Whether the topic suffix is published retained: a bay's state and the
    node's status are; readings and events are not."""
    return suffix == "status" or suffix.startswith("bay/")


def _suffix(topic):
    """`water` from `citynode/<site>/<node>/water`."""
    return topic.split("/", 3)[-1]


class Publisher:
    """Publishes the core's messages through `client` (a `citynode.link.mqtt`
    client), keeping each in `outbox` (a `citynode.link.outbox.Outbox`) until
    the broker has acknowledged it. `publish()` and `service()` hand at
    most `budget` stored messages to the client per call.

    Counters: `seq` (the last number given, 0 before the first message),
    `published` (messages handed to the client; a message handed out again
    after a reset counts again, the client's own resends do not), `stored`
    (messages put in the outbox), `lost` (messages the outbox would not take,
    and unreadable records skipped); `counters()` adds the outbox depth and
    drops.
    """

    def __init__(self, client, outbox, site, node, budget=8):
        if budget < 1:
            raise ValueError("budget must be at least 1")
        self.client = client
        self.outbox = outbox
        self.prefix = topic_prefix(site, node)
        self.budget = budget
        self.published = 0
        self.stored = 0
        self.lost = 0
        self._taken = []  # [packet id or None, acknowledged] per record handed out, oldest first
        client.on_puback = self._puback
        self.seq = self._last_seq()

    def resume(self, seq):
        """Carry on numbering after `seq` (kept through deep sleep) if that
        is above what the outbox gave."""
        if seq > self.seq:
            self.seq = seq

    # ---- the core's side

    def publish(self, t, topic, payload):
        """The core's publish callback: `topic` is a suffix (`water`,
        `bay/<id>`, ...), `payload` a dict that gets `seq` added in place.
        `t` (the reading's tick) is not sent. The message goes to the outbox,
        then to the client if it is connected and nothing older waits.
        Never raises for a broker or flash failure."""
        self.seq += 1
        payload["seq"] = self.seq
        try:
            self.outbox.append(encode(self.prefix + topic, json.dumps(payload, separators=(",", ":"))))
        except (OSError, ValueError):
            self.lost += 1
            return
        self.stored += 1
        self._pump()

    # ---- the main loop's side

    def service(self):
        """Call every main-loop turn: keeps the connection (`maintain()`),
        moves the outbox's mark past what the broker has acknowledged, then,
        if connected, hands up to `budget` stored messages to the client,
        oldest first. Returns the number handed over."""
        self.client.maintain()
        return self._pump()

    def flush(self):
        """Save the outbox's mark now (after the last PUBACK, before a deep
        sleep or a reboot), so that nothing acknowledged is sent again.
        A flash failure is not raised: the cost is repeats after the reset."""
        self._pump()
        try:  # noqa: SIM105 - MicroPython has no contextlib
            self.outbox.flush()
        except OSError:
            pass

    def counters(self):
        """The figures for the node's health payload."""
        return {"seq": self.seq, "published": self.published, "outbox_depth": self.outbox.unsent(),
                "in_flight": self.client.pending(), "dropped": self.outbox.dropped, "lost": self.lost}

    # ---- internals

    def _puback(self, pid):
        for entry in self._taken:
            if entry[0] == pid and not entry[1]:
                entry[1] = True
                return

    def _pump(self):
        """Move the outbox's mark past what the broker acknowledged, then hand
        out what fits. A flash failure (saving the state) hands out nothing
        more this turn; it is tried again at the next."""
        taken = self._taken
        try:
            while taken and taken[0][1]:
                taken.pop(0)
                self.outbox.ack()
            if self.client.connected and self.outbox.unsent():
                return self.outbox.send(self._forward, self.budget)
        except OSError:
            pass
        return 0

    def _forward(self, data, dup):
        """Hand one stored message to the client at QoS 1; True once it has taken it."""
        try:
            topic, body = decode(data)
        except ValueError:  # cannot be sent, ever: skip it rather than block the backlog
            self.lost += 1
            self._taken.append([None, True])
            return True
        c = self.client
        if not c.connected or c.pending() >= c.max_pending:
            return False
        try:
            pid = c.publish(topic, body, 1, retained(_suffix(topic)), dup)
        except OSError:  # the client's MQTTError: its in-flight table is full
            return False
        if pid is None:
            return False
        self._taken.append([pid, False])
        self.published += 1
        return True

    def _last_seq(self):
        """The `seq` of the newest record in the outbox, or 0."""
        try:
            data = self.outbox.last()
            if data is None:
                return 0
            seq = json.loads(decode(data)[1])["seq"]
        except (OSError, ValueError, KeyError, TypeError):
            return 0
        return seq if type(seq) is int else 0
