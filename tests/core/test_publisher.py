"""citynode.link.publisher with a fake MQTT client and a real outbox in /tmp.
Plain test functions in the subset MicroPython shares with CPython, so
tests/mp_runner.py runs them inside MicroPython too."""

import json

from citynode.link.outbox import Outbox, decode, encode
from citynode.link.publisher import Publisher, retained
from citynode.sense.core import Core
from citynode.ticks import Clock
from tests.core.helpers import TempFolder, echo_for_mm

SITE = "s1"
NODE = "n7"
PREFIX = "citynode/s1/n7/"
TS = 1783987200

class FakeClient:
    """Enough of citynode.link.mqtt.MQTTClient for the publisher: a connected
    flag, an in-flight table that fills until `ack()` (which calls
    `on_puback` for each), a record of every publish, and a switch to
    refuse publishes outright."""

    def __init__(self, connected=True, max_pending=32):
        self.connected = connected
        self.max_pending = max_pending
        self.refuse = False
        self.sent = []  # (topic, payload bytes, qos, retain)
        self.dups = []  # the dup flag of each publish
        self.inflight = []  # packet ids
        self.maintained = 0
        self.on_puback = None
        self._pid = 0

    def maintain(self):
        self.maintained += 1
        return self.connected

    def pending(self):
        return len(self.inflight)

    def publish(self, topic, payload, qos=0, retain=False, dup=False):
        if self.refuse or (qos and len(self.inflight) >= self.max_pending):
            raise OSError("%d messages await PUBACK" % len(self.inflight))
        if isinstance(payload, str):
            payload = payload.encode()
        self.sent.append((topic, payload, qos, retain))
        self.dups.append(dup)
        if not qos:
            return None
        self._pid += 1
        self.inflight.append(self._pid)
        return self._pid

    def ack(self, n=None):
        """PUBACK for the oldest `n` in flight (all by default)."""
        n = len(self.inflight) if n is None else n
        for pid in self.inflight[:n]:
            self.on_puback(pid)
        self.inflight = self.inflight[n:]

    def seqs(self):
        return [json.loads(p)["seq"] for _t, p, _q, _r in self.sent]


def _water(level):
    return {"sensor": "street", "level_mm": level, "rate_mm_min": 0, "alert": "normal",
            "state": "clear", "ts": TS}


def _with(fn, connected=True, max_pending=32, budget=8, **box_args):
    """Run `fn(publisher, client, outbox)` on a fresh outbox folder, removed afterwards."""
    with TempFolder("publisher") as d:
        box = Outbox(d, **box_args)
        client = FakeClient(connected, max_pending)
        fn(Publisher(client, box, SITE, NODE, budget), client, box)


def test_topics_json_and_seq_from_1():
    def run(pub, client, box):
        pub.publish(0, "water", _water(12))
        pub.publish(0, "env", {"temp_c": 18.5, "humidity_pct": 62.5, "pressure_pa": 101210,
                               "sound_mm_s": 342992, "ts": TS})
        pub.publish(10, "event", {"kind": "alert", "sensor": "street", "alert": "watch", "was": "normal",
                                  "level_mm": 50, "rate_mm_min": 3, "ts": TS + 1})
        assert [t for t, _p, _q, _r in client.sent] == [PREFIX + "water", PREFIX + "env", PREFIX + "event"]
        assert [q for _t, _p, q, _r in client.sent] == [1, 1, 1]
        assert client.seqs() == [1, 2, 3]
        body = client.sent[0][1]
        assert b" " not in body  # compact separators
        want = _water(12)
        want["seq"] = 1
        assert json.loads(body) == want
        env = json.loads(client.sent[1][1])
        assert env["temp_c"] == 18.5 and env["ts"] == TS and env["seq"] == 2
        assert pub.published == 3 and pub.stored == 3
        assert box.pending() == 3 and box.unsent() == 0  # on flash until acknowledged
        client.ack()
        pub.service()
        assert box.pending() == 0
        assert pub.seq == 3

    _with(run)


def test_retained_flags():
    assert retained("status") and retained("bay/bay-01")
    for suffix in ("event", "water", "env", "health", "bays", "status/x"):
        assert not retained(suffix), suffix

    def run(pub, client, box):
        for topic in ("bay/bay-01", "status", "event", "water", "env", "health"):
            pub.publish(0, topic, {"ts": TS})
        flags = [(t[len(PREFIX):], r) for t, _p, _q, r in client.sent]
        assert flags == [("bay/bay-01", True), ("status", True), ("event", False), ("water", False),
                         ("env", False), ("health", False)]

    _with(run)


