"""Smoke test of host_tools/bench/node.py: the bytes-per-reading figure on
the first records of the flood event."""

import gzip
import io

from citynode.link.mqtt import MQTTClient
from host_tools.bench import node as bench_node
from tests.conftest import bundled


def test_bytes_per_reading_on_a_small_slice():
    with gzip.open(bundled("flood-event"), "rb") as f:
        head = b"".join(line for _, line in zip(range(1500), f, strict=False))
    sizes = bench_node.bytes_per_reading([("flood-head", io.BytesIO(head))])
    assert {"water", "env", "all"} <= set(sizes)
    assert sizes["all"]["count"] == sum(s["count"] for k, s in sizes.items() if k != "all") > 0
    for s in sizes.values():
        assert 20 < s["payload"] < 1000
        # topic citynode/s1/street-demo-1/<kind>, 2 length bytes, 2 of packet id, 2..5 of fixed header
        assert s["payload"] + 30 < s["packet"] < s["payload"] + 60
    for topic, payload in ((b"citynode/s1/n/water", b"x" * 50), (b"t", b"y" * 200), (b"t", b"z" * 20000)):
        assert bench_node.publish_packet_size(topic, payload) == len(wire_bytes(topic, payload))


class Wire:
    """Stands in for a connected client's socket: keeps what is sent."""

    def __init__(self):
        self.sent = bytearray()

    def settimeout(self, _seconds):
        pass

    def send(self, data):
        self.sent += data
        return len(data)


def wire_bytes(topic, payload):
    """What the client writes for one QoS 1 PUBLISH."""
    c = MQTTClient("size", "127.0.0.1")
    c._sock = c._tsock = Wire()
    c.connected = True
    c.publish(topic, payload, qos=1)
    return bytes(c._sock.sent)
