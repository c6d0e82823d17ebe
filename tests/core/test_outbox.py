import os
import random

from citynode.link import outbox
from citynode.link.outbox import Outbox
from tests.core.helpers import TempFolder


def _segments(folder):
    return sorted(n for n in os.listdir(folder) if n.startswith("seg-") and n.endswith(".log"))


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def _msg(i):
    return ("reading-%04d" % i).encode()


def _send_all(box, budget=1 << 30, dups=None):
    """Hand out up to `budget` records (not acknowledged); their data, and
    their dup flags appended to `dups` if given."""
    out = []

    def take(data, dup):
        out.append(data)
        if dups is not None:
            dups.append(dup)
        return True

    box.send(take, budget)
    return out


def _deliver(box, budget=1 << 30):
    """Hand out up to `budget` records, acknowledge them all and save the mark."""
    out = _send_all(box, budget)
    for _ in out:
        assert box.ack()
    box.flush()
    return out


def _take_all(box):
    return _deliver(box)


def test_records_come_back_in_order():
    with TempFolder("outbox") as d:
        box = Outbox(d)
        for i in range(20):
            box.append(_msg(i))
        assert box.pending() == 20 and len(box) == 20
        assert _take_all(box) == [_msg(i) for i in range(20)]
        assert box.pending() == 0 and _send_all(box) == []
        assert not box.ack()


def test_a_record_handed_out_stays_until_it_is_acked():
    with TempFolder("outbox") as d:
        box = Outbox(d)
        assert _send_all(box) == []
        box.append(b"one")
        box.append(b"two")
        assert _send_all(box, 1) == [b"one"]
        assert box.pending() == 2 and box.unsent() == 1
        assert _send_all(box) == [b"two"]  # handed out once, however often asked
        assert _send_all(box) == []
        assert box.ack() and box.pending() == 1 and box.unsent() == 0
        assert box.ack() and box.pending() == 0
        assert not box.ack()


def test_after_a_reset_what_may_have_been_sent_comes_again_first_with_dup():
    with TempFolder("outbox") as d:
        box = Outbox(d, window=4)
        for i in range(10):
            box.append(_msg(i))
        assert _send_all(box, 6) == [_msg(i) for i in range(6)]
        box.ack()
        box.ack()  # 0 and 1 acknowledged, in RAM only
        box = Outbox(d, window=4)  # a reset
        assert box.pending() == 10
        dups = []
        assert _send_all(box, dups=dups) == [_msg(i) for i in range(10)]
        # The saved window reached 8 records past the saved mark (saved at 0 and
        # at 4): those go with DUP, the rest as first attempts.
        assert dups == [True] * 8 + [False] * 2
        for _ in range(3):
            box.ack()
        box.flush()
        box = Outbox(d, window=4)
        dups = []
        assert _send_all(box, dups=dups) == [_msg(i) for i in range(3, 10)]
        assert dups == [True] * 7  # all of the rest had been handed out


def test_the_state_is_saved_once_per_window_of_records():
    with TempFolder("outbox") as d:
        box = Outbox(d, segment_bytes=8192, window=16)
        n = 160
        for i in range(n):
            box.append(_msg(i))
            _send_all(box)  # handed out at once, acknowledged a few at a time
            if i % 4 == 3:
                for _ in range(4):
                    box.ack()
        assert box.pending() == 0
        assert box.writes == n + n // 16  # one append per record, one state save per 16


def test_acks_of_records_dropped_with_a_full_log_move_nothing():
    with TempFolder("outbox") as d:
        box = Outbox(d, max_bytes=270, segment_bytes=90)  # 3 segments of 5 records
        for i in range(15):
            box.append(_msg(i))
        assert _send_all(box, 7) == [_msg(i) for i in range(7)]
        box.append(_msg(15))  # the oldest segment goes, with 5 records handed out
        assert box.dropped == 0  # handed out: the client still has them
        assert box.pending() == 2 + 8 + 1
        for _ in range(5):
            assert box.ack()  # the dropped ones
        assert box.pending() == 11
        box.ack()
        box.ack()
        assert box.pending() == 9
        box.flush()
        assert _take_all(Outbox(d, max_bytes=270, segment_bytes=90)) == [_msg(i) for i in range(7, 16)]


def test_the_newest_record_stays_on_flash_once_acknowledged():
    with TempFolder("outbox") as d:
        box = Outbox(d, segment_bytes=100)
        assert box.last() is None
        for i in range(12):
            box.append(_msg(i))
            assert box.last() == _msg(i)
        _take_all(box)
        assert box.last() == _msg(11) and len(_segments(d)) == 1
        box = Outbox(d, segment_bytes=100)
        assert box.last() == _msg(11) and box.pending() == 0
        box.append(_msg(12))
        assert _take_all(box) == [_msg(12)]