def test_disconnected_goes_to_the_outbox_then_out_in_order_before_new_ones():
    def run(pub, client, box):
        pub.publish(0, "bay/b1", {"state": "occupied", "ts": TS})
        for i in range(4):
            pub.publish(0, "water", _water(i))
        assert client.sent == [] and box.pending() == 5 and pub.stored == 5
        topic, body = decode(box.last())
        assert topic == PREFIX + "water" and json.loads(body)["seq"] == 5

        pub.service()  # still down: nothing is sent, nothing leaves the outbox
        assert client.sent == [] and box.pending() == 5

        client.connected = True  # back, but the backlog has not gone yet
        assert pub.service() == 5
        pub.publish(0, "water", _water(5))
        pub.publish(0, "event", {"kind": "fault", "sensor": "street", "fault": "no_echo", "active": True,
                                 "ts": TS})
        assert client.seqs() == [1, 2, 3, 4, 5, 6, 7]
        assert [r for _t, _p, _q, r in client.sent] == [True] + [False] * 6  # retain kept from the outbox
        assert [q for _t, _p, q, _r in client.sent] == [1] * 7
        assert box.pending() == 7
        client.ack()
        pub.service()
        assert box.pending() == 0 and pub.published == 7

    _with(run, connected=False)


def test_service_sends_at_most_budget_records_per_call():
    def run(pub, client, box):
        for i in range(20):
            pub.publish(0, "water", _water(i))
        client.connected = True
        sizes = []
        while box.unsent():
            before = len(client.sent)
            assert pub.service() == len(client.sent) - before
            sizes.append(len(client.sent) - before)
            client.ack()
        assert sizes == [8, 8, 4]
        assert client.maintained == 3 and box.pending() == 4
        pub.service()
        assert box.pending() == 0
        assert client.seqs() == list(range(1, 21))

    _with(run, connected=False)


def test_a_full_client_queue_sends_to_the_outbox_not_lost():
    def run(pub, client, box):
        for i in range(5):
            pub.publish(0, "water", _water(i))
        assert client.seqs() == [1, 2] and box.unsent() == 3 and box.pending() == 5
        assert pub.service() == 0 and box.unsent() == 3  # still no room: stays stored
        client.ack()
        assert pub.service() == 2 and client.seqs() == [1, 2, 3, 4] and box.pending() == 3
        client.ack(1)
        pub.publish(0, "water", _water(5))  # room, but the backlog comes first
        assert client.seqs() == [1, 2, 3, 4, 5] and box.unsent() == 1
        client.ack()
        pub.service()
        client.ack()
        pub.service()
        assert client.seqs() == [1, 2, 3, 4, 5, 6] and box.pending() == 0
        assert pub.published == 6 and pub.lost == 0

    _with(run, max_pending=2)


def test_a_publish_the_client_refuses_is_stored_and_sent_later():
    def run(pub, client, box):
        client.refuse = True  # raises although its table looks free
        pub.publish(0, "water", _water(1))
        pub.publish(0, "event", {"kind": "fault", "sensor": "street", "fault": "x", "active": True, "ts": TS})
        assert client.sent == [] and box.pending() == 2
        assert pub.service() == 0 and box.pending() == 2
        client.refuse = False
        assert pub.service() == 2
        assert client.seqs() == [1, 2] and pub.lost == 0

    _with(run)


def test_the_core_drives_the_publisher():
    sensors = [{"id": "bay-01", "type": "bay_ultrasonic", "driver": "jsn-sr04t", "empty_mm": 2600},
               {"id": "street", "type": "water", "driver": "jsn-sr04t", "mount_mm": 3500}]

    def run(pub, client, box):
        core = Core(sensors, Clock(TS, 0), pub.publish)
        core.feed("bay-01", 0, {"echo_us": [echo_for_mm(2600)] * 3})
        core.feed("street", 0, {"echo_us": [echo_for_mm(3500)] * 7})
        core.feed("street", 10000, {"echo_us": [echo_for_mm(3500)] * 7})
        topics = [t[len(PREFIX):] for t, _p, _q, _r in client.sent]
        assert topics == ["bay/bay-01", "water"]
        bay = json.loads(client.sent[0][1])
        assert bay == {"state": "free", "ts": TS, "seq": 1}
        water = json.loads(client.sent[1][1])
        assert water["seq"] == 2 and water["ts"] == TS + 10 and water["sensor"] == "street"
        assert [r for _t, _p, _q, r in client.sent] == [True, False]

    _with(run)


