"""A whole node inside MicroPython, against a real broker: a recording drives
the core, whose messages go through the publisher, the outbox and the MQTT
client (tests/test_node_mqtt.py starts the broker and reads this output).

    micropython node_mp_run.py PORT RECORDING OUTBOX_DIR [--site S] [--node N]
        [--pace-ms MS] [--settle-s S] [--linger] [--trace] [--backoff-ms MS]
        [--tear N]

Samples are taken as the simulated hardware layer takes them (a sample is
handed to the core when the core wanted that sensor by then); after each
one the publisher is serviced, then the script sleeps `--pace-ms`. At the
end it services the publisher until the outbox and the client's in-flight
table are empty (at most `--settle-s` seconds) and prints one line,
`DONE {json}`: the publisher's counters, `settled`, and the sample counts.
Then it disconnects and saves the outbox's mark, or with `--linger` keeps
the connection alive until it is killed.

For the power-cut test: `--trace` prints `BOOT {json}` (what the outbox
recovered, the `seq` it resumes from) at the start and `P <seq>` after each
message the core publishes; `--backoff-ms` sets the client's first
reconnection delay (the cap is ten times it); `--tear N` cuts the N-th file
write to the outbox in two: the first half is written, `TEAR` printed, and
the node waits there to be killed, as a power cut in the middle of a write
would leave the flash.
"""

import json
import sys
import time

from citynode.board.hal_sim import SimHal
from citynode.board.recording import Reader
from citynode.config import check_sensors
from citynode.link import outbox
from citynode.link.mqtt import MQTTClient
from citynode.link.outbox import Outbox
from citynode.link.publisher import Publisher
from citynode.sense.core import Core
from citynode.ticks import Clock

HOST = "127.0.0.1"


class Paced:
    """Stands in for the core towards SimHal: feeds it, then runs one
    main-loop turn (service the publisher, sleep)."""

    def __init__(self, core, publisher, pace_ms):
        self.core = core
        self.due_at = core.due_at
        self.publisher = publisher
        self.pace_ms = pace_ms

    def feed(self, sid, t, sample):
        self.core.feed(sid, t, sample)
        self.publisher.service()
        if self.pace_ms:
            time.sleep_ms(self.pace_ms)


class Torn:
    """A file the outbox writes to, whose write number `at` (counted over
    all of them) stops halfway: see `--tear`."""

    count = 0
    at = 0

    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, data):
        Torn.count += 1
        if Torn.count == Torn.at:
            self.f.write(data[:max(1, len(data) // 2)])
            self.f.close()
            print("TEAR")
            while True:
                time.sleep(1)
        return self.f.write(data)

    def read(self, n=-1):
        return self.f.read(n)


def torn_open(path, mode="r"):
    f = open(path, mode)  # noqa: SIM115 - closed by the outbox's own `with`
    return Torn(f) if "w" in mode or "a" in mode else f


def options(argv):
    opts = {"site": "test", "node": None, "pace-ms": 0, "settle-s": 45, "linger": False, "trace": False,
            "backoff-ms": 0, "tear": 0}
    rest = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--linger", "--trace"):
            opts[a[2:]] = True
        elif a.startswith("--") and a[2:] in opts:
            i += 1
            opts[a[2:]] = argv[i]
        else:
            rest.append(a)
        i += 1
    return rest, opts


def main(argv):
    (port, path, folder), opts = options(argv)
    pace_ms = int(opts["pace-ms"])
    reader = Reader(path)
    sensors = reader.header["sensors"]
    check_sensors(sensors)
    site = opts["site"]
    node = opts["node"] or reader.header["node"]
    prefix = "citynode/%s/%s/" % (site, node)
    if int(opts["backoff-ms"]):
        MQTTClient.BACKOFF_BASE_MS = int(opts["backoff-ms"])
        MQTTClient.BACKOFF_CAP_MS = 10 * int(opts["backoff-ms"])
    if int(opts["tear"]):
        Torn.at = int(opts["tear"])
        outbox.open = torn_open
    client = MQTTClient("%s-%s" % (site, node), HOST, int(port), will_topic=prefix + "status",
                        op_timeout_ms=2000)
    box = Outbox(folder, max_bytes=512 * 1024)  # the node's default outbox_kb
    pub = Publisher(client, box, site, node)
    publish = pub.publish
    if opts["trace"]:
        boot = {"recovered_bytes_lost": box.recovered_bytes_lost, "pending": box.pending(), "seq": pub.seq}
        print("BOOT " + json.dumps(boot))

        def publish(t, topic, payload):
            pub.publish(t, topic, payload)
            print("P %d" % pub.seq)

    core = Core(sensors, Clock(reader.header["start"], 0), publish)
    pub.service()  # the first connection attempt
    hal = SimHal(reader)
    hal.run(Paced(core, pub, pace_ms))

    t0 = time.ticks_ms()
    while box.pending() or client.pending() or not client.connected:
        if time.ticks_diff(time.ticks_ms(), t0) > int(opts["settle-s"]) * 1000:
            break
        pub.service()
        time.sleep_ms(5)
    done = pub.counters()
    done["settled"] = box.pending() == 0 and client.pending() == 0
    done["stored"] = pub.stored
    done["outbox_writes"] = box.writes
    done.update(hal.stats())
    print("DONE " + json.dumps(done))
    if opts["linger"]:
        while True:
            pub.service()
            time.sleep_ms(20)
    client.disconnect()
    pub.flush()


main(sys.argv[1:])
