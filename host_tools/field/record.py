"""`citynode record`: capture a bench board's raw readings into a recording,
with the ground truth a technician types while it runs.

    from host_tools.field import record
    summary = record.record("/dev/ttyUSB0", "bench.jsonl", duration_s=600, note="bay 3, ruler at kerb")

The board runs its record mode (firmware/citynode/board/record.py), started over
the raw REPL (host_tools.field.transport's stream): one marked JSON line per
raw sample. Each sample becomes a record of the file as it comes, written
and flushed at once, so whatever stops the capture (the end of the board's
recording, `duration_s`, a Ctrl-C, a kill, a lost port) leaves a valid
recording of everything received so far. A ground-truth note (`o BAY`,
`f BAY`, `w [SENSOR] MM`) is stamped with the board's own tick: the host
asks the board, and the answer comes in order with the samples.

Details, the line protocol and the annotation syntax: docs/recording.md.
"""

import io
import json
import os
import re
import select
import signal
import sys
import threading
import time
import tty
from collections import deque
from pathlib import Path

from citynode import sensors as registry
from citynode import ticks
from citynode.board.record import ASK, MARK
from citynode.board.recording import FORMAT, Reader, RecordingError
from host_tools.field.transport import Board, BoardError

RECORD_CODE = "import citynode.board.record\ncitynode.board.record.main()\n"
BOARD_TIMEOUT_S = 10  # for the raw REPL, and then for the board's first line
STOP_TIMEOUT_S = 5  # after a Ctrl-C, for the board's last line (then one more Ctrl-C, then give up)
FSYNC_S = 1.0  # at most this long between two fsyncs of the file: what a power cut may cost
PLAUSIBLE_EPOCH = 1577836800  # 2020-01-01: a board clock before that was never set
UART_RANGERS = ("a02yyuw",)  # ranging parts that measure distances themselves: distance_mm, version 2

ANNOTATION_HELP = "o BAY (occupied), f BAY (free), w [SENSOR] MM (water level)"


class RecordError(Exception):
    """A capture that cannot start or went wrong; `str()` is one line."""


# ---- ground truth typed by the technician


def _number(text):
    try:
        v = float(text)
    except ValueError:
        return None
    if v != v or v in (float("inf"), float("-inf")):
        return None
    return int(v) if v == int(v) else v


def _pick(token, ids):
    """A sensor by its id or its number in `ids` (1-based), or None."""
    if token in ids:
        return token
    if token.isdigit() and 1 <= int(token) <= len(ids):
        return ids[int(token) - 1]
    return None


def parse_note(text, sensors):
    """A ground-truth note as typed -> a truth record without `t`.

    `o BAY`, `f BAY`: the bay (its id, or its number among the bays) is
    occupied / free; `w [SENSOR] MM`: the water under a water sensor (which
    may be left out when there is only one) is MM deep. Words after those
    become the record's `note`. `occupied`, `free` and `water` may be
    spelled out. ValueError (one line) when the text is not such a note."""
    m = re.match(r"\s*([A-Za-z]+)\s*(.*)$", text)
    if not m:
        raise ValueError("%r: expected %s" % (text.strip(), ANNOTATION_HELP))
    word, rest = m.group(1).lower(), m.group(2).split()
    bays = [s["id"] for s in sensors if registry.is_bay(s["type"])]
    waters = [s["id"] for s in sensors if s["type"] == "water"]
    if word in ("o", "occupied", "f", "free"):
        if not bays:
            raise ValueError("%r: this node has no bay" % text.strip())
        if not rest and len(bays) == 1:
            rest = [bays[0]]
        sid = _pick(rest[0], bays) if rest else None
        if sid is None:
            raise ValueError("%r: which bay? one of %s (or its number, 1 to %d)"
                             % (text.strip(), ", ".join(bays), len(bays)))
        rec = {"truth": sid, "occupied": word[0] == "o"}
    elif word in ("w", "water"):
        if not waters:
            raise ValueError("%r: this node has no water sensor" % text.strip())
        if len(rest) >= 2 and _pick(rest[0], waters) and _number(rest[1]) is not None:
            sid, level, rest = _pick(rest[0], waters), _number(rest[1]), rest[2:]
        elif rest and len(waters) == 1 and _number(rest[0]) is not None:
            sid, level, rest = waters[0], _number(rest[0]), rest[1:]
        else:
            raise ValueError("%r: expected w [SENSOR] MM, the level in mm (SENSOR: one of %s)"
                             % (text.strip(), ", ".join(waters)))
        if level < 0:
            raise ValueError("%r: a water level is 0 mm or more" % text.strip())
        return _with_note({"truth": sid, "level_mm": level}, rest)
    else:
        raise ValueError("%r: unknown note %r: expected %s" % (text.strip(), word, ANNOTATION_HELP))
    return _with_note(rec, rest[1:])


