"""`citynode monitor`: the fleet, live from the MQTT broker."""

import argparse
import getpass
import os
import sys

from host_tools.field import fleet
from host_tools.field.monitor import PASSWORD_ENV, MonitorError, run

_EPILOG = """\
examples:
  citynode monitor --broker mqtt://broker.example:1883
  citynode monitor --broker mqtt://broker.example --site riverside --stale 300
  citynode monitor --broker mqtt://broker.example --once          # what the broker holds, then exit
  citynode monitor --broker mqtt://broker.example --json | jq 'select(.flags.gap)'
  CITYNODE_MQTT_PASSWORD=... citynode monitor --broker mqtt://broker.example --user ops --json
  citynode monitor --broker mqtt://cluster:1883 --share ingest --json > part-1.jsonl

On a terminal: one row per node (status, last seen, bays, water level and
alert, air, health, events, sequence gaps and repeats), nodes silent for
--stale seconds marked STALE. Otherwise one plain line per node that changed.
--json prints one object per message: {"site","node","kind","seq","payload",
"flags"}, flags being retained, gap (messages missing before it), late,
duplicate (a QoS 1 repeat), seq_reset, resumed, bad_payload; and
{"kind":"stale",...} when a node goes quiet. With --share GROUP the readings
are split between the members of GROUP; the retained status and bay topics
reach every member. See docs/monitor.md."""


def add_parser(sub):
    m = sub.add_parser("monitor", help="watch the fleet live from the MQTT broker",
                       description="Watch what the nodes publish to an MQTT broker: status, bays, water, "
                                   "air, health and message sequence gaps, live.",
                       epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    m.add_argument("--broker", metavar="URL", default="mqtt://localhost:1883",
                   help="the broker, mqtt://HOST:PORT (default: %(default)s)")
    m.add_argument("--site", default="+", help="watch only this site (default: every site)")
    m.add_argument("--user", help="user name for the broker; the password is read from $%s, or asked for "
                                  "on the terminal, and never printed" % PASSWORD_ENV)
    m.add_argument("--stale", type=float, default=fleet.DEFAULT_STALE_S, metavar="SECONDS",
                   help="mark a node STALE when nothing has come from it for this long "
                        "(default: %(default)g, three health intervals)")
    m.add_argument("--json", action="store_true",
                   help="one JSON object per message on stdout, and nothing else there")
    m.add_argument("--share", metavar="GROUP",
                   help="take the readings through the shared subscription $share/GROUP/..., splitting them "
                        "with the other members of GROUP")
    stop = m.add_mutually_exclusive_group()
    stop.add_argument("--once", action="store_true",
                      help="show what the broker holds (retained status and bays) and exit")
    stop.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: at Ctrl-C)")
    m.set_defaults(func=cmd_monitor)
    return m


def _password(user, where):
    if user is None:
        return None
    password = os.environ.get(PASSWORD_ENV)
    if password is not None:
        return password
    if not sys.stdin.isatty():
        raise MonitorError("--user %s needs a password: set $%s (there is no terminal to ask on)" % (
            user, PASSWORD_ENV))
    return getpass.getpass("MQTT password for %s at %s: " % (user, where))


def cmd_monitor(args):
    host, port = fleet.parse_broker(args.broker)
    try:
        password = _password(args.user, "%s:%d" % (host, port))
        run(host, port, site=args.site, user=args.user, password=password, stale_s=args.stale,
            json_out=args.json, share=args.share, once=args.once, duration=args.duration)
    except KeyboardInterrupt:  # before the watching began; once it has, Ctrl-C is the normal end
        return 130
    except BrokenPipeError:  # `... --json | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
