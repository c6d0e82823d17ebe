"""Replay a recording through the core; the same entry point on both runtimes.

    micropython -m citynode.board.replay REC       (MICROPYPATH=firmware)
    python -m citynode.board.replay REC

prints one JSON line per message the node would publish,
`{"t": ms, "topic": ..., "payload": {...}}`, then a last line
`{"stats": {...}}`. A bad recording prints `error: FILE:LINE: what` on
stderr and exits with status 2. A recording of bus-level values needs the
desk's emulated parts (`parts`, see citynode.board.hal_sim): host_tools.desk.replay
hands them in.
"""

import json
import sys

from citynode import forget
from citynode.board.hal_sim import SimHal
from citynode.board.recording import Reader, RecordingError
from citynode.sense.core import Core
from citynode.ticks import Clock


def replay(path, publish, on_header=None, on_truth=None, stream=None, parts=None):
    """Replay `path`, calling `publish(t, topic, payload)` for every message
    and `on_truth(record)` for every ground-truth record; returns stats.
    `parts`: the emulated parts for bus-level samples (citynode.board.hal_sim)."""
    with Reader(path, stream=stream) as reader:
        if on_header is not None:
            on_header(reader.header)
        from citynode.config import check_sensors

        try:
            check_sensors(reader.header["sensors"])
        except ValueError as e:
            raise RecordingError(path, 1, "header: %s" % e) from None
        del check_sensors
        forget("citynode.config")  # checked: the checks can go, as on the node
        core = Core(reader.header["sensors"], Clock(reader.header["start"], 0), publish)
        try:
            hal = SimHal(reader, on_truth, parts=parts)
        except ValueError as e:
            raise RecordingError(path, 1, "header: bus: %s" % e) from None
        hal.run(core)
        return hal.stats()


def _print_message(t, topic, payload):
    print(json.dumps({"t": t, "topic": topic, "payload": payload}, separators=(",", ":")))


def main(argv, parts=None):
    if len(argv) != 1:
        print("usage: replay RECORDING", file=sys.stderr)
        sys.exit(2)
    try:
        stats = replay(argv[0], _print_message, parts=parts)
    except (RecordingError, ValueError, OSError) as e:
        print("error: %s" % e, file=sys.stderr)
        sys.exit(2)
    print(json.dumps({"stats": stats}, separators=(",", ":")))


if __name__ == "__main__":
    main(sys.argv[1:])
