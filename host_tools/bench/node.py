"""Node benchmarks: the MQTT side of a node, measured and printed (figures,
not pass/fail; targets in brackets).

- QoS 1 publish rate (messages/s, each acknowledged by a real Mosquitto on
  loopback) of citynode.link.mqtt.MQTTClient on MicroPython (the client compiled
  with mpy-cross) and on CPython, best of a few rounds, a typical water
  reading as payload (host_tools/bench/node_mp.py);
- the smallest MicroPython heap (-X heapsize, bisected) at which the whole
  node (citynode.board.node.Node: core, MQTT client, outbox, publisher, compiled
  with mpy-cross) runs a slice of the flood event into Mosquitto, unpaced,
  and ends with everything acknowledged;
- bytes on the wire per published reading: the average MQTT PUBLISH packet
  (fixed header, topic, packet id, payload) per topic kind, from replays
  of the bundled recordings through citynode.link.publisher.

    python -m host_tools.bench.node

The unix port is a 64-bit build: its objects are up to twice the size of
an ESP32's 32-bit ones, so its heap figures are an upper bound for a board.
"""

import gzip
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from citynode.board import replay as core_replay
from citynode.link.publisher import Publisher
from host_tools import mpy, paths
from host_tools.bench import node_mp as bench_node_mp
from host_tools.mosquitto import HOST, MOSQUITTO, Broker
from host_tools.paths import ROOT

RECORDINGS = ("flood-event", "dry-week", "parking-day")
SITE = "s1"  # topic bytes depend on the names: citynode/s1/<node>/<suffix>
KINDS = ("water", "env", "bay", "event")
RATE_COUNT = 5000
RATE_WINDOW = 32  # MQTTClient's default in-flight table, which the node uses
RATE_ROUNDS = 5
SLICE_H = (16.0, 17.0)  # of the flood event: the water rises past watch, warning, danger
NODE_HEAP_TARGET_KB = 64
RUN_TIMEOUT_S = 120
CONFIRM_RUNS = 3

# The node itself, as main.py would run it minus safe mode and linger:
# exits 0 once the recording is done and every message acknowledged.
NODE_SCRIPT = """\
import json, sys
from citynode.board.node import Node, load_config
n = Node(load_config(sys.argv[1]))
done = n.run()
n.client.disconnect()
print("DONE " + json.dumps(done))
sys.exit(0 if done["settled"] and done["lost"] == 0 and done["published"] == done["seq"] else 1)
"""


def mp_env(lib):
    """MICROPYPATH with the compiled package first, the repo, and the frozen
    modules (ssl, asyncio) still visible."""
    return dict(os.environ, MICROPYPATH="%s:%s:.frozen" % (lib, ROOT))


# ---- 1. QoS 1 publish rate


