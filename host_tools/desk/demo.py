"""The demo: two virtual nodes, provisioned with mpremote, publishing to a broker.

    citynode demo                 # embedded broker, about a minute
    citynode demo --short         # small slices, about 10 s
    citynode demo --broker mqtt://127.0.0.1:1883

What it does, as a newcomer would see it without a board:

1. starts an MQTT broker in this process (amqtt, on a free loopback port),
   unless `--broker` names one;
2. powers up two virtual boards (host_tools.desk.vboard) with empty flash: a
   parking node and a street (flood) node, and provisions each with
   `mpremote fs cp` (the citynode package, boot.py, main.py, config.json
   and a slice of a bundled recording as /rec.jsonl), then power-cycles
   them so boot.py and main.py run the node;
3. subscribes to `citynode/<site>/+/#` and shows what arrives: bays, water
   level and alert, status, health (a live table on a terminal, progress
   lines otherwise);
4. stops when both nodes have published what the CPython replay of their
   slice gives (plus health), or a time limit passes; prints a summary and
   writes an HTML report per slice;
5. stops the boards and the broker, also after an error or a Ctrl-C.

`run_demo(...)` does all of it and returns the summary; `main(argv)` is the
command line.
"""

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import sys
import threading
import time
from pathlib import Path

from citynode.link.mqtt import MQTTClient
from host_tools.desk import replay, report
from host_tools.desk.vboard import VirtualBoard
from host_tools.field import fleet
from host_tools.field.boards import load as load_profile
from host_tools.field.sites import node_config
from host_tools.field.transport import Board, BoardError
from host_tools.paths import FIRMWARE, RECORDINGS

SITE = "demo"
HOST = "127.0.0.1"
HEALTH_S = 300  # recording seconds between two health messages
DEFAULT_SPEED = 250  # recording time runs this many times faster than real time

# name: (bundled recording, hours of the day kept, hours in short mode, what it shows)
SLICES = {
    "parking": ("parking-day.jsonl.gz", (7.0, 9.5), (7.5, 8.0), "the morning rush on four bays"),
    "flood": ("flood-event.jsonl.gz", (15.5, 18.0), (16.0, 17.6), "the storm: the street floods"),
}
SHORT_SPEED = 0  # short mode: as fast as the board goes


class DemoError(Exception):
    """The demo could not run; `str()` is one line for the user."""


# ---- recording slices


def expected_health(info, health_s=HEALTH_S):
    """Health messages a node sends over the slice: one each time the
    recording passes the next multiple of `health_s` after its first sample."""
    return (info["last"] - info["first"]) // (health_s * 1000)


# ---- the embedded broker


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class EmbeddedBroker:
    """amqtt in a background thread with its own event loop, on loopback."""

    def __init__(self, port=None):
        self.host = HOST
        self.port = port or free_port()
        self._loop = None
        self._broker = None
        self._thread = None
        self._ready = threading.Event()
        self._error = None

    def start(self, timeout=10.0):
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="demo-broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            self.stop()
            raise DemoError("the embedded MQTT broker did not start: %s" % (self._error or "timeout"))
        return self

    def _run(self):
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._start())
        except Exception as e:  # noqa: BLE001 - reported by start()
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()

    async def _start(self):
        from amqtt.broker import Broker

        config = {"listeners": {"default": {"type": "tcp", "bind": "%s:%d" % (self.host, self.port)}},
                  "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}}
        self._broker = Broker(config)
        await self._broker.start()

    def stop(self, timeout=5.0):
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = self._thread = None
        if self._broker is not None and loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), loop)
            with contextlib.suppress(Exception):  # stopping anyway
                fut.result(timeout)
        if loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()


