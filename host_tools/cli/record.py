"""`citynode record`: a bench board's raw readings, with typed ground truth."""

import argparse
import sys

from host_tools.cli.flags import flags
from host_tools.field.record import BOARD_TIMEOUT_S, RecordError, complete, format_summary, record

_EPILOG = """\
examples:
  citynode record --port /dev/ttyUSB0 -o bench.jsonl
  citynode record --port /dev/ttyUSB0 -o storm.jsonl --duration 3600 --note "ruler at the kerb"
  citynode record --port /dev/pts/5 -o copy.jsonl < notes.txt    # a virtual board; notes from a file

The board needs the citynode firmware and a /config.json (the node's own).
record interrupts what it runs, soft-resets it and starts its record mode:
every sensor at the fastest interval the node uses for it, raw values as
the drivers give them. Each sample is written as it comes, so a Ctrl-C or
a kill keeps a valid recording of everything so far (a power cut: all but
the last second at most).

Ground truth, typed while it records (keys on a terminal, Enter takes a
note; or one note per line on stdin from a pipe or a file):
  o BAY       the bay is occupied (BAY: its id, or its number in the table)
  f BAY       the bay is free
  w [SENSOR] MM   the water under SENSOR is MM deep (measured with a ruler)
Words after a note are kept as its text. Each note is stamped with the
board's own tick. Check the result with: citynode replay FILE.jsonl

Exit status: 0 recorded; 1 recorded, but lines or notes were not taken
(they are named, and kept in FILE.jsonl.rejected); 2 an error (one line)."""


def add_parser(sub):
    r = sub.add_parser("record", help="capture a bench board's raw readings, with typed ground truth",
                       description="Capture raw sensor readings from a board running the citynode "
                                   "firmware into a recording, with ground truth typed while it runs.",
                       epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("--port", "-p", required=True,
                   help="the board's serial port (/dev/ttyUSB0, /dev/ttyACM0; a virtual board's /dev/pts/N)")
    r.add_argument("-o", "--output", required=True, metavar="FILE.jsonl", help="the recording to write")
    r.add_argument("--duration", type=float, metavar="S",
                   help="stop after S seconds of recording (the board's time; default: until Ctrl-C or "
                        "the end of the board's recording)")
    r.add_argument("--note", metavar="TEXT", help="free text for the recording's header (its notes)")
    r.add_argument("--board", metavar="NAME",
                   help="the board's name in the header, e.g. esp32-devkitc (default: 'virtual' for a "
                        "simulated board, else what the board reports)")
    r.add_argument("--force", action="store_true", help="overwrite FILE.jsonl if it exists")
    r.add_argument("--no-notes", action="store_true", help="do not read ground-truth notes from stdin")
    r.add_argument("--timeout", type=float, default=BOARD_TIMEOUT_S, metavar="S",
                   help="how long to wait for the board to answer and start (default: %(default)s s)")
    r.set_defaults(func=cmd_record)




def cmd_record(args):
    try:
        s = record(args.port, args.output, duration_s=args.duration, note=args.note, board=args.board,
                   force=args.force, notes_in=None if args.no_notes else sys.stdin, timeout=args.timeout)
    except RecordError as e:
        for line in format_summary(e.summary) if hasattr(e, "summary") else []:
            print(line)
        print("citynode record: error: %s" % flags(e), file=sys.stderr)
        return 2
    for line in format_summary(s):
        print(line)
    return 0 if complete(s) else 1
