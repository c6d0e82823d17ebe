"""`citynode boards`: list the board profiles, or show and check one."""

import argparse

from host_tools.field.boards import all_boards, describe, load

_EPILOG = """\
examples:
  citynode boards                     # the bundled profiles
  citynode boards esp32-poe           # one profile in full
  citynode boards adafruit-feather-esp32s3   # a CircuitPython board
  citynode boards my-board.toml       # check a profile of your own

A profile names the runtime (MicroPython, or CircuitPython with its board
id), the chip, the firmware image's flash offset (0x1000 on the ESP32, 0x0
on the S3 and C3), the .mpy architecture, the network, the I2C and UART
buses and the trigger/echo pins ultrasonic sensors take in order: GPIO
numbers under MicroPython, names of the board module under CircuitPython.
The fields are in docs/boards.md."""


def cmd_boards(args):
    if args.board:
        print("\n".join(describe(load(args.board))))
        return 0
    row = "%-25s %-13s %-8s %-7s %-9s %-6s %s"
    print(row % ("BOARD", "RUNTIME", "CHIP", "OFFSET", "NETWORK", "SLEEP", "TITLE"))
    for b in all_boards():
        print(row % (b.name, b.runtime, b.chip, "-" if b.flash_offset is None else "0x%x" % b.flash_offset,
                     b.network, "yes" if b.deep_sleep else "no", b.title))
    return 0


def add_parser(sub):
    p = sub.add_parser("boards", help="list the board profiles, or show and check one",
                       description="List the bundled board profiles (boards/*.toml), or show one in full. "
                                   "A profile given as a path is checked field by field.",
                       epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("board", nargs="?", help="a board name (see the list) or a path to a .toml profile")
    p.set_defaults(func=cmd_boards)