def test_encode_and_decode_an_mqtt_message():
    data = outbox.encode("water", b'{"level_mm": 180}')
    assert data == b'water\0{"level_mm": 180}'
    assert outbox.decode(data) == ("water", b'{"level_mm": 180}')
    assert outbox.decode(outbox.encode(b"bay/12", '{"a": "\0"}')) == ("bay/12", b'{"a": "\0"}')
    rec = outbox.frame(data)
    assert len(rec) == outbox.HEADER_LEN + len(data) and rec.endswith(data)
    bad = False
    try:
        outbox.encode("a\0b", b"")
    except ValueError:
        bad = True
    assert bad


def test_empty_and_oversized_records_are_refused():
    with TempFolder("outbox") as d:
        box = Outbox(d, max_bytes=1024, segment_bytes=256)
        for data in (b"", bytes(251)):
            refused = False
            try:
                box.append(data)
            except ValueError:
                refused = True
            assert refused
        box.append(bytes(250))  # exactly one segment
        assert box.pending() == 1


def test_read_position_survives_a_reopen():
    with TempFolder("outbox") as d:
        box = Outbox(d)
        for i in range(10):
            box.append(_msg(i))
        _deliver(box, 4)
        box = Outbox(d)
        assert box.pending() == 6
        assert _take_all(box) == [_msg(i) for i in range(4, 10)]
        box.append(_msg(10))
        box = Outbox(d)
        assert _take_all(box) == [_msg(10)]


def test_records_rotate_across_segments():
    with TempFolder("outbox") as d:
        box = Outbox(d, max_bytes=4096, segment_bytes=100)
        for i in range(30):  # 18 bytes a record: 5 to a segment
            box.append(_msg(i))
        segs = _segments(d)
        assert len(segs) == 6
        for name in segs:
            assert os.stat(d + "/" + name)[6] <= 100
        assert segs == sorted(segs) and segs[0] < segs[-1]
        box = Outbox(d, max_bytes=4096, segment_bytes=100)
        assert _take_all(box) == [_msg(i) for i in range(30)]


def test_a_full_log_drops_the_oldest_whole_segment_and_counts_it():
    with TempFolder("outbox") as d:
        box = Outbox(d, max_bytes=270, segment_bytes=90)  # 3 segments of 5 records
        for i in range(15):
            box.append(_msg(i))
        assert box.dropped == 0 and box.used() == 270
        box.append(_msg(15))  # a 4th segment: the oldest goes, unread
        assert box.dropped == 5 and box.used() <= 270
        assert box.pending() == 11
        _deliver(box, 1)  # _msg(5) delivered; the other 4 of its segment are dropped next
        for i in range(16, 21):
            box.append(_msg(i))
        assert box.dropped == 9 and box.used() <= 270
        box = Outbox(d, max_bytes=270, segment_bytes=90)
        assert box.dropped == 9
        assert _take_all(box) == [_msg(i) for i in range(10, 21)]
        assert Outbox(d, max_bytes=270, segment_bytes=90).dropped == 9


def test_send_hands_out_at_most_its_budget():
    with TempFolder("outbox") as d:
        box = Outbox(d)
        for i in range(10):
            box.append(_msg(i))
        sent = []

        def send(data, dup):
            sent.append(data)
            return True

        assert box.send(send, 4) == 4
        assert sent == [_msg(i) for i in range(4)] and box.unsent() == 6 and box.pending() == 10
        assert box.send(send, 100) == 6
        assert sent == [_msg(i) for i in range(10)] and box.unsent() == 0
        assert box.send(send, 5) == 0


def test_send_stops_at_the_first_refusal_and_keeps_the_order():
    with TempFolder("outbox") as d:
        box = Outbox(d, segment_bytes=100)
        for i in range(12):
            box.append(_msg(i))
        tries = []

        def send(data, dup):
            tries.append(data)
            return len(tries) != 3  # the client refuses the third message

        assert box.send(send, 10) == 2
        assert tries == [_msg(0), _msg(1), _msg(2)]
        assert _send_all(box, 1) == [_msg(2)]
        box.ack()
        box.ack()
        box.flush()
        box = Outbox(d, segment_bytes=100)
        assert _send_all(box) == [_msg(i) for i in range(2, 12)]


def _snapshot(folder):
    return [(name, _read(folder + "/" + name)) for name in os.listdir(folder)]


