"""`citynode`: the command line over host_tools' functions.

Each subcommand parses its arguments, calls one function and prints; errors
the user can fix are one line on stderr and exit status 2.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from citynode import VERSION
from host_tools import boards, flash, monitor, provision, record, replay, synth
from host_tools.signals import ctrl_c_stops

EXIT_ERROR = 2

_DESCRIPTION = """\
citynode host tools: flash, provision, record from and watch ESP32 sensor
nodes (parking bays, street flooding), and replay recorded sensor data
through the node's own firmware logic on the desk.

  in the field   boards, flash, provision, record, monitor
  on the desk    replay, synth, sim (a virtual board), demo

Run `citynode COMMAND --help` for the options of one command, with examples.
The README walks through a board from the box to a node online."""

_REPLAY_EPILOG = """\
examples:
  citynode replay recordings/flood-event.jsonl.gz
  citynode replay recordings/parking-day.jsonl.gz --report build/parking.html
  citynode replay REC --runtime micropython --heap 96K --json > scores.json

The recording is fed through firmware/citynode exactly as a node would take
it (its sampling schedule decides which samples it reads). Where the
recording holds ground truth, the replay is scored: occupancy precision,
recall, F1 and detection latency; water-level error, alert delays and false
alerts. A malformed recording stops the replay with FILE:LINE: what."""

_SYNTH_EPILOG = """\
scenarios:
  parking-day   24 h, 4 bays (2 ultrasonic, 2 magnetometer) at 1 Hz, with truth
  flood-event   24 h street sensor: a hot day, then a storm floods the street
  dry-week      7 days street sensor: no flood, plenty of clutter
  parking-interference
                20 min, 2 in-ground magnetometer bays at 11 Hz (--rate-hz) under
                interference: short sessions, weak cars, dips, moved fields

The models and their sources are in docs/synthetic-models.md. The same seed
gives the same file; a name ending in .gz is gzip-compressed."""


def _clock(t_ms, start):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(start + t_ms // 1000))


def describe_event(p):
    """One line for an event payload."""
    kind = p.get("kind")
    if kind == "occupancy":
        return "%s %s" % (p["sensor"], p["state"])
    if kind == "alert":
        return "%s alert %s (was %s) at %d mm, %+d mm/min" % (
            p["sensor"], p["alert"].upper(), p["was"], p["level_mm"], p["rate_mm_min"])
    if kind == "fault":
        return "%s fault %s %s" % (p["sensor"], p["fault"], "raised" if p["active"] else "cleared")
    return json.dumps(p)


def _fmt(v, spec="%.2f", none="n/a"):
    return none if v is None else spec % v


def format_scores(scores):
    lines = []
    occ = scores.get("occupancy")
    if occ:
        lines.append("occupancy: F1 %.3f (precision %.3f, recall %.3f) over %d transitions; "
                     "latency median %s s, p90 %s s, max %s s" % (
                         occ["f1"], occ["precision"], occ["recall"], occ["transitions"],
                         _fmt(occ["latency_median_s"], "%.1f"), _fmt(occ["latency_p90_s"], "%.1f"),
                         _fmt(occ["latency_max_s"], "%.1f")))
        for bay, b in occ["bays"].items():
            lines.append("  %-10s F1 %.3f  tp %d fp %d fn %d  latency median %s s" % (
                bay, b["f1"], b["tp"], b["fp"], b["fn"], _fmt(b["latency_median_s"], "%.1f")))
    for sid, w in scores.get("water", {}).items():
        lines.append("water %s: MAE %s mm (%s cm), wet %s mm, max error %s mm over %d readings" % (
            sid, _fmt(w["mae_mm"]), _fmt(None if w["mae_mm"] is None else w["mae_mm"] / 10),
            _fmt(w["mae_wet_mm"]), _fmt(w["max_error_mm"], "%.1f"), w["readings"]))
        for c in w["crossings"]:
            lines.append("  %-7s %4d mm crossed at %s s: alerted %s (interval %s s) %s" % (
                c["alert"], c["threshold_mm"], c["true_t_s"],
                "never" if c["delay_s"] is None else "%+.1f s" % c["delay_s"],
                _fmt(c["interval_s"], "%.0f"), "ok" if c["within_2_intervals"] else "LATE"))
        lines.append("  missed %d, late %d, false alerts %d" % (
            w["missed"], w["late"], len(w["false_alerts"])))
    return lines


def cmd_replay(args):
    result = replay.run(args.recording, args.runtime, args.heap)
    if args.events:
        _write_jsonl(args.events, ({"t": t, **p} for t, p in result.events))
    if args.messages:
        _write_jsonl(args.messages, ({"t": t, "topic": tp, "payload": p} for t, tp, p in result.messages))
    if args.report:
        from host_tools import report

        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        report.write_report(result, args.report)
    if args.json:
        json.dump({"recording": result.path, "runtime": result.runtime, "stats": result.stats,
                   "events": len(result.events), "messages": len(result.messages),
                   "scores": result.scores}, sys.stdout, indent=2)
        print()
        return 0
    h = result.header
    start = h["start"]
    print("replay %s on %s: node %s (%s), %d samples, %d taken by the node's schedule" % (
        result.path, result.runtime, h["node"], h["board"], result.stats["samples"], result.stats["taken"]))
    if args.payloads:
        for t, topic, p in result.messages:
            print("%s  %-12s %s" % (_clock(t, start), topic, json.dumps(p, sort_keys=True)))
    else:
        print("events (%d):" % len(result.events))
        for t, p in result.events:
            print("  %s  %s" % (_clock(t, start), describe_event(p)))
    counts = {}
    for _, topic, _ in result.messages:
        key = topic.split("/")[0]
        counts[key] = counts.get(key, 0) + 1
    print("messages: " + ", ".join("%s %d" % kv for kv in sorted(counts.items())))
    for line in format_scores(result.scores):
        print(line)
    if args.report:
        print("report: %s" % args.report)
    return 0


def _write_jsonl(path, rows):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row, separators=(",", ":")) + "\n")


def cmd_synth(args):
    n = synth.synth(args.scenario, args.output, seed=args.seed, start=args.start, rate_hz=args.rate_hz)
    print("wrote %s: %s, %d records" % (args.output, args.scenario, n))
    return 0


_SIM_EPILOG = """\
examples:
  citynode sim build/board1                # prints e.g. /dev/pts/5
  mpremote connect /dev/pts/5 fs cp -r firmware/citynode :
  mpremote connect /dev/pts/5 resume exec "import citynode.ticks"

