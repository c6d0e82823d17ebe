"""Reader for citynode recordings (docs/recording-format.md): JSON Lines,
a header then one sample or ground-truth record per line.

Runs on MicroPython and CPython alike. It streams: one line in memory at a
time. Every line is checked as it is read; the first malformed one raises
`RecordingError` naming the file, the line and the field, and reading
stops there — replay never guesses past a bad line.
"""

import json

from citynode import sensors as registry

FORMAT = "citynode-recording"
VERSIONS = (1, 2)  # 2 adds bus-level samples (the header's "bus")

_HEADER_REQUIRED = ("format", "version", "node", "board", "start", "sensors")
_HEADER_OPTIONAL = ("site", "mount", "units", "plan", "notes", "generator", "duration_s", "bus")
# Parts whose raw bus values a version 2 recording may carry (each sensor
# type says which part, if any, serves it: citynode.sensors).
_PARTS = ("bme280", "qmc5883l")
_U16 = (0, 65535)
_S16 = (-32768, 32767)
# BME280 trimming words T1..T3, P1..P9, H1..H6: the range of each register.
_BME280_WORDS = (_U16, _S16, _S16, _U16) + (_S16,) * 8 + ((0, 255), _S16, (0, 255), (-2048, 2047),
                                                       (-2048, 2047), (-128, 127))
_ENV_FIELDS = ("temp_c", "pressure_pa", "humidity_pct")
_MAX_PINGS = 16
# Longest line read, in bytes (LF not counted): a header with many sensors
# stays far below it, and a 96K MicroPython heap holds it.
MAX_LINE = 4096
MAX_START = (1 << 32) - 1  # 2106-02-07 06:28:15 UTC
MAX_T = (1 << 40) - 1  # ms since start: about 34 years
MAX_LEVEL_MM = 100000  # a true water level: 100 m either way of the dry road
_CR_ONLY = "lines end with CR alone: end them with LF or CR LF"
_TOO_BIG = "too large or nested too deeply to parse"
READ_ERROR = "cannot read this line: %s"  # a stream that failed (a compressed file cut short or corrupt)


class RecordingError(Exception):
    """A recording that cannot be read: `str()` is one line, path:line: what."""

    def __init__(self, path, line, message):
        super().__init__("%s:%d: %s" % (path, line, message))
        self.path = path
        self.line = line


def _is_int(v):
    return type(v) is int


def _is_num(v):
    """An int, or a finite float (CPython's json reads NaN and Infinity)."""
    return type(v) is int or (type(v) is float and v - v == 0)


