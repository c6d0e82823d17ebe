"""The simulated hardware layer: sensors read from a recording.

On the board the scheduler sleeps until a sensor is due and reads it; here
time is the recording's. Each recorded sample of a sensor is handed to the
core if the core wanted that sensor by then (within `SLACK_MS`), and
skipped otherwise — a recording made at the fastest rate thus replays
exactly what an adaptively sampling node would have measured. A recording
with bus-level values (version 2) is read through emulated parts and the
real drivers first.
"""

from citynode import ticks
from citynode.core import SLACK_MS


class SimHal:
    def __init__(self, reader, on_truth=None):
        self.reader = reader
        self.on_truth = on_truth
        self.bench = None
        if reader.parts:
            # Bus-level samples: emulated parts behind the real drivers
            # (desk-only code, imported only for such recordings).
            from host_tools.emulators.bench import Bench

            self.bench = Bench(reader.header["bus"])
        self.samples = 0
        self.taken = 0
        self.truth = 0

    def run(self, core):
        """Drive `core` through the whole recording."""
        for rec in self.reader:
            sid = rec.get("s")
            if sid is None:
                self.truth += 1
                if self.on_truth is not None:
                    self.on_truth(rec)
                continue
            self.samples += 1
            t = rec["t"] & ticks.MASK
            due = core.due_at[sid]
            if due is None or ticks.diff(t, due) >= -SLACK_MS:
                self.taken += 1
                if self.bench is not None and sid in self.bench:
                    rec = self.bench.sample(sid, rec)
                core.feed(sid, t, rec)

    def stats(self):
        return {"samples": self.samples, "taken": self.taken, "truth": self.truth}