The board is MicroPython's unix port on a pseudo-terminal: mpremote's raw
REPL, file copies and soft resets work as on an ESP32 (a soft reset starts a
fresh interpreter and runs boot.py; power-up runs boot.py and main.py).
FLASH is the folder that acts as its flash. See docs/virtual-board.md."""


def cmd_sim(args):
    from host_tools import vboard

    return vboard.serve(args.flash, heap=args.heap)


def cmd_demo(args):
    from host_tools import demo

    argv = ["--out", args.out] + (["--short"] if args.short else [])
    argv += ["--broker", args.broker] if args.broker else []
    argv += ["--speed", str(args.speed)] if args.speed is not None else []
    return demo.main(argv)


def build_parser():
    p = argparse.ArgumentParser(prog="citynode", description=_DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version="citynode " + VERSION)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    r = sub.add_parser("replay", help="replay a recording through the firmware logic and score it",
                       description="Replay a recording through the node's firmware logic.",
                       epilog=_REPLAY_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("recording", help="a recording (.jsonl or .jsonl.gz)")
    r.add_argument("--runtime", choices=replay.RUNTIMES, default="cpython",
                   help="run the firmware under CPython (fast) or the real MicroPython interpreter "
                        "(default: %(default)s)")
    r.add_argument("--heap", default=replay.DEFAULT_HEAP,
                   help="MicroPython heap size, like an ESP32's (default: %(default)s)")
    r.add_argument("--json", action="store_true", help="print the figures as JSON instead of text")
    r.add_argument("--events", metavar="FILE", help="write the events as JSON Lines to FILE")
    r.add_argument("--messages", metavar="FILE",
                   help="write every message the node would publish as JSON Lines to FILE")
    r.add_argument("--payloads", action="store_true", help="print every message, not just the events")
    r.add_argument("--report", metavar="FILE.html", help="write an HTML report with plots to FILE.html")
    r.set_defaults(func=cmd_replay)

    s = sub.add_parser("synth", help="write a synthetic recording from physical models",
                       description="Write a synthetic recording drawn from documented physical models.",
                       epilog=_SYNTH_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("scenario", choices=sorted(synth.SCENARIOS), help="what to simulate")
    s.add_argument("-o", "--output", required=True, help="where to write (.jsonl or .jsonl.gz)")
    s.add_argument("--seed", type=int, help="random seed (default: the bundled recording's)")
    s.add_argument("--start", type=int, default=synth.DEFAULT_START,
                   help="start time, UTC epoch seconds (default: %(default)s, 2026-07-14 00:00)")
    s.add_argument("--rate-hz", type=float, metavar="HZ",
                   help="readings a second (parking-interference only; default 11): the same cars and field "
                        "at another sampling rate")
    s.set_defaults(func=cmd_synth)

    v = sub.add_parser("sim", help="run a virtual board on a pseudo-terminal for mpremote",
                       description="Run a virtual MicroPython board that mpremote can drive.",
                       epilog=_SIM_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    v.add_argument("flash", metavar="FLASH", help="folder acting as the board's flash (made if missing)")
    v.add_argument("--heap", default="256K", help="the interpreter's heap (default: %(default)s)")
    v.set_defaults(func=cmd_sim)

    d = sub.add_parser("demo", help="two virtual nodes replaying recordings into a broker, live",
                       description="Boot a parking node and a street node on virtual boards, provision "
                                   "them with mpremote, replay bundled recordings through their firmware "
                                   "into an embedded MQTT broker and show them live; ends with a summary "
                                   "and HTML reports.")
    d.add_argument("--broker", metavar="URL",
                   help="use this broker (mqtt://host:port) instead of an embedded one")
    d.add_argument("--short", action="store_true", help="short slices, plain progress lines (about 10 s)")
    d.add_argument("--out", default="build/demo", help="folder for the boards' flash and the reports "
                                                       "(default: %(default)s)")
    d.add_argument("--speed", type=float, help="recording seconds per second (default: the demo's own)")
    d.set_defaults(func=cmd_demo)

    boards.add_parser(sub)
    flash.add_parser(sub)
    provision.add_parser(sub)
    monitor.add_parser(sub)
    record.add_parser(sub)
    return p


def main(argv=None):
    ctrl_c_stops()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except replay.ReplayError as e:
        print("citynode %s: error: %s" % (args.command, e), file=sys.stderr)
        return EXIT_ERROR
    except (OSError, ValueError) as e:
        print("citynode %s: error: %s" % (args.command, e), file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
