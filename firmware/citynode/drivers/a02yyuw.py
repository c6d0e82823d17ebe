"""DFRobot A02YYUW (and JSN-SR04T in its UART automatic-output mode)
ultrasonic ranger on a UART: frames in, the core's samples out.

    uart = machine.UART(2, 9600, rx=16, tx=17)
    sonar = A02YYUW(uart)
    sonar.read_mm()          # 1953: the latest distance waiting in the UART
    sonar.sample()           # {"distance_mm": [1953, 1951, 0, ...]} or {"fault": "no_answer"}

The part measures by itself and sends a 4-byte frame every 100 ms or so
(9600 baud, 8N1):

    0xFF  high byte  low byte  checksum = (0xFF + high + low) & 0xFF

distance in mm = high * 256 + low. When it sees nothing it reports 0 or a
value past its range (e.g. 0xFFFE); anything above `max_mm` (4500) or 0 is
a missing reading here, never a number.

Reading: the bytes waiting in the UART are parsed and the newest valid
frame wins. The parser looks for the 0xFF header and checks the checksum;
on a failure it moves on by one byte only, so a 0xFF inside the data
(distance 0x01FF is the frame FF 01 FF FF) never costs the sync for good.
A checksum-valid frame whose high byte is 0xFF (only the part's "nothing
seen" markers have one) is dropped for the frame one byte further on when
that one is valid too: its header was a data byte. Up to 3 bytes of a frame
cut by the end of the buffer are kept for the next read.

Everything is bounded, for the node's watchdog: a read makes at most
`timeout_ms / 10 + 1` polls of the UART, 10 ms apart, and each poll handles
only the bytes `any()` reported; a backlog longer than `max_frames` frames
is skipped unparsed (only the newest frames matter). The buffer is
allocated once.

Faults, as `DriverError.fault` and in `sample()`:
    no_answer   no byte at all within `timeout_ms`
    bad_frames  bytes came, but not one valid frame

Runs unchanged under MicroPython and CPython.
"""


from citynode.drivers import DriverError, const
from citynode.drivers import sleep_ms as default_sleep_ms

_HEADER = const(0xFF)
_FRAME = const(4)
_POLL_MS = const(10)  # a 4-byte frame takes 4.2 ms at 9600 baud
_MAX_MM = const(4500)


class A02YYUW:
    """One UART ranger. `uart` is machine.UART-like (`any()`,
    `readinto(buf, nbytes)`); `sleep_ms` replaces the clock (default
    `time.sleep_ms`), e.g. with an emulator's."""

    def __init__(self, uart, timeout_ms=300, max_frames=8, max_mm=_MAX_MM, sleep_ms=None):
        self.uart = uart
        self.timeout_ms = timeout_ms
        self.max_mm = max_mm
        self.sleep_ms = sleep_ms or default_sleep_ms
        self._polls = timeout_ms // _POLL_MS + 1
        self._buf = bytearray(max_frames * _FRAME + _FRAME - 1)
        self._mv = memoryview(self._buf)
        self._held = 0  # bytes of a cut frame at the start of _buf
        self._lost = False  # skipping bytes since the last valid frame
        self._found = False
        self._mm = None
        self._framed = 0
        self._garbled = 0
        self.stats = {"frames": 0, "checksum_errors": 0, "resyncs": 0}

    def read_mm(self):
        """The newest distance in mm, or None when the newest frame says the
        part sees nothing (0 or above `max_mm`). Raises DriverError."""
        self._found = False
        heard = False
        for i in range(self._polls):
            if i:
                self.sleep_ms(_POLL_MS)
            if self._poll():
                heard = True
                if self._found:
                    return self._mm
        raise DriverError("bad_frames" if heard else "no_answer")

    def burst(self, n=5):
        """`n` readings in mm, one per fresh frame, None for a missing one.

        After a silent read the part is taken as gone and the rest of the
        burst is None without waiting."""
        out = []
        self._framed = 0
        self._garbled = 0
        for _ in range(n):
            try:
                mm = self.read_mm()
            except DriverError as e:
                out.append(None)
                if e.fault == "no_answer":
                    break
                self._garbled += 1
            else:
                self._framed += 1
                out.append(mm)
        while len(out) < n:
            out.append(None)
        return out

    def sample(self, n=5):
        """The core's sample: `{"distance_mm": [...]}` with 0 for a missing
        reading, or `{"fault": "no_answer"}` / `{"fault": "bad_frames"}`
        when no valid frame came at all."""
        mm = self.burst(n)
        if not self._framed:
            return {"fault": "bad_frames" if self._garbled else "no_answer"}
        return {"distance_mm": [0 if m is None else m for m in mm]}

    # -- parsing -------------------------------------------------------------

    def _skip(self):
        if not self._lost:
            self._lost = True
            self.stats["resyncs"] += 1

    def _poll(self):
        """Read and parse what is waiting; the number of bytes read."""
        uart = self.uart
        avail = uart.any()
        if not avail:
            return 0
        buf = self._buf
        size = len(buf)
        held = self._held
        if held + avail > size:
            # More than the buffer holds: the oldest bytes (and any cut frame
            # held from before them) go unparsed.
            held = 0
            drop = avail - size
            while drop > 0:
                got = uart.readinto(buf, drop if drop < size else size)
                if not got:
                    break
                drop -= got
                avail -= got
        room = size - held
        got = uart.readinto(self._mv[held:], avail if avail < room else room)
        if not got:
            self._held = held
            return 0
        n = held + got
        i = 0
        last = -1
        st = self.stats
        while i + _FRAME <= n:
            if buf[i] != _HEADER:
                self._skip()
                i += 1
                continue
            hi = buf[i + 1]
            lo = buf[i + 2]
            if (_HEADER + hi + lo) & 0xFF != buf[i + 3]:
                st["checksum_errors"] += 1
                self._skip()
                i += 1
                continue
            if hi == _HEADER and i + _FRAME < n and _valid(buf, i + 1):
                self._skip()
                i += 1
                continue
            st["frames"] += 1
            self._lost = False
            last = (hi << 8) | lo
            i += _FRAME
        while i < n and buf[i] != _HEADER:
            self._skip()
            i += 1
        held = n - i
        for k in range(held):
            buf[k] = buf[i + k]
        self._held = held
        if last >= 0:
            self._found = True
            self._mm = last if 0 < last <= self.max_mm else None
        return got


def _valid(buf, i):
    return buf[i] == _HEADER and (_HEADER + buf[i + 1] + buf[i + 2]) & 0xFF == buf[i + 3]
