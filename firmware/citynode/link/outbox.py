"""Store-and-forward outbox: an append-only log on the node's flash that holds
every message the node publishes from the moment it is accepted until the
broker has acknowledged it, and hands them out oldest first (docs/outbox.md).

Runs on MicroPython and CPython alike. The folder holds segment files
`seg-NNNNNNNN.log` (numbers only grow) and a `state` file with the
acknowledged-up-to mark, the drop count and how many records past the mark
may have been sent. A record is `<HI` (payload length, CRC-32 of the
payload) then the payload. Records are read one at a time, never a whole
segment.
"""

import binascii
import os
import struct

from citynode.storage import replace, write_atomic

HEADER = "<HI"
HEADER_LEN = 6
MAX_PAYLOAD = 0xFFFF
_CHUNK = 256  # bytes copied at a time when a segment is cut short


def frame(data):
    """The bytes of one record holding `data`: header, then `data`."""
    return struct.pack(HEADER, len(data), binascii.crc32(data) & 0xFFFFFFFF) + data


def encode(topic, payload):
    """The record payload for one MQTT message: `topic`, a zero byte, then
    `payload`. Either may be str (encoded UTF-8) or bytes."""
    if isinstance(topic, str):
        topic = topic.encode()
    if isinstance(payload, str):
        payload = payload.encode()
    if b"\0" in topic:
        raise ValueError("topic holds a zero byte")
    return topic + b"\0" + payload


def decode(data):
    """`(topic, payload)` back from `encode`'s bytes: topic a str, payload bytes."""
    i = data.find(b"\0")
    if i < 0:
        raise ValueError("not an encoded message")
    return data[:i].decode(), data[i + 1:]


def _mkdirs(path):
    parts = path.split("/")
    for i in range(1, len(parts) + 1):
        p = "/".join(parts[:i])
        if p:
            try:  # noqa: SIM105 - MicroPython has no contextlib
                os.mkdir(p)
            except OSError:
                pass


def _size(path):
    return os.stat(path)[6]