def _with_note(rec, words):
    if words:
        rec["note"] = " ".join(words)
    return rec


def describe_truth(rec):
    if "occupied" in rec:
        what = "%s %s" % (rec["truth"], "occupied" if rec["occupied"] else "free")
    else:
        what = "%s water %s mm" % (rec["truth"], rec["level_mm"])
    return what + (" (%s)" % rec["note"] if "note" in rec else "")


# ---- the board's console


def board_error(stream):
    """What record mode raised on the board, as one line, or None."""
    last = stream.error()
    if last is None:
        return None
    if "ImportError" in last and "citynode" in last:
        return ("%s: the board has no citynode firmware with record mode (%s); copy it with "
                "mpremote connect %s fs cp -r firmware/citynode :" % (stream.port, last, stream.port))
    return "%s: the board stopped: %s" % (stream.port, last)


# ---- the file


def _message(e):
    """A RecordingError's text without its `path:line: `."""
    return str(e)[len("%s:%d: " % (e.path, e.line)):]


def _seconds(ms):
    return ms // 1000 if ms % 1000 == 0 else ms / 1000


class LineError(Exception):
    """A line from the board that cannot go into the recording: why."""


class Capture:
    """Board lines in, recording lines out: the header from the board's
    `hello`, samples with the board's ticks turned into ms since t = 0,
    truth records. The recording reader checks every record before it is
    written; each line is flushed once written, and fsynced at least every
    FSYNC_S. Lines that fail are kept in `<output>.rejected` (JSON Lines:
    board line number, why, the text), never in the recording."""

    def __init__(self, port, output, duration_s=None, note=None, board=None):
        self.port = port
        self.output = Path(output)
        self.rejected_path = Path(str(output) + ".rejected")
        self.duration_ms = None if duration_s is None else ticks.ms(duration_s)
        self.note = note
        self.board = board
        self.header = None
        self.counts = {}
        self.last = {}
        self.last_truth = {}
        self.truth = 0
        self.rejected = 0
        self.beyond = 0  # samples at or past the duration, not written
        self.t = 0  # ms since t = 0: the last sample's (or truth's) time
        self.tick = None  # the board's tick at self.t
        self._f = None
        self._rej = None
        self._synced = 0.0
        self._checker = None

    def start(self, hello, line):
        """Write the header from the board's `hello` (board line `line`)."""
        try:
            sensors = hello["sensors"]
            periods = hello["periods_ms"]
            epoch, clock = hello["epoch"], "board"
            if type(epoch) is not int or epoch < PLAUSIBLE_EPOCH:  # the board's clock was never set
                epoch, clock = int(time.time()), "host"
            board = self.board or ("virtual" if hello["hal"] == "sim" else hello["machine"])
            h = {"format": FORMAT, "version": 1, "node": hello["node"], "board": board, "start": epoch,
                 "sensors": sensors, "site": hello["site"],
                 "plan": {"recorded_every_s": {sid: _seconds(periods[sid]) for sid in sorted(periods)}},
                 "generator": {"name": "citynode record", "fw": hello["fw"], "hal": hello["hal"],
                               "port": self.port, "clock": clock}}
            self.tick = hello["tick"]
            if type(self.tick) is not int:
                raise TypeError
            if any(s.get("driver") in UART_RANGERS for s in sensors):
                h["version"] = 2
        except (KeyError, TypeError, AttributeError):
            raise RecordError("%s:%d: the board's hello line lacks a field or has a wrong one: %s"
                              % (self.port, line, json.dumps(hello))) from None
        if self.note:
            h["notes"] = self.note
        text = json.dumps(h, separators=(",", ":"))
        try:
            self._checker = Reader(self.port, stream=io.BytesIO(text.encode()))
        except RecordingError as e:
            raise RecordError("%s:%d: the board's config makes no valid recording header: %s"
                              % (self.port, line, _message(e))) from None
        self.header = h
        self.counts = {s["id"]: 0 for s in sensors}
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.rejected_path.unlink(missing_ok=True)  # an earlier capture's
        self._f = open(self.output, "w", encoding="utf-8", newline="\n")  # noqa: SIM115 - closed by close()
        self._write(text)

    def _write(self, text):
        self._f.write(text + "\n")
        self._f.flush()
        now = time.monotonic()
        if now - self._synced >= FSYNC_S:
            os.fsync(self._f.fileno())
            self._synced = now

    def _check(self, rec, line):
        try:
            self._checker.check(rec, line)
        except RecordingError as e:
            raise LineError(_message(e)) from None

    def sample(self, line, obj):
        """A sample line from the board (parsed). False when it lies at or
        past the duration (not written); LineError when it is malformed."""
        tick = obj.get("t")
        if type(tick) is not int or not 0 <= tick <= ticks.MASK:
            raise LineError("field 't' must be the board's tick, an integer from 0 to 2**30 - 1")
        d = ticks.diff(tick, self.tick)
        if d < 0:
            raise LineError("tick %d comes before the previous one, %d" % (tick, self.tick))
        t = self.t + d
        if self.duration_ms is not None and t >= self.duration_ms:
            self.beyond += 1
            return False
        rec = {"t": t}
        rec.update((k, v) for k, v in obj.items() if k != "t")
        self._check(rec, line)
        self.t, self.tick = t, tick
        self._write(json.dumps(rec, separators=(",", ":")))
        self.counts[rec["s"]] = self.counts.get(rec["s"], 0) + 1
        self.last[rec["s"]] = rec
        return True

    def add_truth(self, rec, line, tick=None):
        """Write truth record `rec` (without `t`) at board tick `tick`; at
        the last time seen when `tick` is None or lies before it."""
        t = self.t
        if type(tick) is int and ticks.diff(tick, self.tick) >= 0:
            t, self.tick = self.t + ticks.diff(tick, self.tick), tick
        rec = dict({"t": t}, **rec)
        self._check(rec, line)
        self.t = t
        self._write(json.dumps(rec, separators=(",", ":")))
        self.truth += 1
        self.last_truth[rec["truth"]] = rec
        return rec

    def reject(self, line, raw, why):
        """Keep a line that cannot go into the recording, with why."""
        self.rejected += 1
        if self._rej is None:
            self._rej = open(self.rejected_path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()
        text = raw.decode("utf-8", "replace")
        self._rej.write(json.dumps({"line": line, "error": why, "text": text}) + "\n")
        self._rej.flush()

    def close(self):
        for f in (self._f, self._rej):
            if f is not None:
                f.flush()
                os.fsync(f.fileno())
                f.close()
        self._f = self._rej = None


# ---- what the technician types and sees


class KeyInput:
    """Keys on a terminal: a note edited in place, taken with Enter
    (Backspace deletes, Esc clears). The terminal is in cbreak mode
    meanwhile: keys come at once, Ctrl-C still interrupts."""

    def __init__(self, stream):
        import termios

        self.fd = stream.fileno()
        self._termios = termios
        self._saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd, termios.TCSANOW)  # keep what was typed before
        self.text = ""
        self.eof = False

    def fileno(self):
        return self.fd

    def read(self):
        """The notes completed by these keys: [(None, text)]."""
        done = []
        data = os.read(self.fd, 64).decode("utf-8", "replace")
        if not data:
            self.eof = True
        if "\x1b" in data:  # Esc, or a cursor key's sequence: start over
            self.text = ""
            return done
        for ch in data:
            if ch in "\r\n":
                if self.text.strip():
                    done.append((None, self.text))
                self.text = ""
            elif ch in "\x7f\b":
                self.text = self.text[:-1]
            elif ch.isprintable():
                self.text += ch
        return done

    def close(self):
        self._termios.tcsetattr(self.fd, self._termios.TCSADRAIN, self._saved)


