"""QoS 1 publish rate of citynode.link.mqtt.MQTTClient; runs under MicroPython
and CPython alike (host_tools/bench/node.py starts it).

    micropython bench_node_mp.py PORT CLIENT_ID TOPIC PAYLOAD COUNT WINDOW ROUNDS

Connects to the broker on 127.0.0.1:PORT, then, ROUNDS times, publishes
COUNT messages at QoS 1, keeping at most WINDOW unacknowledged (polling for
PUBACKs whenever the window is full), and waits until every one is
acknowledged. Prints one JSON line: {"count": COUNT, "ms": [ms per round]}.
Exits 1 if the connection fails or a round takes longer than 60 s.
"""

import json
import sys

from citynode.link.mqtt import MQTTClient
from citynode.ticks import add as ticks_add
from citynode.ticks import diff as ticks_diff
from citynode.ticks import now_ms as ticks_ms

ROUND_LIMIT_MS = 60000


def one_round(client, topic, payload, count, window):
    """Milliseconds to publish `count` messages and have them all acknowledged."""
    t0 = ticks_ms()
    end = ticks_add(t0, ROUND_LIMIT_MS)
    sent = 0
    while sent < count or client.pending():
        if sent < count and client.pending() < window:
            client.publish(topic, payload, 1)
            sent += 1
        else:
            client.poll()
        if not client.connected:
            raise OSError("connection lost: %r" % (client.last_error,))
        if ticks_diff(end, ticks_ms()) <= 0:
            raise OSError("round not done in %d ms" % ROUND_LIMIT_MS)
    return ticks_diff(ticks_ms(), t0)


def run(port, client_id, topic, payload, count, window, rounds):
    """Per-round milliseconds (a list) for `rounds` rounds."""
    client = MQTTClient(client_id, "127.0.0.1", port, keepalive=0, max_pending=window)
    client.connect()
    try:
        topic = topic.encode() if isinstance(topic, str) else topic
        payload = payload.encode() if isinstance(payload, str) else payload
        return [one_round(client, topic, payload, count, window) for _ in range(rounds)]
    finally:
        client.disconnect()


def main(argv):
    port, client_id, topic, payload, count, window, rounds = argv
    try:
        ms = run(int(port), client_id, topic, payload, int(count), int(window), int(rounds))
    except OSError as e:
        print("error: %r" % (e,))
        sys.exit(1)
    print(json.dumps({"count": int(count), "ms": ms}))


if __name__ == "__main__":
    main(sys.argv[1:])
