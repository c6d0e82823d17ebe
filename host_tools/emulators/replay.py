"""The firmware's replay with the desk's emulated parts behind it, so a
recording of bus-level values (version 2) replays through the real drivers:

    MICROPYPATH=<firmware>:<repo>:<drivers> micropython -m host_tools.emulators.replay REC

Runs under MicroPython (host_tools.desk.replay starts it) and CPython; the
parts are imported only when the recording has them.
"""

import sys

from citynode.board import replay


def parts(bus):
    """The emulated parts for a header's `bus` (citynode.board.hal_sim)."""
    from host_tools.emulators.bench import Bench

    return Bench(bus)


if __name__ == "__main__":
    replay.main(sys.argv[1:], parts)
