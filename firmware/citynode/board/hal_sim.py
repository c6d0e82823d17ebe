"""The simulated hardware layer: sensors read from a recording.

On the board the scheduler sleeps until a sensor is due and reads it; here
time is the recording's. Each recorded sample of a sensor is handed to the
core if the core wanted that sensor by then (within `SLACK_MS`), and
skipped otherwise — a recording made at the fastest rate thus replays
exactly what an adaptively sampling node would have measured. The
recording's times do not wrap: a silence so long that the ticks alias it
(2**29 ms, 6.2 days, or more since the node's last sample, or since that
sensor's) is reported to the core (`Core.silence`) with its true length
before the sample is judged due. A recording
with bus-level values (version 2) is read through emulated parts and the
real drivers first: the desk hands them in as `parts` (a callable taking
the header's `bus` and returning something with `sid in it` and
`sample(sid, rec)`, such as host_tools.emulators.bench.Bench), so the
firmware never imports the desk's code.

It keeps the hardware-layer contract (docs/hal.md) without deep sleep:
the node's main loop (citynode.board.node) takes it like the board's layer
(citynode.board.hal_esp32).
"""

from citynode import ticks
from citynode.sense.core import SLACK_MS


class SimHal:
    DEEP_SLEEP = False  # a recording has no RTC memory to sleep through (docs/hal.md)

    """`speed`: recording milliseconds per real millisecond (0: no pacing);
    `stream` then calls `wait(deadline_tick)` before each sample."""

    def __init__(self, reader, on_truth=None, speed=0, parts=None):
        self.reader = reader
        self.on_truth = on_truth
        self.speed = speed
        self.bench = None
        if reader.parts:
            if parts is None:
                raise ValueError("bus-level samples need the desk's emulated parts")
            self.bench = parts(reader.header["bus"])
        self.samples = 0
        self.taken = 0
        self.truth = 0
        self.t = 0  # the recording's time: the last sample's tick
        self._fed = None  # the recording's time (ms, unwrapped) of the last sample handed over
        self._fed_by = {}  # the same for each sensor

    def clock(self):
        """The core's clock: tick 0 is the recording's start."""
        return ticks.Clock(self.reader.header["start"], 0)

    def stream(self, core, wait=None):
        """Yield `(sensor, t, sample)` for every recorded sample, `sample`
        None when the core did not want that sensor yet (or has no such
        sensor); ground truth goes to `on_truth`."""
        speed = self.speed
        prev = deadline = None
        for rec in self.reader:
            sid = rec.get("s")
            if sid is None:
                self.truth += 1
                if self.on_truth is not None:
                    self.on_truth(rec)
                continue
            self.samples += 1
            raw_t = rec["t"]
            if speed > 0:
                if prev is None:
                    prev = raw_t
                    deadline = ticks.now_ms()
                deadline = ticks.add(deadline, int((raw_t - prev) / speed + 0.5))
                prev = raw_t
                wait(deadline)
            self.t = t = raw_t & ticks.MASK
            due_at = core.due_at
            if sid in due_at:
                self._tell_silence(core, sid, raw_t, t)
            if sid in due_at and (due_at[sid] is None or ticks.diff(t, due_at[sid]) >= -SLACK_MS):
                self._fed = self._fed_by[sid] = raw_t
                self.taken += 1
                if self.bench is not None and sid in self.bench:
                    rec = self.bench.sample(sid, rec)
                yield sid, t, rec
            else:
                yield sid, t, None

    def _tell_silence(self, core, sid, raw_t, t):
        last = self._fed
        if last is not None and raw_t - last >= ticks.HALF:
            core.silence(t, raw_t - last)
            self._fed_by.clear()
            return
        last = self._fed_by.get(sid)
        if last is not None and raw_t - last >= ticks.HALF:
            core.silence(t, raw_t - last, sid)

    def run(self, core):
        """Drive `core` through the whole recording, as fast as it goes."""
        for sid, t, sample in self.stream(core):
            if sample is not None:
                core.feed(sid, t, sample)

    def stats(self):
        return {"samples": self.samples, "taken": self.taken, "truth": self.truth}

    def service(self):
        """Nothing to keep up: no watchdog, the host's network."""

    def now(self):
        """The tick now: the recording's time of the last sample."""
        return self.t

    def rssi(self):
        return None

    def writable(self):
        """The host's folder (the virtual board's flash) is the code's."""
        return True

    def reset_cause(self):
        """The unix port cannot tell why it started."""
        return "unknown"

    def reboot(self):
        """A soft reset: the virtual board starts a fresh interpreter and runs
        boot.py and main.py (CPython: the process ends)."""
        try:
            import machine

            machine.soft_reset()
        except ImportError:
            raise SystemExit("reboot") from None

    def close(self):
        self.reader.close()
