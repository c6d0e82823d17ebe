"""Random bytes fed to the MQTT client's decoding of what the broker sends
(citynode.link.mqtt: `_read` frames a packet, `_handle` acts on it). Whatever
arrives, the client either accepts it or raises MQTTError, the error
docs/mqtt.md documents (`poll()` turns it into a closed connection); no
other exception, no hang.

FUZZ_EXAMPLES sets the number of examples, shared between the two random
tests (2000 by default, which takes a few seconds); `make fuzz` raises it."""

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citynode import ticks
from citynode.link.mqtt import MQTTClient, MQTTError

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "2000"))
FUZZ = settings(max_examples=(EXAMPLES + 1) // 2, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Wire:
    """Stands in for the client's socket: hands out `data` at most `piece`
    bytes per recv_into, then end of stream; takes whatever is sent."""

    def __init__(self, data, piece):
        self.data, self.piece, self.at = data, piece, 0
        self.sent = bytearray()

    def settimeout(self, _seconds):
        pass

    def recv_into(self, buf):
        chunk = self.data[self.at:self.at + min(len(buf), self.piece)]
        self.at += len(chunk)
        buf[:len(chunk)] = chunk
        return len(chunk)

    def send(self, data):
        self.sent += data
        return len(data)


def decode_stream(data, piece, max_packet):
    """Feed `data` to a connected client until it stops accepting. Returns
    (messages delivered, error); the error is always an MQTTError."""
    c = MQTTClient("fuzz", "127.0.0.1", max_packet=max_packet)
    wire = Wire(data, piece)
    c._sock = c._tsock = wire
    c._readinto = wire.recv_into
    c.connected = True
    for i in range(3):  # something in flight, so PUBACKs have work to do
        c.publish("t", b"%d" % i, qos=1)
    acked = []
    c.on_puback = acked.append
    delivered = []
    end = ticks.add(ticks.now_ms(), 60000)
    while True:
        before = wire.at
        try:
            msg = c._handle(c._read(end))
        except MQTTError as e:
            return delivered, e
        assert wire.at > before  # every packet accepted consumed bytes: the loop ends
        if msg is not None:
            topic, payload, retained, dup, pid = msg
            assert isinstance(topic, str) and (payload is None or isinstance(payload, bytes))
            assert isinstance(retained, bool) and isinstance(dup, bool) and 0 <= pid <= 0xFFFF
            delivered.append(msg)
        assert all(1 <= p <= 3 for p in acked) and len(acked) + c.pending() == 3


def remaining_length(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def frame(first, body, shape, skew):
    """A packet framed right (or nearly: `skew` off) with a random type,
    flags and body. `shape` 0-3 puts a topic length before the body, as a
    PUBLISH has (the whole body, a few bytes of it, none, too many); 4 leaves
    it alone. Gets past the framing to what is inside."""
    if shape < 4:
        n = (len(body), body[0] % 16 if body else 1, 0, 0xFFFF)[shape]
        body = bytes((n >> 8, n & 0xFF)) + body
    return bytes((first,)) + remaining_length(max(0, len(body) + skew)) + body


FIRSTS = (0x30, 0x31, 0x32, 0x33, 0x38, 0x3A, 0x34, 0x3F, 0x40, 0x42, 0x90, 0xD0, 0xD1, 0x20, 0xB0, 0x00)
SKEWS = (0, 0, 0, 0, -1, 1, 2, 200)


def framed(blob, shapes):
    """Cut `blob` into packets: type and flags, shape, skew and size of
    each come from successive bits of `shapes` (few draws per example keep
    hypothesis fast)."""
    out = b""
    while blob:
        first, shape, skew = FIRSTS[shapes & 15], (shapes >> 4) % 5, SKEWS[(shapes >> 7) & 7]
        size = 1 + ((shapes >> 10) & 31)
        shapes >>= 15
        out += frame(first, blob[:size], shape, skew)
        blob = blob[size:]
    return out


@FUZZ
@given(data=st.binary(max_size=400), piece=st.integers(1, 64), max_packet=st.sampled_from([16, 4096]))
def test_random_bytes_are_accepted_or_an_mqtt_error(data, piece, max_packet):
    _delivered, error = decode_stream(data, piece, max_packet)
    assert isinstance(error, MQTTError)


@FUZZ
@given(blob=st.binary(max_size=128), shapes=st.integers(0, (1 << 90) - 1), piece=st.integers(1, 64),
       max_packet=st.sampled_from([16, 4096]))
def test_framed_random_packets_are_accepted_or_an_mqtt_error(blob, shapes, piece, max_packet):
    _delivered, error = decode_stream(framed(blob, shapes), piece, max_packet)
    assert isinstance(error, MQTTError)


def test_a_well_formed_stream_is_read_to_its_end():
    """The harness itself: a valid PUBLISH, PUBACK and PINGRESP are all
    taken, and only the end of the stream stops the client."""
    publish = b"\x32" + remaining_length(2 + 3 + 2 + 2) + b"\x00\x03a/b\x00\x07hi"
    delivered, error = decode_stream(publish + b"\x40\x02\x00\x01" + b"\xd0\x00", 5, 4096)
    assert delivered == [("a/b", b"hi", False, False, 7)]
    assert "closed" in str(error)
