"""The outbox in RAM, for a node whose filesystem it may not write (a
CircuitPython board whose drive stays with the USB host): the flash
outbox's interface (citynode.link.outbox.Outbox) over a list, so the
publisher and the node use it unchanged (docs/outbox.md).

What it holds is lost at a reset or a power cut, and it cannot be kept
through deep sleep: `durable` is False, and the node stays awake while it
holds anything. When it is full the oldest records go first, counted in
`dropped` as the flash outbox counts them.
"""

from citynode.link.outbox import MAX_PAYLOAD


class RamOutbox:
    """Records in RAM, at most `max_bytes` of payload, oldest first.
    `send`, `ack`, `pending`, `unsent`, `last`, `used`, `dropped`: as
    Outbox's (no record is ever sent as a repeat of a run before a reset)."""

    durable = False

    def __init__(self, max_bytes):
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        self.max_bytes = max_bytes
        self.dropped = 0
        self._recs = []  # payloads, oldest first; the first `_out` are handed out
        self._out = 0
        self._gone = 0  # handed out, then dropped for room: their acks change nothing here
        self._total = 0
        self._last = None

    def append(self, data):
        """Add one record (non-empty bytes), dropping the oldest for room."""
        if isinstance(data, str):
            data = data.encode()
        if not data or len(data) > MAX_PAYLOAD or len(data) > self.max_bytes:
            raise ValueError("record of %d bytes" % len(data))
        while self._total + len(data) > self.max_bytes:
            self._total -= len(self._recs.pop(0))
            if self._out:
                self._out -= 1
                self._gone += 1
            else:
                self.dropped += 1
        self._recs.append(data)
        self._total += len(data)
        self._last = data

    def send(self, fn, budget):
        """Hand up to `budget` records, oldest first, to `fn(data, False)`
        until it answers false. Returns the number handed out."""
        done = 0
        while done < budget and self._out < len(self._recs) and fn(self._recs[self._out], False):
            self._out += 1
            done += 1
        return done

    def ack(self):
        """The oldest record handed out is acknowledged: it goes."""
        if self._gone:
            self._gone -= 1
            return True
        if not self._out:
            return False
        self._total -= len(self._recs.pop(0))
        self._out -= 1
        return True

    def flush(self):
        """Nothing to save: RAM keeps no mark."""

    def last(self):
        """The newest record's data, or None if none was ever added."""
        return self._last

    def pending(self):
        return len(self._recs)

    def unsent(self):
        return len(self._recs) - self._out

    def __len__(self):
        return self.pending()

    def used(self):
        """Bytes of payload held."""
        return self._total
