"""`citynode provision`: boards from a site file and an inventory."""

import argparse
import sys

from host_tools.cli.flags import flags
from host_tools.field import sites
from host_tools.field.provision import DEFAULT_JOBS, DEFAULT_ONLINE_S, EXIT_ERROR, run

_DESCRIPTION = """\
Provision nodes from a site file and an inventory through mpremote: build and
check each node's config.json, compile the firmware with mpy-cross for the
MicroPython each board runs, upload only the files that changed, write the
config atomically and soft-reset the board so the node starts. A CircuitPython
board is written through its CIRCUITPY drive: the firmware as .py sources,
the secrets in settings.toml, the changed files as one update that a pulled
cable cannot leave half done; then press its RESET button."""


_EPILOG = """\
examples:
  citynode provision --site sites/example/site.toml --inventory sites/example/inventory.csv --dry-run
  citynode provision --site site.toml --inventory inventory.csv --wait-online
  citynode provision --site site.toml --inventory inventory.csv --only pk-01 --port pk-01=/dev/ttyUSB0
  citynode provision --site site.toml --inventory inventory.csv --resume
  citynode provision --site site.toml --inventory inventory.csv --port st-02=/media/tech/CIRCUITPY

The site file (TOML) holds the site name, the broker, Wi-Fi, node options and
sensor defaults per kind; the inventory (CSV) one row per node: node, board,
port, bays ("bay-1:ultrasonic bay-2:magnetic") or mount_mm, location. A
CircuitPython board's port is its mounted drive: its folder, CIRCUITPY or
label:NAME (the one drive mounted with that volume label).
Secrets (broker and Wi-Fi passwords) are never in the site file nor printed:
write password = "env:NAME", or keep them in SITE.secrets.toml, which git
ignores. A second run uploads nothing when nothing changed. The result of
every node goes to INVENTORY.provision.json; --resume redoes the ones that
did not succeed. Exit status: 0 all provisioned, 1 some boards failed, 2 the
site file, the inventory or an option is wrong. See docs/provisioning.md."""


def _port_pair(text):
    node, sep, port = text.partition("=")
    if not sep or not node or not port:
        raise argparse.ArgumentTypeError("%r is not NODE=PORT (e.g. pk-01=/dev/ttyUSB0)" % text)
    return node, port


def _jobs(text):
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError("%r is not a number of boards, 1 or more" % text)
    return n


def cmd_provision(args):
    ports = dict(args.port or [])
    try:
        status, _summary = run(args.site, args.inventory, only=args.only or (), ports=ports,
                               resume=args.resume, wait_online=args.wait_online, dry_run=args.dry_run,
                               state_path=args.state, jobs=args.jobs)
    except sites.SiteError as e:
        for line in e.lines:
            print("citynode provision: error: %s" % flags(line), file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("citynode provision: interrupted; --resume redoes the nodes not provisioned", file=sys.stderr)
        return 130
    return status


def add_parser(sub):
    p = sub.add_parser("provision", help="provision boards from a site file and an inventory (mpremote, "
                                         "CIRCUITPY drives)",
                       description=_DESCRIPTION, epilog=_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--site", required=True, metavar="SITE.toml", help="the site file (TOML)")
    p.add_argument("--inventory", required=True, metavar="INV.csv",
                   help="the inventory (CSV), one row per node")
    p.add_argument("--only", nargs="+", metavar="NODE", help="provision only these nodes of the inventory")
    p.add_argument("--port", action="append", type=_port_pair, metavar="NODE=PORT",
                   help="the serial port of NODE, or its CIRCUITPY drive (a folder, CIRCUITPY or "
                        "label:NAME), over the inventory's port column (repeat for more nodes)")
    p.add_argument("--resume", action="store_true",
                   help="redo only the nodes that did not succeed in the last run (from the state file)")
    p.add_argument("--wait-online", nargs="?", type=float, const=DEFAULT_ONLINE_S, metavar="SECONDS",
                   help="after the reset, wait for each node's fresh 'online' on the broker "
                        "(default %.0f s when given without a value)" % DEFAULT_ONLINE_S)
    p.add_argument("--dry-run", action="store_true",
                   help="check the site file and the inventory and show each config (secrets as ***); "
                        "touch no board")
    p.add_argument("--state", metavar="FILE",
                   help="where each node's result is kept (default: INVENTORY.provision.json beside the "
                        "inventory)")
    p.add_argument("--jobs", type=_jobs, default=DEFAULT_JOBS, metavar="N",
                   help="boards provisioned at the same time (default: %(default)s)")
    p.set_defaults(func=cmd_provision)
