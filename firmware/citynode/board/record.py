"""Record mode: every sensor's raw samples on the console, for `citynode
record` on the host (docs/recording.md).

    import citynode.board.record
    citynode.board.record.main()       # started over the raw REPL; a Ctrl-C stops it

It builds the hardware layer from /config.json as the node does
(`node.load_config`, `node.check_config`, `node.make_hal`), reads every
sensor at a fixed interval, the shortest the node's core ever uses for it
(`recording_periods`), and prints one line per raw sample. Nothing is
decided, filtered or published: the samples are the drivers' dicts as the
core would take them, so the recording replays through the same core.

Every line meant for the host is `MARK` followed by one JSON object:

    #rec {"hello": {...}}                      first: the config, the tick and epoch at t = 0
    #rec {"t": 1234, "s": "bay-01", "echo_us": [15300, 15274, 15201]}
    #rec {"now": 1300}                         the answer to an ASK byte on the console
    #rec {"end": "done", "samples": 812}       the hardware layer has no more ("stopped": Ctrl-C)
    #rec {"error": "config.json: cannot read /config.json"}

`t` and `tick` are the board's millisecond ticks (they wrap at 2**30,
citynode.ticks); the host turns them into milliseconds since t = 0. Any
other output (a driver's warning) is not marked. Each line is written with
one call, so a Ctrl-C lands between lines; the rare line one cuts is
refused by the host, which names it and keeps it aside.

Runs under MicroPython (the board, the virtual board) and CPython.
"""

import json
import select
import sys

from citynode import VERSION, forget, ticks
from citynode.board.node import CONFIG_PATH, check_config, load_config, make_hal
from citynode.sense.core import Core

MARK = "#rec "
ASK = "?"  # a byte from the host: "which tick is it now?" (a ground-truth note to stamp)
_TURN_MS = 100  # the longest sleep in one turn of waiting: how late an ASK may be answered


def emit(obj):
    """One marked line on the console."""
    sys.stdout.write(MARK + json.dumps(obj) + "\n")


def recording_periods(sensors, clock):
    """Milliseconds between two readings of each sensor: the shortest
    interval the core uses for it. A bay or an air sensor at its `period_s`;
    a water sensor at its `fast_s` (its adaptive schedule never reads it
    faster); an air sensor also with every water burst, as the core reads
    it. The defaults are the core's own."""
    core = Core(sensors, clock, None)
    fast = [core.detectors[s["id"]].fast_ms for s in sensors if s["type"] == "water"]
    periods = {}
    for s in sensors:
        sid = s["id"]
        if s["type"] == "water":
            periods[sid] = core.detectors[sid].fast_ms
        elif s["type"] == "env":
            periods[sid] = min([core.period_ms[sid]] + fast)
        else:
            periods[sid] = core.period_ms[sid]
    return periods


class Schedule:
    """What the hardware layer asks a scheduler: `due_at`, sensor id -> the
    tick at which to read it next (None: now)."""

    def __init__(self, periods):
        self.periods = periods
        self.due_at = {}
        for sid in periods:
            self.due_at[sid] = None

    def taken(self, sid, t):
        self.due_at[sid] = ticks.add(t, self.periods[sid])


class Console:
    """The console's input: ASK bytes from the host, answered with the
    hardware layer's tick. Waiting for them is the loop's sleep."""

    def __init__(self, hal):
        self.hal = hal
        self.poll = select.poll()
        self.poll.register(sys.stdin, select.POLLIN)

    def answer(self, timeout_ms=0):
        """Answer what the host asked, waiting for it at most `timeout_ms`."""
        while self.poll is not None and self.poll.poll(timeout_ms):
            c = sys.stdin.read(1)
            if not c:  # the input is closed (a desk run): nothing more to answer
                self.poll = None
            elif c == ASK:
                emit({"now": self.hal.now()})
            timeout_ms = 0
        if self.poll is None and timeout_ms > 0:
            ticks.sleep_ms(timeout_ms)


class Recorder:
    """Streams a hardware layer's samples; `samples` counts the lines sent."""

    def __init__(self, cfg, hal):
        self.cfg = cfg
        self.hal = hal
        self.samples = 0

    def run(self):
        """Every configured sensor at its recording period, until the
        hardware layer has no more (a recording played out) or a Ctrl-C."""
        cfg = self.cfg
        hal = self.hal
        clock = hal.clock()
        periods = recording_periods(cfg["sensors"], clock)
        sched = Schedule(periods)
        console = Console(hal)
        t0 = hal.now()
        machine = getattr(sys.implementation, "_machine", sys.platform)
        emit({"hello": {"node": cfg["node"], "site": cfg["site"], "sensors": cfg["sensors"],
                        "hal": cfg["hal"]["kind"], "fw": VERSION, "tick": t0, "epoch": clock.epoch(t0),
                        "periods_ms": periods, "machine": machine}})

        def wait(deadline):
            while True:
                left = ticks.diff(deadline, ticks.now_ms())
                if left <= 0:
                    return
                hal.service()
                console.answer(min(left, _TURN_MS))

        for sid, t, sample in hal.stream(sched, wait):
            if sample is not None and sid in periods:
                sched.taken(sid, t)
                rec = {"t": t, "s": sid}
                for key in sample:
                    if key != "t" and key != "s":
                        rec[key] = sample[key]
                emit(rec)
                self.samples += 1
            hal.service()
            console.answer()


def main(path=CONFIG_PATH):
    """Load and check the config, build the hardware layer, stream until it
    ends or a Ctrl-C. Whatever stops it is one marked line: `end` (with the
    number of samples sent) or `error`."""
    try:
        cfg = load_config(path)
        check_config(cfg)
        forget("citynode.config")  # checked: the checks can go, as the node's
        hal = make_hal(cfg)
    except Exception as e:  # noqa: BLE001 - one line for the host, whatever it is
        emit({"error": str(e) if isinstance(e, ValueError) else "%s: %s" % (type(e).__name__, e)})
        return
    rec = Recorder(cfg, hal)
    try:
        rec.run()
        emit({"end": "done", "samples": rec.samples})
    except KeyboardInterrupt:
        emit({"end": "stopped", "samples": rec.samples})
    except Exception as e:  # noqa: BLE001 - the host says it in one line
        emit({"error": "%s: %s" % (type(e).__name__, e), "samples": rec.samples})
    finally:
        hal.close()