class Reader:
    """Iterate over a recording's records (dicts) after its header.

    `header` is the parsed, checked header; `sensors` maps each sensor id to
    its type. Sample records carry `s` (sensor id) and truth records carry
    `truth` (the sensor id the truth is about); both carry `t`, integer
    milliseconds since `header["start"]` (UTC epoch seconds).
    `stream` (a binary file object) is read instead of opening `path`;
    `path` then only names it in errors.
    """

    def __init__(self, path, chunk=512, stream=None):
        self.path = path
        self.line = 0
        self._chunk = chunk
        self._buf = b""
        self._pos = 0
        self._last_t = 0
        self._f = open(path, "rb") if stream is None else stream  # noqa: SIM115 - closed at the end or by close()
        try:
            raw = self._next_line()
            if raw is None:
                self.line = 1
                self._fail("empty file: no header")
            self.header = self._check_header(self._parse(raw))
        except Exception:
            self._f.close()
            raise
        self.sensors = {}
        self._kinds = {}  # sensor id: its type's module
        for s in self.header["sensors"]:
            self.sensors[s["id"]] = s["type"]
            self._kinds[s["id"]] = registry.get(s["type"])
        self.parts = {}
        for sid in self.header.get("bus", {}):
            self.parts[sid] = self.header["bus"][sid]["part"]

    def close(self):
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __iter__(self):
        while True:
            raw = self._next_line()
            if raw is None:
                self.close()
                return
            if not raw.strip():
                continue
            yield self._check_record(self._parse(raw))

    def check(self, record, line):
        """Check `record` (a parsed dict) as line `line` of this file, after
        the records read or checked before it (so time order too); returns
        it, or raises RecordingError. For a writer that checks every record
        before writing it (`citynode record`)."""
        self.line = line
        return self._check_record(record)

    def _fail(self, message):
        raise RecordingError(self.path, self.line, message)

    def _next_line(self):
        """The next line's bytes without its LF, or None at the end. Linear
        in the file's size: each byte is searched for LF once, and a line is
        refused as soon as it is known to pass MAX_LINE bytes."""
        buf = self._buf
        pos = self._pos
        i = buf.find(b"\n", pos)
        if 0 <= i <= pos + MAX_LINE:
            self._pos = i + 1
            self.line += 1
            return buf[pos:i]
        parts = [buf[pos:]]  # a line across chunks: joined once, at its end
        size = len(buf) - pos
        while size <= MAX_LINE:
            try:
                chunk = self._f.read(self._chunk)
            except (OSError, EOFError) as e:
                raise RecordingError(self.path, self.line + 1, READ_ERROR % e) from None
            if not chunk:
                self._buf = b""
                self._pos = 0
                if not size:
                    return None
                self.line += 1
                return self._join(parts)
            i = chunk.find(b"\n")
            if i >= 0:
                self._buf = chunk
                self._pos = i + 1
                parts.append(chunk[:i])
                size += i
                if size <= MAX_LINE:
                    self.line += 1
                    return self._join(parts)
            else:
                parts.append(chunk)
                size += len(chunk)
        self.line += 1
        if sum(p.count(b"\r") for p in parts) > 1:  # CR LF ends a line with one CR
            self._fail(_CR_ONLY)
        self._fail("line longer than %d bytes" % MAX_LINE)

    def _join(self, parts):
        try:
            return b"".join(parts)
        except MemoryError:  # MicroPython: no room for the whole line on this heap
            self._fail(_TOO_BIG)

    def _parse(self, raw):
        try:
            obj = json.loads(raw)
        except ValueError:
            if b"\r" in raw.strip():
                self._fail(_CR_ONLY)
            self._fail("not a JSON object (truncated or corrupt line)")
        except (RuntimeError, MemoryError):  # CPython's recursion limit; MicroPython's heap
            self._fail(_TOO_BIG)
        if type(obj) is not dict:
            self._fail("not a JSON object")
        return obj

    def _check_header(self, h):
        for key in _HEADER_REQUIRED:
            if key not in h:
                self._fail("header: missing field '%s'" % key)
        if h["format"] != FORMAT:
            self._fail("header: field 'format' is %r, expected %r" % (h["format"], FORMAT))
        if not _is_int(h["version"]) or h["version"] not in VERSIONS:
            self._fail("header: field 'version': unsupported recording version %s (this reader reads %s)"
                       % (json.dumps(h["version"]), ", ".join(str(v) for v in VERSIONS)))
        for key in h:
            if key not in _HEADER_REQUIRED and key not in _HEADER_OPTIONAL:
                self._fail("header: unknown field '%s'" % key)
        if not _is_int(h["start"]) or not 0 <= h["start"] <= MAX_START:
            self._fail("header: field 'start' must be UTC epoch seconds (an integer from 0 to %d)"
                       % MAX_START)
        for key in ("node", "board"):
            if type(h[key]) is not str:
                self._fail("header: field '%s' must be a string" % key)
        sensors = h["sensors"]
        if type(sensors) is not list or not sensors:
            self._fail("header: field 'sensors' must be a non-empty list")
        seen = []
        for i, s in enumerate(sensors):
            where = "header: field 'sensors[%d]'" % i
            if type(s) is not dict:
                self._fail(where + " must be an object")
            if type(s.get("id")) is not str or not s["id"]:
                self._fail(where + ".id must be a non-empty string")
            if s.get("type") not in registry.TYPES:
                self._fail(where + ".type must be one of " + ", ".join(registry.TYPES))
            if s["id"] in seen:
                self._fail(where + ".id %r is used twice" % s["id"])
            seen.append(s["id"])
        if "bus" in h:
            self._check_bus(h)
        return h

    def _check_bus(self, h):
        bus = h["bus"]
        if h["version"] < 2:
            self._fail("header: field 'bus' needs recording version 2")
        if type(bus) is not dict:
            self._fail("header: field 'bus' must be an object")
        types = {}
        for s in h["sensors"]:
            types[s["id"]] = s["type"]
        for sid in bus:
            where = "header: field 'bus.%s'" % sid
            b = bus[sid]
            if sid not in types:
                self._fail(where + ": no such sensor")
            if type(b) is not dict or b.get("part") not in _PARTS:
                self._fail(where + ".part must be one of " + ", ".join(_PARTS))
            if b["part"] != registry.get(types[sid]).PART:
                self._fail(where + ": a %s part cannot serve sensor type %s" % (b["part"], types[sid]))
            if b["part"] == "bme280":
                c = b.get("calibration")
                if type(c) is not list or len(c) != 18 or not all(
                        _is_int(v) and lo <= v <= hi
                        for v, (lo, hi) in zip(c, _BME280_WORDS)):  # noqa: B905 - no strict= in MicroPython
                    self._fail(where + ".calibration must be the 18 trimming words T1..P9, H1..H6, "
                               "each in its register's range")
                self._only_in(b, ("part", "calibration"), where)
            else:
                if not _is_int(b.get("range_gauss", 2)) or b.get("range_gauss", 2) not in (2, 8):
                    self._fail(where + ".range_gauss must be 2 or 8")
                self._only_in(b, ("part", "range_gauss"), where)

    def _only_in(self, obj, allowed, where):
        for key in obj:
            if key not in allowed:
                self._fail("%s: unknown field '%s'" % (where, key))

    def _check_record(self, r):
        t = r.get("t")
        if not _is_int(t) or not 0 <= t <= MAX_T:
            if "format" in r:
                self._fail("field 'format': a header is only allowed on line 1")
            self._fail("field 't' must be an integer from 0 to %d (ms since start)" % MAX_T)
        if t < self._last_t:
            self._fail("field 't': time goes backwards (%d after %d)" % (t, self._last_t))
        self._last_t = t
        if "s" in r:
            sid = r["s"]
            kind = self._kinds.get(sid) if type(sid) is str else None
            if kind is None:
                self._fail("field 's': unknown sensor %r" % (sid,))
            self._check_sample(r, kind)
        elif "truth" in r:
            sid = r["truth"]
            kind = self._kinds.get(sid) if type(sid) is str else None
            if kind is None:
                self._fail("field 'truth': unknown sensor %r" % (sid,))
            self._check_truth(r, kind)
        else:
            self._fail("record has neither 's' (a sample) nor 'truth'")
        return r

    def _only(self, r, allowed):
        for key in r:
            if key not in allowed:
                self._fail("unknown field '%s'" % key)

    def _check_sample(self, r, kind):
        if "fault" in r:
            if type(r["fault"]) is not str:
                self._fail("field 'fault' must be a string")
            self._only(r, ("t", "s", "fault"))
            return
        part = self.parts.get(r["s"])
        if part is not None:
            if part not in r:
                self._fail("field '%s' missing: the header's bus gives this sensor's raw values" % part)
            self._check_raw(r, part)
        elif kind.SAMPLE == "air":
            for key in _ENV_FIELDS:
                if not _is_num(r.get(key)):
                    self._fail("field '%s' must be a number" % key)
            self._only(r, ("t", "s") + _ENV_FIELDS)
        elif kind.SAMPLE == "mag":
            m = r.get("mag")
            if type(m) is not list or len(m) != 3 or not (_is_int(m[0]) and _is_int(m[1]) and _is_int(m[2])):
                self._fail("field 'mag' must be a list of 3 integers (raw counts)")
            self._only(r, ("t", "s", "mag"))
        elif "distance_mm" in r and self.header["version"] >= 2:
            d = r["distance_mm"]
            if (type(d) is not list or not d or len(d) > _MAX_PINGS
                    or not all(_is_int(v) and v >= 0 for v in d)):
                self._fail("field 'distance_mm' must be a list of 1 to %d integers (mm, 0 = no reading)"
                           % _MAX_PINGS)
            self._only(r, ("t", "s", "distance_mm"))
        else:
            e = r.get("echo_us")
            if type(e) is not list or not e or len(e) > _MAX_PINGS:
                self._fail("field 'echo_us' must be a list of 1 to %d integers (µs)" % _MAX_PINGS)
            for v in e:
                if not _is_int(v) or v < 0:
                    self._fail("field 'echo_us' must hold non-negative integers (µs, 0 = no echo)")
            self._only(r, ("t", "s", "echo_us"))

    def _check_raw(self, r, part):
        v = r[part]
        if part == "bme280":
            if (type(v) is not list or len(v) != 3 or not all(_is_int(x) and x >= 0 for x in v)
                    or v[0] >= 1 << 20 or v[1] >= 1 << 20 or v[2] >= 1 << 16):
                self._fail("field 'bme280' must be the raw [adc_T, adc_P, adc_H] (20, 20, 16-bit integers)")
        elif type(v) is not list or len(v) != 7 or not all(_is_int(x) and 0 <= x < 256 for x in v):
            self._fail("field 'qmc5883l' must be the 7 bytes of registers 0x00-0x06")
        self._only(r, ("t", "s", part))

    def _check_truth(self, r, kind):
        if kind.TRUTH == "level_mm":
            v = r.get("level_mm")
            if not _is_num(v) or not -MAX_LEVEL_MM <= v <= MAX_LEVEL_MM:
                self._fail("field 'level_mm' must be a number from %d to %d (mm)"
                           % (-MAX_LEVEL_MM, MAX_LEVEL_MM))
            self._only(r, ("t", "truth", "level_mm", "note"))
        elif kind.TRUTH is None:
            self._fail("field 'truth': no ground truth is defined for %s sensors" % kind.NAME)
        else:
            if type(r.get("occupied")) is not bool:
                self._fail("field 'occupied' must be true or false")
            self._only(r, ("t", "truth", "occupied", "note"))
        if "note" in r and type(r["note"]) is not str:
            self._fail("field 'note' must be a string")