class Watcher:
    """A CPython MQTTClient subscribed to citynode/<site>/+/#, pumped by a
    thread, feeding a fleet.Fleet (under `lock`). `readings[node]` keeps the
    first sightings of each live message but health, without `seq`, in
    order: the stream to compare with a replay."""

    def __init__(self, host, port, fleet):
        self.fleet = fleet
        self.readings = {}
        self.lock = threading.Lock()
        # A persistent session: if this view loses its connection for a moment,
        # the broker keeps what the nodes publish meanwhile and hands it over.
        self.client = MQTTClient("demo-view-%d" % os.getpid(), host, port, keepalive=30, clean=False)
        self.client.BACKOFF_BASE_MS = 100
        self.client.BACKOFF_CAP_MS = 500
        self.client.on_message = self._on_message
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        try:
            self.client.connect()
            if self.client.subscribe("citynode/%s/+/#" % SITE, 1) != 1:
                raise DemoError("the broker refused the subscription")
        except OSError as e:
            where = "%s:%d" % (self.client.host, self.client.port)
            raise DemoError("cannot subscribe at %s: %s" % (where, e)) from None
        self._thread = threading.Thread(target=self._run, name="demo-watcher", daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # keep watching
                self.client.maintain()
            time.sleep(0.003)

    def _on_message(self, topic, payload, retained, _dup):
        if fleet.parse_topic(topic) is None:
            return
        with self.lock:
            r = self.fleet.take(topic, payload, retained, time.monotonic())
            if r["seq"] is not None and r["kind"] != "health" and not (set(r["flags"]) & {"duplicate",
                                                                                          "retained"}):
                reading = {k: v for k, v in r["payload"].items() if k != "seq"}
                self.readings.setdefault(r["node"], []).append((r["kind"], reading))

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        with contextlib.suppress(Exception):
            self.client.disconnect()


# ---- the boards


def stage_firmware(dst):
    """The citynode package as it goes to a board: sources only."""
    if dst.exists():
        shutil.rmtree(dst)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(FIRMWARE / "citynode", dst, ignore=skip)
    return dst


def provision(port, package, config, recording, say, timeout=60):
    """What a field technician does: copy the firmware, boot.py, main.py,
    the config and the recording with mpremote (one connection)."""
    steps = [["fs", "cp", "-r", str(package), ":"],
             ["fs", "cp", str(FIRMWARE / "boot.py"), ":"],
             ["fs", "cp", str(FIRMWARE / "main.py"), ":"],
             ["fs", "cp", str(config), ":config.json"],
             ["fs", "cp", str(recording), ":rec.jsonl"]]
    board = Board(port)
    say("mpremote %s" % " ".join(board.command(steps)))
    try:
        board.run(steps, timeout=timeout)
    except BoardError as e:
        raise DemoError(str(e)) from None


# ---- showing it


def render_table(nodes, elapsed):
    return fleet.render_table(nodes, time.monotonic(), "citynode demo: site %s, %.1f s" % (SITE, elapsed))


# ---- the demo


def run_demo(out_dir="build/demo", broker_url=None, short=False, speed=None, console=None, timeout=None,
             out=None):
    """Run the whole demo; returns the summary dict (per node: expected,
    received, last_seq, gaps, alerts, occupancy changes, the replay's
    figures, the report path). `console` is a rich Console for the live
    view (default: one on stdout when it is a terminal and not `short`;
    without one, plain progress lines);
    plain progress lines go to `out` (default stdout)."""
    out = out or sys.stdout
    t0 = time.monotonic()

    def say(line):
        print(line, file=out, flush=True)

    if speed is None:
        speed = SHORT_SPEED if short else DEFAULT_SPEED
    target = fleet.parse_broker(broker_url) if broker_url else None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    broker = None
    boards = {}
    watcher = None
    try:
        # The slices and what the replay of each gives.
        plan = {}
        for name, (rec, hours, short_hours, what) in SLICES.items():
            h = short_hours if short else hours
            path = out_dir / ("%s.jsonl" % name)
            info = replay.make_slice(RECORDINGS / rec, h, path)
            result = replay.run(path)
            plan[name] = {"path": path, "info": info, "result": result, "hours": h, "what": what,
                          "expected": len(result.messages) + expected_health(info)}
            say("%s: %s, %s hours %g-%g: %d samples; replay: %d messages + %d health"
                % (name, info["header"]["node"], rec, h[0], h[1], info["samples"], len(result.messages),
                   expected_health(info)))

        if target:
            host, port = target
            say("broker: %s:%d" % (host, port))
        else:
            broker = EmbeddedBroker().start()
            host, port = broker.host, broker.port
            say("broker: embedded amqtt on mqtt://%s:%d" % (host, port))

        nodes = fleet.Fleet()
        views = [nodes.add(SITE, p["info"]["header"]["node"], time.monotonic(), first_seq=1, label=n,
                           expected=p["expected"]) for n, p in plan.items()]
        watcher = Watcher(host, port, nodes).start()

        # Boards with empty flash, provisioned in parallel.
        package = stage_firmware(out_dir / "stage" / "citynode")
        errors = []
        for name, p in plan.items():
            flash = out_dir / ("flash-%s" % name)
            if flash.exists():
                shutil.rmtree(flash)
            flash.mkdir()
            cfg = out_dir / ("%s-config.json" % name)
            header = p["info"]["header"]
            config = node_config(SITE, header["node"], load_profile("virtual"), header["sensors"],
                                 {"host": host, "port": port, "keepalive": 30}, health_s=HEALTH_S,
                                 speed=speed)
            cfg.write_text(json.dumps(config, indent=1))
            p["config"] = cfg
            boards[name] = VirtualBoard(flash)
            boards[name].start()
            say("%s: virtual board on %s (empty flash %s)" % (name, boards[name].port, flash))

        def _prov(name):
            try:
                provision(boards[name].port, package, plan[name]["config"], plan[name]["path"], say)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=_prov, args=(n,), daemon=True) for n in plan]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        if errors or any(t.is_alive() for t in threads):
            raise errors[0] if errors else DemoError("provisioning did not finish")
        for name, board in boards.items():
            board.hard_reset()
            say("%s: power cycle: boot.py, main.py" % name)
        t_run = time.monotonic()

        # Watch until every node has published everything, or the limit.
        if timeout is None:
            span_s = max(p["info"]["last"] - p["info"]["first"] for p in plan.values()) / 1000
            timeout = (span_s / speed if speed else 0) + (90 if short else 120)  # a bound, not a target
        end = time.monotonic() + timeout
        live = None
        if console is None and not short and sys.stdout.isatty():
            from rich.console import Console

            console = Console()
        if console is not None:
            from rich.live import Live

            live = Live(render_table(nodes, 0), console=console, refresh_per_second=4, transient=False)
            live.start()
        try:
            last_line = 0.0
            while time.monotonic() < end:
                with watcher.lock:
                    finished = all(v.done() for v in views)
                    now = time.monotonic()
                    if live is not None:
                        live.update(render_table(nodes, now - t0))
                    elif now - last_line >= 1.0 or finished:
                        for v in views:
                            say("[%5.1fs] %s" % (now - t0, fleet.node_line(v, now)))
                        last_line = now
                if finished:
                    break
                time.sleep(0.25)
        finally:
            if live is not None:
                with watcher.lock:
                    live.update(render_table(nodes, time.monotonic() - t0))
                live.stop()
        time.sleep(0.3)  # a repeat or a late status may still come
        run_s = time.monotonic() - t_run

        # Summary and reports.
        summary = {"nodes": {}, "run_s": round(run_s, 1), "speed": speed, "short": short,
                   "complete": all(v.done() for v in views)}
        say("")
        say("summary (%.1f s of publishing, speed %s):" % (run_s, speed or "max"))
        with watcher.lock:
            for v in views:
                p = plan[v.label]
                result = p["result"]
                r_alerts = sum(1 for _t, p_ in result.events if p_.get("kind") == "alert")
                r_occ = sum(1 for _t, p_ in result.events if p_.get("kind") == "occupancy")
                path = report.write_report(result, out_dir / ("%s.html" % v.label))
                readings = watcher.readings.get(v.node, [])
                same = readings == [(topic, payload) for _t, topic, payload in result.messages]
                sq = v.seq
                healths = v.counts.get("health", 0)
                summary["nodes"][v.label] = {
                    "node": v.node, "expected": v.expected, "received": sq.distinct,
                    "repeats": sq.duplicates, "last_seq": sq.highest, "gaps": sq.missing,
                    "out_of_order": sq.late, "health": healths, "alerts": v.alerts,
                    "occupancy_changes": v.occupancy_changes, "status": v.status or "-",
                    "replay_messages": len(result.messages), "replay_alerts": r_alerts,
                    "replay_occupancy_changes": r_occ, "same_as_replay": same, "report": str(path)}
                say("  %-8s %-14s %d/%d messages (%d health), last seq %d, gaps %d, alerts %d (replay %d), "
                    "occupancy changes %d (replay %d), stream %s the replay, status %s"
                    % (v.label, v.node, sq.distinct, v.expected, healths, sq.highest, sq.missing, v.alerts,
                       r_alerts, v.occupancy_changes, r_occ, "equals" if same else "DIFFERS FROM",
                       v.status or "-"))
        if not summary["complete"]:
            say("  not complete after %.0f s" % timeout)
        say("reports:")
        for name in plan:
            say("  %s" % summary["nodes"][name]["report"])
        return summary
    finally:
        if watcher is not None:
            watcher.stop()
        for board in boards.values():
            with contextlib.suppress(Exception):  # stop the others anyway
                board.stop()
        if broker is not None:
            broker.stop()
