"""`citynode`: the command line over host_tools' functions.

Each subcommand parses its arguments, calls one function and prints; errors
the user can fix are one line on stderr and exit status 2.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

from citynode import VERSION
from host_tools.cli import boards, demo, flash, monitor, provision, record
from host_tools.cli.flags import flags
from host_tools.desk import importers, replay, score, synth
from host_tools.desk.signals import ctrl_c_stops
from host_tools.progress import Progress

EXIT_ERROR = 2

_DESCRIPTION = """\
citynode host tools: flash, provision, record from and watch ESP32 sensor
nodes (parking bays, street flooding), and replay recorded sensor data
through the node's own firmware logic on the desk.

  in the field   boards, flash, provision, record, monitor
  on the desk    replay, import, synth, sim (a virtual board), demo

Run `citynode COMMAND --help` for the options of one command, with examples.
The README walks through a board from the box to a node online."""

_REPLAY_EPILOG = """\
examples:
  citynode replay recordings/flood-event.jsonl.gz
  citynode replay recordings/parking-day.jsonl.gz --report build/parking.html
  citynode replay REC --runtime micropython --heap 96K --json > scores.json
  citynode replay build/floodnet/                  # every recording in a folder: one table
  citynode replay a.jsonl b.jsonl.gz --json        # several files: one table, as JSON

The recording is fed through firmware/citynode exactly as a node would take
it (its sampling schedule decides which samples it reads). Where the
recording holds ground truth, the replay is scored: occupancy precision,
recall, F1 and detection latency; water-level error, alert delays, early and
false alerts and frozen levels. A malformed recording stops the replay with
FILE:LINE: what. A folder or several files are replayed on --workers
processes and scored as one table (counts summed, percentiles over all)."""

_IMPORT_EPILOG = """\
examples:
  citynode import floodnet floodnet-events.csv -o build/floodnet --every 10
  citynode import floodnet floodnet-events.csv -o build/floodnet-own --mount-mm 3000 --seed 1
  citynode import csv logger.csv -o build/logger.jsonl --map time=timestamp,distance_cm=dist,temp_c=air
  citynode import csv logger.csv -o build/logger.jsonl --map-file logger-map.toml --mount-mm 2500