def _restore(folder, files):
    for name in os.listdir(folder):
        os.remove(folder + "/" + name)
    for name, data in files:
        _write(folder + "/" + name, data)


def test_a_power_cut_at_any_byte_of_the_last_record_loses_only_that_record():
    with TempFolder("outbox") as d:
        box = Outbox(d, segment_bytes=100)
        for i in range(13):  # 3 segments of 5, 5 and 3 records
            box.append(_msg(i))
        _deliver(box, 1)
        last = d + "/" + _segments(d)[-1]
        whole = _read(last)
        rec = outbox.HEADER_LEN + len(_msg(12))
        start = len(whole) - rec
        assert start == 2 * rec
        files = _snapshot(d)
        for cut in range(start, len(whole)):  # the reset came after `cut - start` bytes of the record
            _restore(d, files)
            _write(last, whole[:cut])
            box = Outbox(d, segment_bytes=100)
            assert box.recovered_bytes_lost == cut - start
            assert os.stat(last)[6] == start
            assert box.pending() == 11
            if cut == start + 3:  # and the log goes on after the cut
                box.append(b"after")
                box = Outbox(d, segment_bytes=100)
                assert box.recovered_bytes_lost == 0
                assert _take_all(box) == [_msg(i) for i in range(1, 12)] + [b"after"]
            else:
                assert _take_all(box) == [_msg(i) for i in range(1, 12)]


def test_a_corrupted_record_keeps_the_records_before_it():
    with TempFolder("outbox") as d:
        box = Outbox(d, segment_bytes=100)
        for i in range(10):  # 2 segments of 5
            box.append(_msg(i))
        first = d + "/" + _segments(d)[0]
        data = bytearray(_read(first))
        rec = outbox.HEADER_LEN + len(_msg(0))
        data[2 * rec + outbox.HEADER_LEN + 3] ^= 0x40  # a payload byte of the third record
        _write(first, bytes(data))
        box = Outbox(d, segment_bytes=100)
        assert box.recovered_bytes_lost == 3 * rec  # the bad record and the two after it
        assert _take_all(box) == [_msg(0), _msg(1)] + [_msg(i) for i in range(5, 10)]


def test_a_corrupted_length_or_a_zeroed_tail_is_not_read_as_records():
    with TempFolder("outbox") as d:
        box = Outbox(d, segment_bytes=200)
        for i in range(4):
            box.append(_msg(i))
        seg = d + "/" + _segments(d)[0]
        data = bytearray(_read(seg))
        rec = outbox.HEADER_LEN + len(_msg(0))
        data[3 * rec] = 200  # the last record claims more bytes than the file holds
        _write(seg, bytes(data) + bytes(24))  # and flash left zeros behind it
        box = Outbox(d, segment_bytes=200)
        assert _take_all(box) == [_msg(0), _msg(1), _msg(2)]


def test_appends_move_on_over_new_segment_files_and_delivered_ones_go():
    with TempFolder("outbox") as d:
        box = Outbox(d, max_bytes=1000, segment_bytes=100)
        seen = {}
        for turn in range(40):
            for i in range(7):
                box.append(_msg(turn * 7 + i))
            for name in _segments(d):
                seen[name] = True
            assert _take_all(box) == [_msg(turn * 7 + i) for i in range(7)]
            assert len(_segments(d)) == 1  # all delivered: only the newest segment is left
        assert len(seen) == 40 * 7 // 5  # 5 records to a file, each file filled once, never rewritten
        box = Outbox(d, max_bytes=1000, segment_bytes=100)
        box.append(_msg(999))  # the newest file is full: a new one
        assert _segments(d)[-1] not in seen  # the numbers go on after a reopen


def test_a_state_rename_cut_short_is_recovered_from_the_temporary_copy():
    with TempFolder("outbox") as d:
        box = Outbox(d, max_bytes=270, segment_bytes=90)
        for i in range(16):
            box.append(_msg(i))
        _deliver(box, 1)
        assert box.dropped == 5
        os.rename(d + "/state", d + "/state.tmp")  # removed, not yet renamed, as on FAT
        box = Outbox(d, max_bytes=270, segment_bytes=90)
        assert box.dropped == 5
        assert _take_all(box) == [_msg(i) for i in range(6, 16)]


def test_a_segment_copy_cut_short_is_finished_or_forgotten():
    with TempFolder("outbox") as d:
        box = Outbox(d, segment_bytes=100)
        for i in range(7):
            box.append(_msg(i))
        first, second = _segments(d)
        os.rename(d + "/" + second, d + "/" + second[:-4] + ".tmp")  # the copy made, the old file gone
        _write(d + "/" + first[:-4] + ".tmp", b"half a co")  # a copy begun, the old file still there
        box = Outbox(d, segment_bytes=100)
        assert _take_all(box) == [_msg(i) for i in range(7)]
        assert [n for n in os.listdir(d) if n.endswith(".tmp")] == []


