"""`citynode flash`: MicroPython or CircuitPython onto a board, through
esptool (a .bin) or the board's UF2 bootloader drive (a .uf2)."""

import argparse

from host_tools.field import boards
from host_tools.field.flash import (
    CONNECT_ATTEMPTS,
    DEFAULT_BAUD,
    FlashError,
    check_image,
    check_uf2,
    describe_port,
    find_uf2_drive,
    make_plan,
    make_uf2_plan,
    pick_port,
    run,
    run_uf2,
    usb_serial_ports,
)

_EPILOG = """\
examples:
  citynode flash --list
  citynode flash --port /dev/ttyUSB0 --board esp32-devkitc ESP32_GENERIC-v1.24.1.bin --erase
  citynode flash --board esp32s3-devkitc-1 ESP32_GENERIC_S3-v1.24.1.bin      # the only USB port
  citynode flash --board esp32c3-devkitm-1 --dry-run firmware.bin
  citynode flash --board adafruit-feather-esp32s3 \\
      adafruit-circuitpython-adafruit_feather_esp32s3_4mbflash_2mbpsram-en_US-9.2.1.bin
  citynode flash --board adafruit-feather-esp32s3 \\
      adafruit-circuitpython-adafruit_feather_esp32s3_4mbflash_2mbpsram-en_US-9.2.1.uf2
  citynode flash --board adafruit-qtpy-esp32s3 --drive /media/$USER/QTPYS3BOOT --dry-run circuitpython.uf2

A .bin is a MicroPython firmware as micropython.org/download offers it, or
a CircuitPython one from circuitpython.org/downloads for a CircuitPython
board (bootloader, partition table and app in one file). It is checked
before the port is opened: an ESP image for the board's chip, whole, and
for the board's runtime. It is written at the chip's image offset
(0x1000 on the ESP32, 0x0 on the S3 and C3, from the board profile),
verified, and the board is reset. The last line gives the node id: the chip
and the MAC's last three bytes. The board must be in download mode: most
development boards enter it by themselves; if yours does not, hold BOOT,
press and release EN/RST, release BOOT, and run the command again.

A .uf2 (CircuitPython boards with a UF2 bootloader) is checked block by
block against Microsoft's UF2 format and the chip's family, then copied
onto the bootloader's drive: put the board in its UF2 bootloader (press
RESET, then again while the RGB LED is purple); the drive is found by the
volume label in the profile (FTHRS3BOOT, QTPYS3BOOT), or give --drive. Its
INFO_UF2.TXT must name the profile's Board-ID. The board then writes the
firmware and reboots into CircuitPython. See docs/flashing.md."""


def _print_steps(steps):
    for n, (_, text) in enumerate(steps, 1):
        print("%d/%d %s" % (n, len(steps), text))


def _flash_uf2(args, board, console):
    if args.port or args.erase:
        raise FlashError("a .uf2 is copied onto the board's UF2 drive, not written through a serial port: "
                         "leave out `port` and `erase`")
    image = check_uf2(args.image, board)
    print(image.describe())
    plan = make_uf2_plan(board, image, args.drive or find_uf2_drive(board))
    if args.dry_run:
        _print_steps(plan.steps)
        return 0
    target = run_uf2(plan, console)
    print("%s written: board %s writes it to flash and reboots into %s (its CIRCUITPY drive appears)" % (
        target, board.name, board.runtime_name))
    return 0


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
    if args.image.lower().endswith(".uf2"):
        return _flash_uf2(args, board, Console(highlight=False))
    if args.drive:
        raise FlashError("`drive` is for a .uf2, which goes onto the board's UF2 drive; a .bin is written "
                         "through the serial port")
    image = check_image(args.image, board)
    print(image.describe())
    port = args.port or pick_port(usb_serial_ports())
    plan = make_plan(board, image, port, erase=args.erase, verify=not args.no_verify, baud=args.baud,
                     connect_attempts=args.connect_attempts)
    if args.dry_run:
        _print_steps(plan.steps)
        return 0
    result = run(plan, Console(highlight=False))
    print("node id: %s (%s, MAC %s)" % (result.node_id, result.chip, result.mac))
    return 0


def add_parser(sub):
    p = sub.add_parser("flash", help="flash MicroPython or CircuitPython onto a board",
                       description="Check a firmware image against a board profile, then flash it. A .bin\n"
                                   "(MicroPython or CircuitPython) goes through esptool: detect the chip,\n"
                                   "optionally erase, write at the chip's offset, verify, read the MAC (the\n"
                                   "default node id) and reset the board. A CircuitPython .uf2 is copied\n"
                                   "onto the board's UF2 bootloader drive.",
                       epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", metavar="IMAGE", nargs="?",
                   help="the firmware: a .bin (MicroPython or CircuitPython) or a CircuitPython .uf2")
    p.add_argument("-b", "--board", help="board profile: a name from `citynode boards`, or a .toml file")
    p.add_argument("-p", "--port", help="serial port, e.g. /dev/ttyUSB0 (default: the only USB serial port)")
    p.add_argument("--drive", metavar="DIR",
                   help="for a .uf2: the folder where the board's UF2 drive is mounted (default: the drive "
                        "with the volume label of the board profile)")
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
                   help="check the image and print the steps without opening the port or writing the drive")
    p.add_argument("--list", action="store_true", help="list the USB serial ports and exit")
    p.set_defaults(func=cmd_flash)