Every row is checked first; each bad row is one line FILE:LINE: column: what,
and then nothing is written (exit status 2). Formats and models:
docs/importing.md."""

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
    if kind == "gap":
        return "%s gap: %s without readings, too long to bridge; detectors restarted" % (
            p.get("sensor"), "an unknown time" if p.get("gap_s") is None else "%s s" % p["gap_s"])
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
        lines.append("  missed %d, late %d, early alerts %d, false alerts %d, frozen levels %d" % (
            w["missed"], w["late"], len(w["early_alerts"]), len(w["false_alerts"]), len(w["frozen"])))
        for f in w["frozen"]:
            lines.append("  FROZEN: %s mm published an hour after the road was dry at %.0f s (truth %s mm)"
                         % (f["level_mm"], f["dry_t_s"], f["true_mm"]))
    for g in scores.get("gaps", []):
        lines.append("gap at %.0f s: %s" % (g["t_s"], describe_event(dict(g, kind="gap"))))
    return lines


def _pct(v):
    return _fmt(v, "%.1f")


def format_aggregate(table, summaries):
    """The text table of many replays (`replay.run_many`)."""
    ok = [s for s in summaries if "scores" in s]
    lines = ["%d recordings replayed, %d samples (%d taken by the nodes' schedules), %d events" % (
        len(ok), sum(s["stats"]["samples"] for s in ok), sum(s["stats"]["taken"] for s in ok),
        sum(s["events"] for s in ok))]
    occ = table.get("occupancy")
    if occ:
        lines.append("occupancy (%d bays): F1 %.3f, precision %.3f, recall %.3f over %d transitions "
                     "(found %d, false %d, missed %d)" % (occ["bays"], occ["f1"], occ["precision"],
                                                          occ["recall"], occ["transitions"], occ["tp"],
                                                          occ["fp"], occ["fn"]))
        lines.append("  latency p50 %s s, p90 %s s, p99 %s s, max %s s" % tuple(
            _pct(occ[k]) for k in ("latency_p50_s", "latency_p90_s", "latency_p99_s", "latency_max_s")))
    w = table.get("water")
    if w:
        lines.append("water (%d events, %d readings): MAE per event p50 %s mm, p90 %s mm, p99 %s mm, "
                     "max %s mm (%s)" % (w["events"], w["readings"], _fmt(w["mae_p50_mm"]),
                                         _fmt(w["mae_p90_mm"]), _fmt(w["mae_p99_mm"]),
                                         _fmt(w["mae_max_mm"]), w["mae_worst"]))
        lines.append("  crossings %d: missed %d, late %d (%.2f %%, later than 2 intervals); early alerts %d, "
                     "false alerts %d" % (w["crossings"], w["missed"], w["late"], w["late_pct"],
                                          w["early_alerts"], w["false_alerts"]))
        lines.append("  frozen levels %d; events with MAE over %g mm: %d" % (
            w["frozen"], score.WATER_MAE_TARGET_MM, len(w["mae_over_target"])))
        for name in w["frozen_events"]:
            lines.append("  FROZEN: %s" % name)
    gaps = table["gaps"]
    lines.append("gaps the nodes could not bridge: %d" % len(gaps))
    for g in gaps:
        lines.append("  %s at %.0f s: %s" % (g["recording"], g["t_s"], describe_event(dict(g, kind="gap"))))
    for s in summaries:
        if "error" in s:
            lines.append("error: %s" % s["error"])
    return lines


def default_workers():
    """Both cores of a two-core machine; at most the cores there are."""
    return max(1, min(2, os.cpu_count() or 1))


def cmd_replay(args):
    paths = replay.recordings_in(args.recording)
    if len(args.recording) > 1 or Path(args.recording[0]).is_dir():
        return _replay_many(args, paths)
    result = replay.run(paths[0], args.runtime, args.heap)
    if args.events:
        _write_jsonl(args.events, ({"t": t, **p} for t, p in result.events))
    if args.messages:
        _write_jsonl(args.messages, ({"t": t, "topic": tp, "payload": p} for t, tp, p in result.messages))
    if args.report:
        from host_tools.desk import report
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        report.write_report(result, args.report)
    if args.json:
        json.dump({"recording": result.path, "runtime": result.runtime, "stats": result.stats,
                   "events": len(result.events), "messages": len(result.messages),
                   "scores": result.scores}, sys.stdout, indent=2, allow_nan=False)
        print()
        return 0
    h = result.header
    start = h["start"]
    print("replay %s on %s: node %s (%s), %d samples, %d taken by the node's schedule" % (
        result.path, result.runtime, h["node"], h["board"], result.stats["samples"], result.stats["taken"]))
    timeline = result.timeline
    if args.payloads:
        for t, topic, p in timeline:
            print("%s  %-12s %s" % (_clock(t, start), topic, json.dumps(p, sort_keys=True)))
    else:
        events = [(t, p) for t, topic, p in timeline if topic == "event"]
        print("events (%d):" % len(events))
        for t, p in events:
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


def _replay_many(args, paths):
    single = [o for o in ("events", "messages", "report", "payloads") if getattr(args, o)]
    if single:
        raise ValueError("--%s is for one recording; with several, use --json" % single[0])
    with Progress("replaying") as bar:
        summaries, table = replay.run_many(paths, args.runtime, args.heap, args.workers, bar.update)
    failed = sum(1 for s in summaries if "error" in s)
    if args.json:
        json.dump({"runtime": args.runtime, "aggregate": table, "runs": summaries}, sys.stdout, indent=2,
                  allow_nan=False)
        print()
        for s in summaries:
            if "error" in s:
                print("citynode replay: error: %s" % s["error"], file=sys.stderr)
    else:
        for line in format_aggregate(table, summaries):
            print(line)
    return EXIT_ERROR if failed else 0


def cmd_import_floodnet(args):
    t0 = time.monotonic()
    with Progress("importing") as bar:
        paths = importers.import_floodnet(args.events, args.output, args.mount_mm, args.every, args.seed,
                                          args.workers, bar.update)
    print("wrote %d recordings to %s (%s, %d mm mount) in %.1f s" % (
        len(paths), args.output, "every %g s" % args.every if args.every else "the profiles' own times",
        args.mount_mm, time.monotonic() - t0))
    return 0


def cmd_import_csv(args):
    if (args.map is None) == (args.map_file is None):
        raise importers.ImportFailed(["give --map or --map-file (one of them)"])
    mapping = importers.parse_map(args.map, args.map_file)
    rec = importers.csv_recording(args.log, mapping, args.mount_mm, args.node)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    rec.write(args.output)
    print("wrote %s: %d records" % (args.output, len(rec.records)))
    return 0


def _write_jsonl(path, rows):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row, separators=(",", ":")) + "\n")


def cmd_synth(args):
    if Path(args.output).exists() and not args.force:
        raise ValueError("%s exists: choose another name, or --force to overwrite it" % args.output)
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
    from host_tools.desk import vboard
    return vboard.serve(args.flash, heap=args.heap)


def build_parser():
    p = argparse.ArgumentParser(prog="citynode", description=_DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version="citynode " + VERSION)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    r = sub.add_parser("replay", help="replay a recording through the firmware logic and score it",
                       description="Replay a recording through the node's firmware logic.",
                       epilog=_REPLAY_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("recording", nargs="+",
                   help="a recording (.jsonl or .jsonl.gz); or several, or folders of them: one table")
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
    r.add_argument("--workers", type=int, default=default_workers(),
                   help="processes replaying several recordings at once (default: %(default)s)")
    r.set_defaults(func=cmd_replay)

    im = sub.add_parser("import", help="make recordings from real data (FloodNet events, a logger CSV)",
                        description="Make citynode recordings from real data: FloodNet's public flood-event "
                                    "table, or a logger's CSV file.",
                        epilog=_IMPORT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    isub = im.add_subparsers(dest="source", metavar="SOURCE", required=True)
    fn = isub.add_parser("floodnet", help="FloodNet flood events: one recording per event",
                         description="Each row of FloodNet's flood-event table (NYC Open Data, 'FloodNet "
                                     "street flooding events') becomes a street node's recording: dry road "
                                     "before and after, 7-ping echo bursts made from the depth profile "
                                     "through the core's speed of sound, MaxBotix ping noise, modelled air, "
                                     "and the profile as truth.",
                         epilog=_IMPORT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    fn.add_argument("events", metavar="EVENTS.csv", help="FloodNet's flood-event table (CSV)")
    fn.add_argument("-o", "--output", required=True, metavar="DIR", help="folder to write the recordings to")
    fn.add_argument("--mount-mm", type=int, default=3000,
                    help="height of the sensor above the dry road, mm (default: %(default)s)")
    fn.add_argument("--every", type=float, metavar="S",
                    help="resample each profile linearly every S seconds (default: keep its own times)")
    fn.add_argument("--seed", type=int, default=0, help="seed of the noise models (default: %(default)s)")
    fn.add_argument("--workers", type=int, default=default_workers(),
                    help="processes writing recordings at once (default: %(default)s)")
    fn.set_defaults(func=cmd_import_floodnet)
    lc = isub.add_parser("csv", help="a logger's CSV file: one recording",
                         description="A logger's CSV (one reading per line: time, distance or level, "
                                     "optional air and true level) becomes one street recording.",
                         epilog=_IMPORT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    lc.add_argument("log", metavar="LOG.csv", help="the logger's CSV file, with a header line")
    lc.add_argument("-o", "--output", required=True, metavar="OUT.jsonl",
                    help="the recording to write (.jsonl, or .jsonl.gz)")
    lc.add_argument("--map", metavar="KEY=COLUMN,...",
                    help="which column holds what; keys: " + ", ".join(importers.MAP_KEYS))
    lc.add_argument("--map-file", metavar="M.toml", help='the mapping as TOML lines KEY = "COLUMN"')
    lc.add_argument("--mount-mm", type=int, default=3000,
                    help="height of the sensor above the dry road, mm (default: %(default)s)")
    lc.add_argument("--node", help="the node's name in the recording (default: the file's name)")
    lc.set_defaults(func=cmd_import_csv)

    s = sub.add_parser("synth", help="write a synthetic recording from physical models",
                       description="Write a synthetic recording drawn from documented physical models.",
                       epilog=_SYNTH_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("scenario", choices=sorted(synth.SCENARIOS), help="what to simulate")
    s.add_argument("-o", "--output", required=True, help="where to write (.jsonl or .jsonl.gz)")
    s.add_argument("--seed", type=int, help="random seed (default: the bundled recording's)")
    s.add_argument("--force", action="store_true", help="overwrite the output if it exists")
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

    for command in (demo, boards, flash, provision, monitor, record):
        command.add_parser(sub)
    return p


def main(argv=None):
    ctrl_c_stops()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except importers.ImportFailed as e:
        for line in e.errors:
            print("citynode %s: error: %s" % (args.command, flags(line)), file=sys.stderr)
        return EXIT_ERROR
    except replay.ReplayError as e:
        print("citynode %s: error: %s" % (args.command, flags(e)), file=sys.stderr)
        return EXIT_ERROR
    except (OSError, ValueError) as e:
        print("citynode %s: error: %s" % (args.command, flags(e)), file=sys.stderr)
        return EXIT_ERROR

