"""`citynode flash`: MicroPython onto a board through esptool."""

import argparse

from host_tools.field import boards
from host_tools.field.flash import (
    CONNECT_ATTEMPTS,
    DEFAULT_BAUD,
    FlashError,
    check_image,
    describe_port,
    make_plan,
    pick_port,
    run,
    usb_serial_ports,
)

_EPILOG = """\
examples:
  citynode flash --list
  citynode flash --port /dev/ttyUSB0 --board esp32-devkitc ESP32_GENERIC-v1.24.1.bin --erase
  citynode flash --board esp32s3-devkitc-1 ESP32_GENERIC_S3-v1.24.1.bin      # the only USB port
  citynode flash --board esp32c3-devkitm-1 --dry-run firmware.bin

IMAGE is a MicroPython firmware .bin as micropython.org/download offers it
(bootloader, partition table and app in one file). It is checked before the
port is opened: an ESP image for the board's chip, whole. It is written at
the chip's image offset (0x1000 on the ESP32, 0x0 on the S3 and C3, from the
board profile), verified, and the board is reset into MicroPython. The last
line gives the node id: the chip and the MAC's last three bytes.

The board must be in download mode: most development boards enter it by
themselves; if yours does not, hold BOOT, press and release EN/RST, release
BOOT, and run the command again. See docs/flashing.md."""


def cmd_flash(args):
    from rich.console import Console

    if args.list:
        ports = usb_serial_ports()
        for p in ports:
            print(describe_port(p))
        if not ports:
            print("no USB serial ports found")
        return 0
    if not args.board or not args.image:
        raise FlashError("give --board BOARD and IMAGE (or --list); see citynode flash --help")
    board = boards.load(args.board)
    image = check_image(args.image, board)
    print(image.describe())
    port = args.port or pick_port(usb_serial_ports())
    plan = make_plan(board, image, port, erase=args.erase, verify=not args.no_verify, baud=args.baud,
                     connect_attempts=args.connect_attempts)
    if args.dry_run:
        for n, (_, text) in enumerate(plan.steps, 1):
            print("%d/%d %s" % (n, len(plan.steps), text))
        return 0
    result = run(plan, Console(highlight=False))
    print("node id: %s (%s, MAC %s)" % (result.node_id, result.chip, result.mac))
    return 0


def add_parser(sub):
    p = sub.add_parser("flash", help="flash MicroPython onto a board through esptool",
                       description="Check a MicroPython firmware image against a board profile, then write\n"
                                   "it with esptool: detect the chip, optionally erase, write at the chip's\n"
                                   "offset, verify, read the MAC (the default node id) and reset the board.",
                       epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", metavar="IMAGE", nargs="?", help="the MicroPython firmware .bin")
    p.add_argument("-b", "--board", help="board profile: a name from `citynode boards`, or a .toml file")
    p.add_argument("-p", "--port", help="serial port, e.g. /dev/ttyUSB0 (default: the only USB serial port)")
    p.add_argument("--erase", action="store_true",
                   help="erase the whole flash first (its files too); do it when changing MicroPython "
                        "versions or when the board ran other firmware")
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD,
                   help="baud rate for writing (default: %(default)s; try 115200 if writing fails)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the verify step after writing (esptool still checks the written data's MD5)")
    p.add_argument("--connect-attempts", type=int, default=CONNECT_ATTEMPTS, metavar="N",
                   help="tries to reach the bootloader, 0 to keep trying (default: %(default)s)")
    p.add_argument("--dry-run", action="store_true",
                   help="check the image and print the steps without opening the port")
    p.add_argument("--list", action="store_true", help="list the USB serial ports and exit")
    p.set_defaults(func=cmd_flash)
