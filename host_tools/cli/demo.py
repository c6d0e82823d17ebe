"""`citynode demo`: two virtual nodes replaying recordings into a broker."""

import argparse
import sys

from host_tools.cli.flags import flags
from host_tools.desk import replay
from host_tools.desk.demo import DEFAULT_SPEED, DemoError, run_demo
from host_tools.field import fleet

_EPILOG = """\
examples:
  citynode demo                                  # embedded broker, about a minute
  citynode demo --short                          # small slices, about 10 s
  citynode demo --broker mqtt://127.0.0.1:1883   # a broker of your own

Each board is provisioned with mpremote as a field board is; the summary
compares what arrived over MQTT with a replay of the same slices, and the
HTML reports go to OUT. See README.md (The two commands)."""


def _speed(text):
    try:
        v = float(text)
    except ValueError:
        v = -1
    if not v >= 0:
        raise argparse.ArgumentTypeError("%r: the speed must be 0 or more" % text)
    return int(v) if v == int(v) else v


def add_parser(sub):
    d = sub.add_parser("demo", help="two virtual nodes replaying recordings into a broker, live",
                       description="Boot a parking node and a street (flood) node on virtual boards, "
                                   "provision them with mpremote, watch what they publish over MQTT, then "
                                   "print a summary and write HTML reports.",
                       epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("--broker", metavar="URL",
                   help="use this MQTT broker (mqtt://HOST:PORT) instead of starting one in-process")
    d.add_argument("--short", action="store_true",
                   help="small recording slices at full speed, plain progress lines (about 10 s)")
    d.add_argument("--out", metavar="DIR", default="build/demo",
                   help="where the flash folders, slices and reports go (default: %(default)s)")
    d.add_argument("--speed", type=_speed, default=None,
                   help="how many times faster than real time the recordings play (0 = as fast as the "
                        "boards go; default %d, or 0 with --short)" % DEFAULT_SPEED)
    d.set_defaults(func=cmd_demo)


def cmd_demo(args):
    try:
        summary = run_demo(args.out, broker_url=args.broker, short=args.short, speed=args.speed)
    except KeyboardInterrupt:
        print("demo: interrupted; boards and broker stopped", file=sys.stderr)
        return 130
    except (DemoError, replay.ReplayError, fleet.BrokerURLError, OSError) as e:
        print("demo: %s" % flags(e), file=sys.stderr)
        return 2
    nodes = summary["nodes"].values()
    ok = summary["complete"] and all(n["gaps"] == 0 and n["same_as_replay"] for n in nodes)
    return 0 if ok else 1
