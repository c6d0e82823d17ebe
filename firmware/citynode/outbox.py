"""Store-and-forward outbox: an append-only log on the node's flash that holds
what the node would publish while the MQTT broker is unreachable, and gives
it back oldest first once it is reachable again (docs/outbox.md).

Runs on MicroPython and CPython alike. The folder holds segment files
`seg-NNNNNNNN.log` (numbers only grow) and a `state` file with the read
position and the drop count. A record is `<HI` (payload length, CRC-32 of
the payload) then the payload. Records are read one at a time, never a
whole segment.
"""

import binascii
import os
import struct

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


def _replace(src, dst):
    """Rename `src` over `dst`. A file system that will not rename over an
    existing file (FAT) gets the old one removed first."""
    try:
        os.rename(src, dst)
    except OSError:
        try:  # noqa: SIM105 - MicroPython has no contextlib
            os.remove(dst)
        except OSError:
            pass
        os.rename(src, dst)


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

    `dropped`: undelivered records thrown away because the log was full,
    since the log was made (kept in the state file).
    `recovered_bytes_lost`: bytes of unreadable records cut off since this
    object was opened (a write interrupted by a reset, a corrupted record).
    """

    def __init__(self, folder, max_bytes=64 * 1024, segment_bytes=8 * 1024):
        if segment_bytes <= HEADER_LEN or segment_bytes > max_bytes:
            raise ValueError("need %d < segment_bytes <= max_bytes" % HEADER_LEN)
        self.folder = folder.rstrip("/") or "/"
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.dropped = 0
        self.recovered_bytes_lost = 0
        self._segs = []  # segment numbers on disk, oldest first; the read position is in _segs[0]
        self._sizes = {}  # number -> bytes of good records
        self._left = {}  # number -> records not yet delivered
        self._total = 0
        self._roff = 0  # bytes of _segs[0] already delivered
        self._head = None  # the oldest undelivered record, once read
        self._seal = -1  # a segment a failed write left with a tail: no more appends to it
        _mkdirs(self.folder)
        self._open()

    # -- files

    def _path(self, n, ext=".log"):
        return "%s/seg-%08d%s" % (self.folder, n, ext)

    def _load(self):
        """(read segment, read offset, dropped) from the state file, or from
        its temporary copy if a rename over it was cut short."""
        for name in ("/state", "/state.tmp"):
            try:
                with open(self.folder + name) as f:
                    v = [int(x) for x in f.read().split()]
                if len(v) == 3 and min(v) >= 0:
                    return v
            except (OSError, ValueError):
                pass
        return [0, 0, 0]

    def _save(self):
        rseg = self._segs[0] if self._segs else self._next
        tmp = self.folder + "/state.tmp"
        with open(tmp, "w") as f:
            f.write("%d %d %d\n" % (rseg, self._roff, self.dropped))
        _replace(tmp, self.folder + "/state")

    def _open(self):
        rseg, roff, self.dropped = self._load()
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
                _replace(self._path(n, ".tmp"), self._path(n))
            nums.append(n)
        nums.sort()
        self._next = max(rseg, nums[-1] + 1 if nums else 0)
        for n in nums:
            if n < rseg:  # delivered or dropped before a reset came between state and removal
                os.remove(self._path(n))
                continue
            size, left, start = self._scan(n, roff if n == rseg else 0)
            if size == 0:
                os.remove(self._path(n))
                continue
            if not self._segs:
                self._roff = start if n == rseg else 0
            self._segs.append(n)
            self._sizes[n] = size
            self._left[n] = left
            self._total += size
        self._settle()

    def _scan(self, n, roff):
        """Check segment `n` record by record and cut it after the last good
        one. Returns (good bytes, records ending after `roff`, offset of the
        first of them)."""
        path = self._path(n)
        end = _size(path)
        pos = left = 0
        start = -1
        with open(path, "rb") as f:
            while pos + HEADER_LEN <= end:
                ln, crc = struct.unpack(HEADER, f.read(HEADER_LEN))
                if ln == 0 or pos + HEADER_LEN + ln > end:
                    break
                if binascii.crc32(f.read(ln)) & 0xFFFFFFFF != crc:
                    break
                pos += HEADER_LEN + ln
                if pos > roff:
                    if start < 0:
                        start = pos - HEADER_LEN - ln
                    left += 1
        if pos < end:
            self.recovered_bytes_lost += end - pos
            if pos:
                self._cut(n, pos)
        return pos, left, (pos if start < 0 else start)

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
        _replace(tmp, self._path(n))

    def _forget_oldest(self):
        """Delete the oldest segment: saved as gone first, then removed, so a
        reset between the two leaves a file the next open knows to delete."""
        n = self._segs.pop(0)
        self._total -= self._sizes.pop(n)
        del self._left[n]
        self._roff = 0
        self._head = None
        self._save()
        os.remove(self._path(n))

    def _settle(self):
        """Delete segments whose every record has been delivered."""
        while self._segs and self._roff >= self._sizes[self._segs[0]]:
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
            self.dropped += self._left[segs[0]]
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
        if w not in self._sizes:
            segs.append(w)
            self._sizes[w] = 0
            self._left[w] = 0
        self._sizes[w] += need
        self._left[w] += 1
        self._total += need

    # -- reading

    def peek(self):
        """The oldest undelivered record's data (bytes), or None."""
        while self._head is None and self._segs:
            n = self._segs[0]
            with open(self._path(n), "rb") as f:
                f.seek(self._roff)
                hdr = f.read(HEADER_LEN)
                if len(hdr) == HEADER_LEN:
                    ln, crc = struct.unpack(HEADER, hdr)
                    data = f.read(ln)
                    if len(data) == ln and binascii.crc32(data) & 0xFFFFFFFF == crc:
                        self._head = data
                        break
            # Spoilt since it was checked: give up the rest of this segment.
            self.recovered_bytes_lost += self._sizes[n] - self._roff
            self._left[n] = 0
            self._roff = self._sizes[n]
            self._settle()
        return self._head

    def _advance(self):
        data = self.peek()
        if data is None:
            return False
        self._roff += HEADER_LEN + len(data)
        self._left[self._segs[0]] -= 1
        self._head = None
        self._settle()
        return True

    def ack(self):
        """Mark the oldest record delivered and save the read position.
        Returns False if there was nothing to mark."""
        if not self._advance():
            return False
        self._save()
        return True

    def drain(self, send, budget):
        """Call `send(data)` for up to `budget` records, oldest first; each is
        marked delivered when `send` returns true, and the first false answer
        stops. The read position is saved once at the end. Returns the number
        delivered."""
        done = 0
        try:
            while done < budget:
                data = self.peek()
                if data is None or not send(data):
                    break
                self._advance()
                done += 1
        finally:
            if done:
                self._save()
        return done

    def pending(self):
        """Records not yet delivered."""
        return sum(self._left.values())

    def __len__(self):
        return self.pending()

    def used(self):
        """Bytes of segments on flash (the state file aside)."""
        return self._total