def test_a_nested_folder_is_made():
    with TempFolder("outbox") as d:
        box = Outbox(d + "/a/b/")
        box.append(b"x")
        assert _send_all(Outbox(d + "/a/b")) == [b"x"]


def test_a_record_spoilt_after_opening_gives_up_the_rest_of_its_segment():
    with TempFolder("outbox") as d:
        box = Outbox(d, segment_bytes=100)
        for i in range(7):  # 2 segments: 5 and 2 records
            box.append(_msg(i))
        first = d + "/" + _segments(d)[0]
        data = bytearray(_read(first))
        rec = outbox.HEADER_LEN + len(_msg(0))
        data[rec + outbox.HEADER_LEN] ^= 0x01  # the second record, after the log was checked
        _write(first, bytes(data))
        assert _take_all(box) == [_msg(0), _msg(5), _msg(6)]
        assert box.recovered_bytes_lost == 4 * rec and box.pending() == 0


class _Taker:
    """A send callback that takes up to `room` records, keeping (data, dup)."""

    def __init__(self, room):
        self.room = room
        self.got = []

    def __call__(self, data, dup):
        if len(self.got) >= self.room:
            return False
        self.got.append((data, dup))
        return True


def test_random_resets_lose_nothing_and_flag_every_resend():
    """A seeded random walk: appends, records handed out and acknowledged a
    few at a time, resets (the log reopened, all RAM lost), some in the
    middle of an append (half a record on flash), some after a flush. Each
    run hands out records consecutively, starting no later than the first
    one the run before left unacknowledged and at most window + in flight
    earlier; a record handed out in an earlier run comes with dup True (and
    at most `window` records per run that were not come with it too); at
    the end every record appended has been acknowledged."""
    random.seed(4242)
    with TempFolder("outbox") as d:
        window, in_flight = 4, 6
        box = Outbox(d, segment_bytes=120, window=window)
        steps = 1500
        appended = []  # ids whose append returned
        first_run = bytearray(steps)  # id -> 1 + the run that first handed it out, 0 if none has
        acked = bytearray(steps)  # id -> 1 once acknowledged
        resent = 0
        run = resets = 0
        taken = []  # this run's ids handed out, not acknowledged
        last_given = None  # the last id handed out in this run
        first_unacked = 0  # the first id the run before left unacknowledged (0: none yet)
        early_dups = 0  # this run's records flagged dup that no run had handed out
        next_id = 0
        for _ in range(steps):
            op = random.getrandbits(5)
            if op < 12:
                box.append(_msg(next_id))
                appended.append(next_id)
                next_id += 1
            elif op < 22:
                take = _Taker(in_flight - len(taken))
                box.send(take, 3)
                for data, dup in take.got:
                    i = int(data[8:])
                    if last_given is None:
                        assert first_unacked - window - in_flight <= i <= first_unacked, (i, first_unacked)
                    else:
                        assert i == appended[appended.index(last_given) + 1]  # no skip, no going back
                    if first_run[i] and first_run[i] <= run:
                        assert dup, i
                        resent += 1
                    elif dup:
                        early_dups += 1
                        assert early_dups <= window
                    if not first_run[i]:
                        first_run[i] = run + 1
                    taken.append(i)
                    last_given = i
            elif op < 29:
                for _ in range(min(len(taken), 1 + random.getrandbits(2))):
                    assert box.ack()
                    acked[taken.pop(0)] = 1
            elif op == 29:
                box.flush()
            else:
                if op == 31 and appended:  # a reset in the middle of an append
                    with open(d + "/" + _segments(d)[-1], "ab") as f:
                        f.write(outbox.frame(_msg(next_id))[:1 + random.getrandbits(3)])
                    next_id += 1
                first_unacked = next_id
                for i in appended:
                    if not acked[i]:
                        first_unacked = i
                        break
                box = Outbox(d, segment_bytes=120, window=window)
                run += 1
                resets += 1
                taken = []
                last_given = None
                early_dups = 0
        assert resets > 30 and resent > 100 and sum(1 for r in first_run if r) > 400
        box = Outbox(d, segment_bytes=120, window=window)
        for data in _take_all(box):
            acked[int(data[8:])] = 1
        assert [i for i in range(next_id) if acked[i]] == appended and box.dropped == 0