def typical_water_payload():
    """A water reading from the middle of the flood event, as the publisher
    serialises it (with a 4-digit seq)."""
    payloads = []
    with gzip.open(paths.RECORDINGS / "flood-event.jsonl.gz", "rb") as f:
        core_replay.replay("flood-event", lambda t, topic, p: topic == "water" and payloads.append(p),
                           stream=f)
    p = dict(payloads[len(payloads) * 2 // 3])
    p["seq"] = 2345
    return json.dumps(p, separators=(",", ":"))


def publish_rate_mp(port, lib, payload, count=RATE_COUNT, window=RATE_WINDOW, rounds=RATE_ROUNDS,
                    heap="256K"):
    """Best messages/s over `rounds` on MicroPython."""
    script = Path(bench_node_mp.__file__)
    cmd = [mpy.micropython_binary(), "-X", "heapsize=" + heap, str(script), str(port),
           "bench-mp-%d" % os.getpid(), "citynode/%s/bench-mp/water" % SITE, payload,
           str(count), str(window), str(rounds)]
    proc = subprocess.run(cmd, env=mp_env(lib), cwd=ROOT, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        raise RuntimeError("MicroPython publisher failed:\n" + proc.stdout + proc.stderr)
    ms = json.loads(proc.stdout.strip().splitlines()[-1])["ms"]
    return count * 1000 / max(1, min(ms))


def publish_rate_cpython(port, payload, count=RATE_COUNT, window=RATE_WINDOW, rounds=RATE_ROUNDS):
    """Best messages/s over `rounds` on CPython, same code, in this process."""
    ms = bench_node_mp.run(port, "bench-cp-%d" % os.getpid(), "citynode/%s/bench-cp/water" % SITE, payload,
                           count, window, rounds)
    return count * 1000 / max(1, min(ms))


# ---- 2. smallest heap for the whole node


def flood_slice(folder, hours=SLICE_H):
    """The flood event between `hours` (start, end), as plain JSON Lines in
    `folder`; returns (path, header)."""
    lo, hi = int(hours[0] * 3600000), int(hours[1] * 3600000)
    dst = Path(folder) / "flood-slice.jsonl"
    with gzip.open(paths.RECORDINGS / "flood-event.jsonl.gz", "rt") as src, open(dst, "w") as out:
        head = src.readline()
        out.write(head)
        for line in src:
            t = json.loads(line)["t"]
            if t >= hi:
                break
            if t >= lo:
                out.write(line)
    return dst, json.loads(head)


class NodeRun:
    """Runs the whole node on MicroPython at a given heap, each run with a
    fresh outbox folder and config."""

    def __init__(self, folder, lib, port, recording, header):
        self.folder = Path(folder)
        self.lib = lib
        self.port = port
        self.recording = recording
        self.header = header
        self.script = self.folder / "node_main.py"
        self.script.write_text(NODE_SCRIPT)
        self.runs = 0
        self.last = None

    def ok(self, heap_kb):
        self.runs += 1
        run_dir = self.folder / ("run-%d" % self.runs)
        run_dir.mkdir()
        cfg = {"site": SITE, "node": "bench-%d-%d" % (os.getpid(), self.runs),
               "broker": {"host": HOST, "port": self.port},
               "sensors": self.header["sensors"],
               "hal": {"kind": "sim", "recording": str(self.recording), "speed": 0},
               "outbox_dir": str(run_dir / "outbox"), "health_s": 60}
        (run_dir / "config.json").write_text(json.dumps(cfg))
        cmd = [mpy.micropython_binary(), "-X", "heapsize=%dK" % heap_kb, str(self.script),
               str(run_dir / "config.json")]
        try:
            proc = subprocess.run(cmd, env=mp_env(self.lib), cwd=run_dir, capture_output=True, text=True,
                                  timeout=RUN_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            return False
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
        good = proc.returncode == 0 and "DONE " in proc.stdout
        if good:
            self.last = json.loads(proc.stdout.split("DONE ", 1)[1].splitlines()[0])
        return good


def smallest_node_heap_kb(runner, lo=8, hi=512, confirm=CONFIRM_RUNS, step=2):
    """Bisect the smallest heap, in KB, at which `runner.ok(kb)` holds.
    Near the edge a run may pass or fail by where the heap fragments, so
    the figure is then raised by `step` KB until `confirm` more runs in a
    row pass at it."""
    top = hi
    if not runner.ok(hi):
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if runner.ok(mid):
            hi = mid
        else:
            lo = mid
    while hi < top and not all(runner.ok(hi) for _ in range(confirm)):
        hi += step
    return hi


# ---- 3. bytes per published reading


class _RecordingClient:
    """Stands in for MQTTClient: always connected, takes every message."""

    connected = True
    max_pending = 32

    def __init__(self):
        self.sent = []  # (topic bytes, payload bytes)

    def pending(self):
        return 0

    def maintain(self):
        return True

    def publish(self, topic, payload, qos=0, retain=False, dup=False):
        self.sent.append((topic.encode() if isinstance(topic, str) else bytes(topic),
                          payload.encode() if isinstance(payload, str) else bytes(payload)))
        return len(self.sent)


class _NoOutbox:
    """An outbox that never keeps a message: the client always takes it at once."""

    dropped = 0

    def __init__(self):
        self._data = None

    def last(self):
        return None

    def append(self, data):
        self._data = data

    def unsent(self):
        return 0 if self._data is None else 1

    def send(self, fn, budget):
        data, self._data = self._data, None
        return 1 if data is not None and fn(data, False) else 0


def publish_packet_size(topic, payload):
    """Bytes of a QoS 1 PUBLISH: fixed header (1 byte, then 1-4 bytes of
    remaining length), topic length + topic, packet id, payload."""
    remaining = 2 + len(topic) + 2 + len(payload)
    n, length_bytes = remaining, 1
    while n >= 128:
        n >>= 7
        length_bytes += 1
    return 1 + length_bytes + remaining


def kind_of(topic):
    """`water`, `env`, `bay`, `event`, ... from citynode/<site>/<node>/<suffix>."""
    return topic.split(b"/", 3)[-1].split(b"/", 1)[0].decode()


def bytes_per_reading(streams):
    """Replay each `(name, binary stream)` through a Publisher with a
    recording client. Returns {kind: {"count", "payload", "packet"}} with
    average payload and packet bytes, plus "all"."""
    sums = {}
    for name, stream in streams:
        client = _RecordingClient()
        header = {}
        pubs = []

        def publish(t, topic, payload, pubs=pubs):
            pubs[0].publish(t, topic, payload)

        def on_header(h, header=header, pubs=pubs, client=client):
            header.update(h)
            pubs.append(Publisher(client, _NoOutbox(), SITE, h["node"]))

        core_replay.replay(name, publish, on_header=on_header, stream=stream)
        for topic, payload in client.sent:
            for key in (kind_of(topic), "all"):
                s = sums.setdefault(key, [0, 0, 0])
                s[0] += 1
                s[1] += len(payload)
                s[2] += publish_packet_size(topic, payload)
    return {k: {"count": c, "payload": p / c, "packet": b / c} for k, (c, p, b) in sums.items()}


# ---- main


def _print_rates(port, lib):
    payload = typical_water_payload()
    print("\nQoS 1 publish rate to Mosquitto on loopback, messages per second, each acknowledged\n"
          "(%d messages of %d payload bytes, at most %d awaiting PUBACK; best of %d; wall time)"
          % (RATE_COUNT, len(payload), RATE_WINDOW, RATE_ROUNDS))
    print("  MicroPython (client as .mpy, 256K heap): %8.0f" % publish_rate_mp(port, lib, payload))
    print("  CPython:                                 %8.0f" % publish_rate_cpython(port, payload))


def _print_node_heap(port, lib, tmp):
    rec, header = flood_slice(tmp)
    with open(rec) as f:
        samples = sum(1 for line in f if '"s":' in line)
    runner = NodeRun(tmp, lib, port, rec, header)
    print("\nsmallest MicroPython heap for the whole node (core + MQTT + outbox + publisher, as .mpy)\n"
          "running the flood event %02d:00-%02d:00 (%d samples) unpaced into Mosquitto, every message "
          "acknowledged\n[<= %d KB, what an ESP32 has free with Wi-Fi and TLS up]"
          % (SLICE_H[0], SLICE_H[1], samples, NODE_HEAP_TARGET_KB))
    kb = smallest_node_heap_kb(runner)
    if kb is None:
        print("  the node did not complete even at 512 KB")
        return
    d = runner.last or {}
    print("  %d KB [%s]  (%s messages published; %d runs, the figure then passed %d more in a row;\n"
          "  plain TCP here: TLS buffers not included)"
          % (kb, "met" if kb <= NODE_HEAP_TARGET_KB else "NOT met", d.get("published", "?"), runner.runs,
             CONFIRM_RUNS))


def _print_sizes():
    print("\nbytes on the wire per published reading (QoS 1 PUBLISH: fixed header + topic + packet id "
          "+ payload;\ntopics citynode/%s/<node>/..., all bundled recordings replayed)" % SITE)
    sums = {}
    for name in RECORDINGS:
        with gzip.open(paths.RECORDINGS / (name + ".jsonl.gz"), "rb") as f:
            for k, s in bytes_per_reading([(name, f)]).items():
                t = sums.setdefault(k, [0, 0.0, 0.0])
                t[0] += s["count"]
                t[1] += s["payload"] * s["count"]
                t[2] += s["packet"] * s["count"]
    print("  %-8s %9s %14s %14s" % ("topic", "messages", "payload avg", "packet avg"))
    others = sorted(k for k in sums if k not in KINDS and k != "all")
    for k in [k for k in KINDS if k in sums] + others + ["all"]:
        c, p, b = sums[k]
        print("  %-8s %9d %14.1f %14.1f" % ("overall" if k == "all" else k, c, p / c, b / c))


def main():
    print("citynode node bench (figures, not pass/fail; targets in brackets)")
    with tempfile.TemporaryDirectory(prefix="citynode-bench-node-") as tmp:
        if shutil.which("mosquitto") or Path(MOSQUITTO).exists():
            lib = mpy.compile_package(paths.FIRMWARE / "citynode", Path(tmp) / "lib").parent
            with Broker() as broker:
                _print_rates(broker.port, lib)
                _print_node_heap(broker.port, lib, tmp)
        else:
            print("\n(mosquitto not installed: no publish rate, no node heap)")
        _print_sizes()
        print("\n(64-bit unix port: a 32-bit ESP32 holds the same objects in up to half the bytes)")


if __name__ == "__main__":
    main()