class LineInput:
    """Notes as lines from a pipe or a file (stdin), one per line, taken as
    each line comes; blank lines and lines starting with # are skipped."""

    def __init__(self, stream):
        self.fd = stream.fileno()
        self.text = ""
        self.eof = False
        self.line = 0
        self._buf = b""

    def fileno(self):
        return self.fd

    def read(self):
        """The notes of the lines completed: [(line number, text)]."""
        data = os.read(self.fd, 4096)
        if not data:
            self.eof = True
            data = b"\n" if self._buf else b""
        *whole, self._buf = (self._buf + data).split(b"\n")
        out = []
        for raw in whole:
            self.line += 1
            text = raw.decode("utf-8", "replace").strip()
            if text and not text.startswith("#"):
                out.append((self.line, text))
        return out

    def close(self):
        pass


def _clock(t_ms):
    s = t_ms // 1000
    return "%d:%02d:%02d" % (s // 3600, s // 60 % 60, s % 60)


def _value(rec):
    if rec is None:
        return "-"
    for key in ("fault", "echo_us", "distance_mm", "mag"):
        if key in rec:
            return "%s %s" % (key, rec[key])
    return "%.2f °C, %.0f Pa, %.1f %%RH" % (rec["temp_c"], rec["pressure_pa"], rec["humidity_pct"])


class View:
    """A live table (rich) on a terminal, or progress lines on a pipe;
    messages go above the table, or as lines (problems to stderr)."""

    def __init__(self, capture, out, live, interactive):
        self.capture = capture
        self.out = out
        self.interactive = interactive
        self.messages = deque(maxlen=3)  # the board's own (unmarked) lines
        self.input = None
        self.live = None
        self._t0 = self._last = time.monotonic()
        if live:
            from rich.console import Console
            from rich.live import Live

            self.live = Live(console=Console(file=out), auto_refresh=False)

    def say(self, line, problem=False):
        if self.live is not None:
            self.live.console.print(line, markup=False, highlight=False)
        else:
            print(line, file=sys.stderr if problem else self.out, flush=True)

    def board_says(self, text):
        self.messages.append(text)
        if self.live is None:
            print("board: %s" % text, file=sys.stderr, flush=True)

    def start(self):
        if self.live is not None:
            self.live.start()

    def render(self):
        from rich.markup import escape
        from rich.table import Table

        c = self.capture
        h = c.header or {}
        title = "citynode record %s -> %s   node %s   t %s   %d samples, %d truth, %d rejected" % (
            c.port, c.output, h.get("node", "?"), _clock(c.t), sum(c.counts.values()), c.truth, c.rejected)
        table = Table(title=escape(title), title_justify="left")
        for col in ("#", "sensor", "type", "samples", "last value", "truth"):
            table.add_column(col)
        bays = 0
        for s in h.get("sensors", []):
            number = ""
            if s["type"].startswith("bay_"):
                bays += 1
                number = str(bays)
            truth = c.last_truth.get(s["id"])
            cells = (number, s["id"], s["type"], str(c.counts.get(s["id"], 0)), _value(c.last.get(s["id"])),
                     "%s at %s" % (describe_truth(truth), _clock(truth["t"])) if truth else "-")
            table.add_row(*(escape(cell) for cell in cells))
        lines = ["board: " + m for m in self.messages]
        if self.interactive:
            lines.append("notes: %s; Enter takes it, Ctrl-C stops" % ANNOTATION_HELP)
            lines.append("> " + (self.input.text if self.input is not None else ""))
        table.caption = escape("\n".join(lines)) or None
        table.caption_justify = "left"
        return table

    def update(self, force=False):
        now = time.monotonic()
        if self.live is not None:
            if force or now - self._last >= 0.25:
                self.live.update(self.render(), refresh=True)
                self._last = now
        elif now - self._last >= 5.0 or force:
            c = self.capture
            if c.header is not None:
                print("[%5.1fs] t %s: %d samples (%s), %d truth, %d rejected" % (
                    now - self._t0, _clock(c.t), sum(c.counts.values()),
                    ", ".join("%s %d" % kv for kv in c.counts.items()), c.truth, c.rejected),
                    file=self.out, flush=True)
            self._last = now

    def stop(self):
        if self.live is not None:
            self.update(force=True)
            self.live.stop()


# ---- the capture


class Recorder:
    """One capture: the board's lines into the file, the technician's
    notes stamped by the board, until the board's `end`."""

    def __init__(self, port, capture, view):
        self.port = port
        self.capture = capture
        self.view = view
        self.link = None
        self.notes = None
        self.pending = deque()  # notes asked about, waiting for the board's tick
        self.end = None  # "done", "duration", "stopped"
        self.refused = 0
        self.unstamped = 0
        self.board_samples = None  # what the board says it sent

    def run(self, stop, notes_in, interactive, timeout):
        link = self.link = Board(self.port).stream(RECORD_CODE, timeout)
        hello_by = time.monotonic() + timeout
        self.view.start()
        while link.stage != "done":
            now = time.monotonic()
            if stop.is_set() and not link.stop_sent and link.stage == "out":
                self.end = self.end or "stopped"
                link.interrupt()
            if link.stop_sent and now - link.stop_at > STOP_TIMEOUT_S:
                if link.stop_sent >= 2:
                    raise RecordError("%s: the board did not stop after two Ctrl-C" % self.port)
                link.interrupt()
            if self.capture.header is None and now > hello_by:
                raise RecordError("%s: the board did not start recording within %g s" % (self.port, timeout))
            if self.capture.header is not None and self.notes is None and notes_in is not None:
                self.notes = self.view.input = KeyInput(notes_in) if interactive else LineInput(notes_in)
            waiting = [link] + ([self.notes] if self.notes is not None and not self.notes.eof else [])
            ready, _, _ = select.select(waiting, [], [], 0.1)
            if link in ready:
                for n, raw in link.read():
                    if self.board_line(n, raw) and not link.stop_sent:
                        self.end = "duration"
                        link.interrupt()
            if self.notes is not None and self.notes in ready:
                for n, text in self.notes.read():
                    self.take_note(n, text)
            self.view.update()
        error = board_error(link)
        if error is not None:
            raise RecordError(error)

    def take_note(self, n, text):
        try:
            self.pending.append(parse_note(text, self.capture.header["sensors"]))
        except ValueError as e:
            self.refused += 1
            self.view.say("%s: note not taken: %s" % ("stdin:%d" % n if n else "keys", e), problem=True)
            return
        if self.link.stage == "out":
            self.link.write(ASK.encode())

    def board_line(self, n, raw):
        """One line from the board; True when the duration is reached."""
        capture = self.capture
        if not raw.startswith(MARK.encode()):
            self.view.board_says(raw.decode("utf-8", "replace"))
            return False
        try:
            obj = json.loads(raw[len(MARK):])
        except ValueError:
            obj = None
        try:
            if type(obj) is not dict:
                raise LineError("not a JSON object after %r (cut or corrupt)" % MARK.strip())
            if "s" in obj:
                if capture.header is None:
                    raise LineError("a sample before the board's hello")
                return not capture.sample(n, obj)
            if "hello" in obj and capture.header is None:
                capture.start(obj["hello"], n)
                h = capture.header
                self.view.say("recording %s (board %s, hal %s) from %s into %s" % (
                    h["node"], h["board"], h["generator"]["hal"], self.port, capture.output))
            elif "now" in obj:
                if not self.pending or capture.header is None:
                    raise LineError("the board's tick, but no note waits for one")
                rec = capture.add_truth(self.pending.popleft(), n, obj["now"])
                self.view.say("truth at %s: %s" % (_clock(rec["t"]), describe_truth(rec)))
            elif "end" in obj:
                self.board_samples = obj.get("samples")
                self.end = self.end or obj["end"]
            elif "error" in obj:
                if capture.header is None:
                    raise RecordError("%s: the board cannot record: %s" % (self.port, obj["error"]))
                raise RecordError("%s:%d: the board stopped recording: %s" % (self.port, n, obj["error"]))
            else:
                raise LineError("a marked line this recorder does not know")
        except LineError as e:
            capture.reject(n, raw, str(e))
            self.view.say("%s:%d: line from the board not recorded: %s (kept in %s)"
                          % (self.port, n, e, capture.rejected_path), problem=True)
        return False

    def finish(self):
        """Stamp the notes the board never answered, close everything."""
        if self.notes is not None:
            self.notes.close()
        capture = self.capture
        while capture.header is not None and self.pending:
            rec = self.pending.popleft()
            rec["note"] = (rec.get("note", "") + " (stamped at the end: the board did not answer)").strip()
            capture.add_truth(rec, self.link.lines if self.link is not None else 0)
            self.unstamped += 1
        self.view.stop()
        capture.close()
        if self.link is not None:
            self.link.close()


def record(port, output, duration_s=None, note=None, board=None, force=False, notes_in=None, out=None,
           live=None, timeout=BOARD_TIMEOUT_S):
    """Capture the board on `port` into the recording `output` until the
    board's recording ends, `duration_s` seconds of board time are
    recorded, or a Ctrl-C (SIGINT or SIGTERM). `notes_in`: where ground
    truth notes come from (a terminal: keys; a pipe or file: one per line;
    None: none). `live`: a rich live table on `out` (default: when `out`
    is a terminal), otherwise progress lines. Returns the summary dict.
    RecordError (one line) for what the user can fix; if it comes after
    recording began, `error.summary` holds the summary. The file is a
    valid recording at every moment."""
    out = out or sys.stdout
    output = Path(output)
    if str(output).endswith(".gz"):
        raise RecordError("%s: record writes plain JSON Lines (name it .jsonl; gzip it afterwards)" % output)
    if output.exists() and not force:
        raise RecordError("%s exists: choose another name, or `force` to overwrite it" % output)
    if duration_s is not None and not duration_s > 0:
        raise RecordError("`duration_s` must be above 0 seconds")
    interactive = notes_in is not None and notes_in.isatty()
    if live is None:
        live = hasattr(out, "isatty") and out.isatty()
    capture = Capture(port, output, duration_s, note, board)
    rec = Recorder(port, capture, View(capture, out, live, interactive))
    stop = threading.Event()
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handlers[sig] = signal.signal(sig, lambda *_: stop.set())
    error = None
    try:
        rec.run(stop, notes_in, interactive, timeout)
    except RecordError as e:
        error = e
    except BoardError as e:
        error = RecordError(str(e))
    finally:
        for sig, h in handlers.items():
            signal.signal(sig, h)
        rec.finish()
    if capture.header is None:
        if error is None and rec.end == "stopped":
            error = RecordError("%s: stopped before the board began recording" % port)
        raise error or RecordError("%s: the board ended without recording anything" % port)
    summary = {"output": str(output), "end": "error" if error else rec.end or "done",
               "samples": sum(capture.counts.values()), "per_sensor": capture.counts, "truth": capture.truth,
               "refused": rec.refused, "unstamped": rec.unstamped, "rejected": capture.rejected,
               "rejected_file": str(capture.rejected_path) if capture.rejected else None,
               "beyond_duration": capture.beyond, "board_samples": rec.board_samples,
               "recorded_s": capture.t / 1000}
    if error is not None:
        error.summary = summary
        raise error
    return summary


# ---- the command line


def format_summary(s):
    per = ", ".join("%s %d" % kv for kv in s["per_sensor"].items())
    lines = ["wrote %s: %d samples (%s), truth records %d, %.1f s of recording; ended: %s"
             % (s["output"], s["samples"], per, s["truth"], s["recorded_s"], s["end"])]
    if s["beyond_duration"]:
        lines.append("  %d samples past --duration were not written" % s["beyond_duration"])
    if s["rejected"]:
        lines.append("  %d lines from the board were not recorded; kept in %s" % (s["rejected"],
                                                                                  s["rejected_file"]))
    if s["refused"]:
        lines.append("  %d notes were not taken (see above)" % s["refused"])
    if s["unstamped"]:
        lines.append("  %d notes the board never answered were stamped at the end" % s["unstamped"])
    if _lost(s):
        lines.append("  the board sent %d samples, %d arrived: lines were lost on the way"
                     % (s["board_samples"], _arrived(s)))
    return lines


def _arrived(s):
    return s["samples"] + s["rejected"] + s["beyond_duration"]


def _lost(s):
    """How many sample lines the board says it sent that never arrived. The
    board counts a line after printing it, so a Ctrl-C landing between the
    two leaves its count one short of what arrived: that is no loss."""
    if s["board_samples"] is None:
        return 0
    return max(0, s["board_samples"] - _arrived(s))


def complete(s):
    return not (s["rejected"] or s["refused"] or _lost(s))
