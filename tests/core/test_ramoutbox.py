"""The outbox in RAM (a node whose filesystem is read-only) behaves as the
flash outbox does while the node runs: the same records handed out in the
same order, the same counts, the oldest dropped and counted when full.
Plain test functions, so tests/mp_runner.py runs them inside MicroPython too."""

import json
import random

from citynode.link.outbox import Outbox, decode
from citynode.link.publisher import Publisher
from citynode.link.ramoutbox import RamOutbox
from tests.core.helpers import TempFolder
from tests.core.test_publisher import NODE, PREFIX, SITE, FakeClient, _water


def _msg(i):
    return ("message-%02d" % i).encode()


def _taker(out, refuse_after=None):
    def take(data, dup):
        assert dup is False
        if refuse_after is not None and len(out) >= refuse_after:
            return False
        out.append(data)
        return True
    return take


def test_random_runs_match_the_flash_outbox():
    """Appends, sends with budgets and refusals, and acks in a random order:
    what each hands out, and its counts, are the flash outbox's."""
    random.seed(7)
    for _run in range(20):
        with TempFolder("ramoutbox") as d:
            flash, ram = Outbox(d, max_bytes=1 << 20), RamOutbox(1 << 20)
            got = {id(flash): [], id(ram): []}
            n = 0
            for _step in range(300):
                op = random.getrandbits(4)
                if op < 8:
                    n += 1
                    for box in (flash, ram):
                        box.append(("reading-%05d" % n).encode())
                elif op < 13:
                    budget, refuse = 1 + random.getrandbits(2), random.getrandbits(2)
                    for box in (flash, ram):
                        out = got[id(box)]
                        box.send(_taker(out, None if refuse == 3 else refuse), budget)
                else:
                    assert flash.ack() == ram.ack()
                assert got[id(flash)] == got[id(ram)]
                got[id(flash)], got[id(ram)] = [], []
                counts = (flash.pending(), flash.unsent(), flash.last())
                assert counts == (ram.pending(), ram.unsent(), ram.last())
                assert len(flash) == len(ram)


def test_full_drops_the_oldest_and_counts_what_was_never_sent():
    box = RamOutbox(40)
    for i in range(4):
        box.append(_msg(i))  # 10 bytes each
    out = []
    box.send(_taker(out), 1)  # message-00 handed out, not acknowledged
    box.append(_msg(4))  # 00 goes (handed out: not counted as dropped)
    box.append(_msg(5))  # 01 goes (never sent: dropped)
    assert box.dropped == 1 and box.used() == 40 and box.pending() == 4
    assert box.ack()  # the ack of message-00 changes nothing left
    assert box.pending() == 4
    box.send(_taker(out), 10)
    assert out == [_msg(i) for i in (0, 2, 3, 4, 5)]
    while box.ack():
        pass
    assert box.pending() == box.used() == 0 and box.last() == _msg(5)
    assert not box.durable and Outbox.durable


def test_a_record_that_cannot_be_held_is_refused():
    for data in (b"", b"x" * 41):
        try:
            RamOutbox(40).append(data)
        except ValueError:
            continue
        raise AssertionError("%d bytes taken" % len(data))


def test_the_publisher_holds_readings_in_ram_while_the_broker_is_away():
    box = RamOutbox(32 * 1024)
    client = FakeClient(False, 32)
    pub = Publisher(client, box, SITE, NODE, 8)
    for i in range(20):
        pub.publish(0, "water", _water(i))
    assert client.sent == [] and box.pending() == 20
    topic, body = decode(box.last())
    assert topic == PREFIX + "water" and json.loads(body)["seq"] == 20
    client.connected = True
    while box.unsent():
        pub.service()
        client.ack()
    pub.service()
    assert client.seqs() == list(range(1, 21)) and box.pending() == 0
    assert pub.counters()["dropped"] == 0 and pub.published == 20
