"""Heap figures for the bench; this file runs under MicroPython.

    MICROPYPATH=<compiled lib> micropython heap_probe.py RECORDING

prints one JSON line: bytes of heap held by the core's code, by the
simulated hardware layer's code, the peak of live data while the core
replays RECORDING (after a collection every 50 messages), and the peak
while the same file is merely read (the reader's own share of that).
"""

import gc
import json
import sys


def main(path):
    gc.collect()
    base = gc.mem_alloc()
    from citynode.sense import core  # noqa: F401 - imports every core module

    gc.collect()
    core_code = gc.mem_alloc() - base
    from citynode.board import replay
    gc.collect()
    sim_code = gc.mem_alloc() - base - core_code
    floor = base + core_code + sim_code
    peak = [floor]
    count = [0]

    def publish(t, topic, payload):
        count[0] += 1
        if count[0] % 50 == 0:
            gc.collect()
            used = gc.mem_alloc()
            if used > peak[0]:
                peak[0] = used

    replay.replay(path, publish)
    replay_peak = peak[0] - floor

    # The same file merely read, with the same collections: what the reader's
    # buffers and records hold at their peak, so the core's share is the rest.
    from citynode.board.recording import Reader

    gc.collect()
    peak[0] = gc.mem_alloc()
    n = 0
    with Reader(path) as reader:
        for _ in reader:
            n += 1
            if n % 50 == 0:
                gc.collect()
                used = gc.mem_alloc()
                if used > peak[0]:
                    peak[0] = used
    reader_peak = peak[0] - floor
    print(json.dumps({"core_code": core_code, "sim_code": sim_code, "live_data_peak": replay_peak,
                      "reader_data_peak": reader_peak, "messages": count[0]}))


main(sys.argv[1])