class Outbox:
    """The log in `folder`, bounded to `max_bytes` of segments, each at most
    `segment_bytes` long. Opening it recovers from a cut write.

    Two positions run through the log: the send cursor (RAM) passes each
    record as `send()` hands it out; the acknowledged-up-to mark passes it
    at `ack()`, and is saved in the state file together with a window of
    `window` records past it that may have been handed out (saved before
    any of them is). After a reset, sending starts again at the saved mark,
    and the records inside the saved window are handed out with `dup` True.

    `dropped`: records never handed out that were thrown away because the
    log was full, since the log was made (kept in the state file).
    `recovered_bytes_lost`: bytes of unreadable records cut off since this
    object was opened (a write interrupted by a reset, a corrupted record).
    `writes`: files written since it was opened (appends, state saves, cut
    segments): what the log costs the flash.
    """

    durable = True  # what it holds outlives a reset (link/ramoutbox.py's does not)

    def __init__(self, folder, max_bytes=64 * 1024, segment_bytes=8 * 1024, window=16):
        if segment_bytes <= HEADER_LEN or segment_bytes > max_bytes:
            raise ValueError("need %d < segment_bytes <= max_bytes" % HEADER_LEN)
        if window < 1:
            raise ValueError("window must be at least 1")
        self.folder = folder.rstrip("/") or "/"
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.window = window
        self.dropped = 0
        self.recovered_bytes_lost = 0
        self.writes = 0
        self._segs = []  # segment numbers on disk, oldest first; the mark is in _segs[0]
        self._sizes = {}  # number -> bytes of good records
        self._unsent = {}  # number -> records not yet handed out
        self._total = 0
        self._roff = 0  # bytes of _segs[0] acknowledged
        self._sseg = -1  # the send cursor: segment, offset of the next record to hand out
        self._soff = 0
        self._taken = []  # (segment, record bytes) handed out, not acknowledged, oldest first
        self._gone = 0  # handed out, then dropped with the oldest segment: their acks change nothing here
        self._cover = 0  # records past the mark that the saved state says may have been handed out
        self._resend = 0  # of those, the ones a previous run may have sent: handed out with dup
        self._saved = True  # the state file holds the mark
        self._head = None  # (data, record bytes) at the send cursor, once read
        self._last = None  # (segment, offset) of the newest record
        self._seal = -1  # a segment a failed write left with a tail: no more appends to it
        _mkdirs(self.folder)
        self._open()

    # -- files

    def _path(self, n, ext=".log"):
        return "%s/seg-%08d%s" % (self.folder, n, ext)

    def _load(self):
        """(mark segment, mark offset, dropped, window) from the state file,
        or from its temporary copy if a rename over it was cut short. A
        state file of three numbers (no window) is read with a window of 0."""
        for name in ("/state", "/state.tmp"):
            try:
                with open(self.folder + name) as f:
                    v = [int(x) for x in f.read().split()]
                if len(v) == 3:
                    v.append(0)
                if len(v) == 4 and min(v) >= 0:
                    return v
            except (OSError, ValueError):
                pass
        return [0, 0, 0, 0]

    def _save(self, cover=None):
        """Write the state file: the mark as it is now, and `cover` (default:
        the window as it is) records past it that may be handed out; the
        window counts only once it is on flash."""
        if cover is None:
            cover = self._cover
        rseg = self._segs[0] if self._segs else self._next
        write_atomic(self.folder + "/state", "%d %d %d %d\n" % (rseg, self._roff, self.dropped, cover))
        self.writes += 1
        self._cover = cover
        self._saved = True

    def _open(self):
        rseg, roff, self.dropped, self._cover = self._load()
        self._resend = self._cover
        names = os.listdir(self.folder)
        nums = []
        for name in names:
            if not (name.startswith("seg-") and (name.endswith(".log") or name.endswith(".tmp"))):
                continue
            try:
                n = int(name[4:-4])
            except ValueError:
                continue
            if name.endswith(".tmp"):  # a cut short copy: finish the rename, or forget it
                if "seg-%08d.log" % n in names:
                    os.remove(self._path(n, ".tmp"))
                    continue
                replace(self._path(n, ".tmp"), self._path(n))
            nums.append(n)
        nums.sort()
        self._next = max(rseg, nums[-1] + 1 if nums else 0)
        for n in nums:
            if n < rseg:  # acknowledged or dropped before a reset came between state and removal
                os.remove(self._path(n))
                continue
            size, left, start, last = self._scan(n, roff if n == rseg else 0)
            if size == 0:
                os.remove(self._path(n))
                continue
            if not self._segs:
                self._roff = start if n == rseg else 0
            self._segs.append(n)
            self._sizes[n] = size
            self._unsent[n] = left
            self._total += size
            self._last = (n, last)
        self._settle()

    def _scan(self, n, roff):
        """Check segment `n` record by record and cut it after the last good
        one. Returns (good bytes, records ending after `roff`, offset of the
        first of them, offset of the last good record)."""
        path = self._path(n)
        end = _size(path)
        pos = left = last = 0
        start = -1
        with open(path, "rb") as f:
            while pos + HEADER_LEN <= end:
                ln, crc = struct.unpack(HEADER, f.read(HEADER_LEN))
                if ln == 0 or pos + HEADER_LEN + ln > end:
                    break
                if binascii.crc32(f.read(ln)) & 0xFFFFFFFF != crc:
                    break
                last = pos
                pos += HEADER_LEN + ln
                if pos > roff:
                    if start < 0:
                        start = last
                    left += 1
        if pos < end:
            self.recovered_bytes_lost += end - pos
            if pos:
                self._cut(n, pos)
        return pos, left, (pos if start < 0 else start), last

    def _cut(self, n, size):
        """Keep the first `size` bytes of segment `n`: copy them to a new file
        and rename it over the old one."""
        tmp = self._path(n, ".tmp")
        with open(self._path(n), "rb") as src, open(tmp, "wb") as dst:
            while size > 0:
                b = src.read(min(size, _CHUNK))
                if not b:
                    break
                dst.write(b)
                size -= len(b)
        self.writes += 1
        replace(tmp, self._path(n))

    def _record(self, n, off):
        """The data of the record at `off` in segment `n`, or None if it
        cannot be read back intact."""
        with open(self._path(n), "rb") as f:
            f.seek(off)
            hdr = f.read(HEADER_LEN)
            if len(hdr) == HEADER_LEN:
                ln, crc = struct.unpack(HEADER, hdr)
                data = f.read(ln)
                if len(data) == ln and binascii.crc32(data) & 0xFFFFFFFF == crc:
                    return data
        return None

    def _forget_oldest(self):
        """Delete the oldest segment: saved as gone first, then removed, so a
        reset between the two leaves a file the next open knows to delete.
        Its records not yet handed out count as dropped."""
        n = self._segs.pop(0)
        gone = 0
        while self._taken and self._taken[0][0] == n:
            self._taken.pop(0)
            gone += 1
        self._gone += gone
        unsent = self._unsent.pop(n)
        self.dropped += unsent
        self._cover = max(0, self._cover - gone - unsent)
        self._resend = max(0, self._resend - gone - unsent)
        self._total -= self._sizes.pop(n)
        self._roff = 0
        self._head = None
        self._save()
        os.remove(self._path(n))

    def _settle(self):
        """Delete segments whose every record is acknowledged, except the
        newest: it holds the newest record (`last()`)."""
        while len(self._segs) > 1 and self._roff >= self._sizes[self._segs[0]]:
            self._forget_oldest()

    # -- writing

    def append(self, data):
        """Add one record (`data`: non-empty bytes). Starts a new segment when
        the current one would pass `segment_bytes`; drops the oldest whole
        segments, counted in `dropped`, when the log would pass `max_bytes`."""
        if isinstance(data, str):
            data = data.encode()
        if not data or len(data) > MAX_PAYLOAD or len(data) + HEADER_LEN > self.segment_bytes:
            raise ValueError("record of %d bytes" % len(data))
        rec = frame(data)
        need = len(rec)
        segs = self._segs
        if segs and segs[-1] != self._seal and self._sizes[segs[-1]] + need <= self.segment_bytes:
            w = segs[-1]
            keep = 1
        else:
            w = self._next
            keep = 0
        while self._total + need > self.max_bytes and len(segs) > keep:
            self._forget_oldest()
        if w == self._next:
            self._next += 1
        try:
            with open(self._path(w), "ab") as f:
                if f.write(rec) != need:
                    raise OSError("short write")
        except OSError:
            self._seal = w  # a partial record may sit at its end: the next open cuts it
            raise
        finally:
            self.writes += 1
        if w not in self._sizes:
            segs.append(w)
            self._sizes[w] = 0
            self._unsent[w] = 0
        self._last = (w, self._sizes[w])
        self._sizes[w] += need
        self._unsent[w] += 1
        self._total += need
        self._settle()

    # -- reading

    def _peek(self):
        """(data, record bytes) at the send cursor, or None when every record
        has been handed out."""
        while self._head is None and self._segs:
            n = self._sseg
            if n not in self._sizes:  # nothing handed out since the mark moved here
                n = self._sseg = self._segs[0]
                self._soff = self._roff
            if self._soff >= self._sizes[n]:
                i = self._segs.index(n) + 1
                if i == len(self._segs):
                    return None
                self._sseg = self._segs[i]
                self._soff = 0
                continue
            data = self._record(n, self._soff)
            if data is not None:
                self._head = (data, HEADER_LEN + len(data))
                break
            # Spoilt since it was checked: give up the rest of this segment.
            cut = self._sizes[n] - self._soff
            self.recovered_bytes_lost += cut
            self._total -= cut
            self._sizes[n] = self._soff
            self._unsent[n] = 0
            if n == self._segs[-1]:
                self._seal = n
            self._settle()
        return self._head

    def send(self, fn, budget):
        """Hand up to `budget` records, oldest first, to `fn(data, dup)`,
        where `dup` says a run before the last reset may have sent that
        record. A true answer hands it out (it stays on flash until `ack()`);
        the first false answer (or an exception) stops. Before a record past
        the saved window is handed out, the state is saved with a window
        reaching `window` records further. Returns the number handed out."""
        done = 0
        while done < budget:
            head = self._peek()
            if head is None:
                break
            k = len(self._taken)
            if k >= self._cover:
                self._save(k + self.window)
            if not fn(head[0], k < self._resend):
                break
            self._taken.append((self._sseg, head[1]))
            self._soff += head[1]
            self._unsent[self._sseg] -= 1
            self._head = None
            done += 1
        return done

    def ack(self):
        """Mark the oldest record handed out as acknowledged, in RAM: the
        mark reaches the state file with the next save (a window, a segment
        deleted, `flush()`). Returns False if nothing was handed out."""
        if self._gone:
            self._gone -= 1
            return True
        if not self._taken:
            return False
        self._roff += self._taken.pop(0)[1]
        self._cover -= 1
        self._resend = max(0, self._resend - 1)
        self._saved = False
        self._settle()
        return True

    def flush(self):
        """Save the mark if it moved since the last save (before a deep sleep
        or a reboot: nothing acknowledged is sent again after it)."""
        if not self._saved:
            self._save()

    def last(self):
        """The newest record's data, acknowledged or not, or None if the log
        has none."""
        if self._last is None or self._last[0] not in self._sizes:
            return None
        return self._record(self._last[0], self._last[1])

    def pending(self):
        """Records not yet acknowledged (handed out or not)."""
        return len(self._taken) + self.unsent()

    def unsent(self):
        """Records not yet handed out."""
        return sum(self._unsent.values())

    def __len__(self):
        return self.pending()

    def used(self):
        """Bytes of segments on flash (the state file aside)."""
        return self._total