def test_after_a_reset_seq_goes_on_from_the_newest_stored_message_without_a_gap():
    with TempFolder("publisher") as d:
        client = FakeClient(max_pending=1000)
        pub = Publisher(client, Outbox(d), SITE, NODE)
        for i in range(17):
            pub.publish(0, "water", _water(i))
        client.ack()
        pub.flush()
        assert pub.seq == 17 and pub.outbox.pending() == 0
        # A reset: numbering goes on from the newest record, kept on flash.
        again = Publisher(FakeClient(), Outbox(d), SITE, NODE)
        assert again.seq == 17
        again.publish(0, "water", _water(0))
        assert again.client.seqs() == [18]
        again.resume(40)  # a larger number kept through deep sleep wins
        again.publish(0, "water", _water(0))
        assert again.client.seqs() == [18, 41]
        again.resume(3)  # a smaller one does not
        assert again.seq == 41


def test_after_a_reset_unacknowledged_messages_go_again_first_with_dup():
    with TempFolder("publisher") as d:
        client = FakeClient(max_pending=4)
        pub = Publisher(client, Outbox(d, window=4), SITE, NODE)
        for i in range(10):
            pub.publish(0, "water", _water(i))
        client.ack(2)  # 1 and 2 acknowledged; 3..6 in flight; 7..10 stored
        pub.service()
        assert client.seqs() == [1, 2, 3, 4, 5, 6]
        # A reset: the client's in-flight table is gone, the outbox is not.
        client = FakeClient(max_pending=100)
        pub = Publisher(client, Outbox(d, window=4), SITE, NODE)
        assert pub.seq == 10
        while pub.service():
            pass
        # 1 and 2 were acknowledged in RAM only: they come again too. What
        # the run before may have sent comes with DUP (up to the window it
        # saved, 8 past the mark), the rest as first attempts.
        assert client.seqs() == list(range(1, 11))
        assert client.dups == [True] * 8 + [False] * 2
        client.ack()
        pub.flush()
        client = FakeClient()
        pub = Publisher(client, Outbox(d, window=4), SITE, NODE)
        assert pub.service() == 0 and client.sent == []  # all acknowledged, and saved


def test_an_unreadable_record_is_skipped_and_counted():
    def run(pub, client, box):
        pub.publish(0, "water", _water(1))
        box.append(b"no zero byte here")  # not an encoded message
        box.append(encode(PREFIX + "bay/b2", b'{"state":"free","ts":1,"seq":3}'))
        client.connected = True
        assert pub.service() == 3
        assert [t[len(PREFIX):] for t, _p, _q, _r in client.sent] == ["water", "bay/b2"]
        assert client.sent[1][3] is True
        client.ack()
        pub.service()
        assert pub.lost == 1 and box.pending() == 0

    _with(run, connected=False)


def test_counters_for_the_health_payload():
    def run(pub, client, box):
        for i in range(30):
            pub.publish(0, "water", _water(i))
        c = pub.counters()
        assert c["seq"] == 30 and c["published"] == 0 and c["lost"] == 0 and c["in_flight"] == 0
        assert c["dropped"] > 0  # a small outbox dropped its oldest segment
        assert c["outbox_depth"] == box.pending() and c["dropped"] + c["outbox_depth"] == 30
        client.connected = True
        pub.service()
        c = pub.counters()
        assert c["published"] == 8 and c["in_flight"] == 8
        assert c["outbox_depth"] == 30 - 8 - c["dropped"] == box.unsent()

    _with(run, connected=False, max_bytes=2048, segment_bytes=1024)


def test_a_flash_failure_is_counted_not_raised():
    class BrokenBox:
        dropped = 0

        def last(self):
            return None

        def append(self, data):
            raise OSError("flash full")

    client = FakeClient(connected=False)
    pub = Publisher(client, BrokenBox(), SITE, NODE)
    pub.publish(0, "water", _water(1))
    assert pub.lost == 1 and pub.seq == 1


class _FailingSaves(Outbox):
    """An outbox whose state file cannot be written while `broken` is set."""

    broken = False

    def _save(self, cover=None):
        if self.broken:
            raise OSError("flash worn out")
        Outbox._save(self, cover)


def test_a_state_file_that_cannot_be_saved_holds_messages_back_not_raised():
    with TempFolder("publisher") as d:
        box = _FailingSaves(d, window=4)
        client = FakeClient()
        pub = Publisher(client, box, SITE, NODE)
        box.broken = True
        for i in range(3):
            pub.publish(0, "water", _water(i))  # stored; handing out needs the window saved first
        assert client.sent == [] and box.unsent() == 3 and pub.lost == 0
        pub.flush()
        box.broken = False
        assert pub.service() == 3 and client.seqs() == [1, 2, 3]
