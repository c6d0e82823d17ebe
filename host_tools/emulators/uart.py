"""A02YYUW byte stream: an emulated UART with a DFRobot A02YYUW (or a
JSN-SR04T in UART automatic-output mode) on its RX line, on a virtual
millisecond clock.

    u = A02YYUWStream()
    u.feed(1953, 1950)                 # two good frames, 100 ms apart
    u.garbage(b"\\x12\\x34")             # then line noise
    u.bad_checksum(1000)               # a frame whose checksum is wrong
    u.truncated(1000)                  # the first 3 bytes of a frame only
    u.silence()                        # a period with nothing on the line
    sonar = A02YYUW(u, sleep_ms=u.sleep_ms)

Every helper queues one transmission per reading (`silence(n)` n empty
ones); the part sends one every `period_ms` (100 ms) of the virtual clock,
the first straight away. The clock moves only with `sleep_ms` / `advance`
(give the driver `sleep_ms`); `flush()` delivers everything still queued at
once, like a backlog that built up while the node was busy. The frame, as
the datasheet gives it: 0xFF, high byte, low byte, (0xFF + high + low) &
0xFF; the distance in mm is high * 256 + low.

The UART side behaves like `machine.UART`: `any()` counts the bytes
waiting, `read(n)` and `readinto(buf, nbytes)` return what is there without
waiting and None when nothing is, `write` records what the driver sends
(`written`). The RX buffer holds `rxbuf` bytes (256, the ESP32 default);
bytes arriving into a full one are lost and counted in `overflows`.

MicroPython-compatible.
"""

PERIOD_MS = 100
RXBUF = 256
HEADER = 0xFF


def frame(mm):
    """The 4 bytes the part sends for a distance of `mm` (0..65535)."""
    if mm < 0 or mm > 0xFFFF:
        raise ValueError("the part sends 0..65535 mm, not %r" % (mm,))
    hi = mm >> 8
    lo = mm & 0xFF
    return bytes((HEADER, hi, lo, (HEADER + hi + lo) & 0xFF))


class A02YYUWStream:
    """machine.UART-like: `any()`, `read(n)`, `readinto(buf, nbytes)`, `write(buf)`."""

    def __init__(self, period_ms=PERIOD_MS, rxbuf=RXBUF):
        self.now_ms = 0
        self.period_ms = period_ms
        self.rxbuf = rxbuf
        self.overflows = 0
        self.sent = 0  # transmissions delivered to RX
        self.written = bytearray()
        self._rx = bytearray()
        self._slots = []
        self._due = 0

    # -- what the part sends ------------------------------------------------

    def _queue(self, data):
        if not self._slots and self._due < self.now_ms:
            self._due = self.now_ms
        self._slots.append(bytes(data))

    def feed(self, *mm):
        """One good frame per distance (mm)."""
        for d in mm:
            self._queue(frame(d))

    def garbage(self, data):
        """Raw bytes on the line (noise, a glitch, another talker)."""
        self._queue(data)

    def bad_checksum(self, mm):
        """A frame for `mm` whose checksum byte is wrong."""
        f = bytearray(frame(mm))
        f[3] = (f[3] + 1) & 0xFF
        self._queue(f)

    def truncated(self, mm, keep=3):
        """The first `keep` (1-3) bytes of a frame for `mm`."""
        self._queue(frame(mm)[:keep])

    def silence(self, periods=1):
        """`periods` transmission slots with nothing on the line."""
        for _ in range(periods):
            self._queue(b"")

    def put(self, data):
        """Bytes straight into the RX buffer, now."""
        self._rx_in(data)

    def flush(self):
        """Deliver everything still queued, now."""
        while self._slots:
            self._send()

    def queued(self):
        """Transmissions not delivered yet."""
        return len(self._slots)

    # -- the clock ----------------------------------------------------------

    def advance(self, ms):
        self.now_ms += ms

    def sleep_ms(self, ms):
        self.now_ms += ms

    def ticks_ms(self):
        return self.now_ms

    def _send(self):
        self._rx_in(self._slots.pop(0))
        self._due += self.period_ms
        self.sent += 1

    def _release(self):
        while self._slots and self._due <= self.now_ms:
            self._send()

    def _rx_in(self, data):
        room = self.rxbuf - len(self._rx)
        if len(data) > room:
            self.overflows += len(data) - room
            data = data[:room]
        self._rx.extend(data)

    # -- the UART -----------------------------------------------------------

    def init(self, *args, **kwargs):
        pass

    def deinit(self):
        pass

    def any(self):
        self._release()
        return len(self._rx)

    def read(self, nbytes=None):
        self._release()
        if not self._rx:
            return None
        if nbytes is None or nbytes > len(self._rx):
            nbytes = len(self._rx)
        out = bytes(self._rx[:nbytes])
        self._rx = self._rx[nbytes:]
        return out

    def readinto(self, buf, nbytes=None):
        self._release()
        if not self._rx:
            return None
        if nbytes is None or nbytes > len(buf):
            nbytes = len(buf)
        if nbytes > len(self._rx):
            nbytes = len(self._rx)
        for i in range(nbytes):
            buf[i] = self._rx[i]
        self._rx = self._rx[nbytes:]
        return nbytes

    def write(self, buf):
        self.written.extend(buf)
        return len(buf)
