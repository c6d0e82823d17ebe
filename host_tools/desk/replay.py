"""Replay a recording through the firmware core, on CPython or inside the
real MicroPython interpreter, and score it against the recording's truth.

Both runtimes run the same `citynode.board.replay` module from `firmware/`
(with the desk's emulated parts handed in, host_tools.emulators.replay); the
MicroPython one runs as a subprocess with its heap capped like an ESP32's
and its messages read back as JSON lines. Like provisioning a board, the
MicroPython run imports the core compiled by mpy-cross.
"""

import io
import json
import os
import subprocess
import tempfile
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from citynode.board import replay as core_replay
from citynode.board.recording import MAX_LINE, READ_ERROR, Reader, RecordingError
from host_tools import mpy
from host_tools.desk import score
from host_tools.emulators.replay import parts
from host_tools.paths import FIRMWARE, ROOT

DEFAULT_HEAP = "96K"  # the free heap of an ESP32 without PSRAM, after boot
RUNTIMES = ("cpython", "micropython")


class ReplayError(Exception):
    """A replay that could not run; `str()` is one line for the user."""


class Result:
    """What one replay produced: the recording's header, every message the
    node would publish as (t_ms, topic, payload), the ground truth, the
    sample counts and, where truth allows, the scores."""

    def __init__(self, path, runtime, header, messages, truth, stats):
        self.path = str(path)
        self.runtime = runtime
        self.header = header
        self.messages = messages
        self.truth = truth
        self.stats = stats
        self.scores = score.score(header, messages, truth)

    @property
    def events(self):
        return [(t, p) for t, topic, p in self.messages if topic == "event"]

    @property
    def timeline(self):
        """The messages with their ticks unwrapped to ms since the
        recording's start (`score.unwrap`): what to plot and print."""
        return score.unwrap(self.header, self.messages)

    def summary(self):
        """What an aggregate needs of this replay (small, picklable)."""
        return {"recording": self.path, "node": self.header.get("node"), "stats": self.stats,
                "events": len(self.events), "messages": len(self.messages), "scores": self.scores}


RECORDING_SUFFIXES = (".jsonl", ".jsonl.gz")


def recordings_in(paths):
    """The recordings named by `paths`: files as given, folders searched
    (with their subfolders) for .jsonl and .jsonl.gz files, sorted. Raises
    ReplayError for a path that does not exist or a folder without any."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.name.endswith(RECORDING_SUFFIXES))
            if not found:
                raise ReplayError("%s: no recordings (.jsonl, .jsonl.gz) in this folder" % p)
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise ReplayError("%s: no such recording or folder" % p)
    return out


def _summary_of(job):
    path, runtime, heap = job
    try:
        return run(path, runtime, heap).summary()
    except ReplayError as e:
        return {"recording": str(path), "error": str(e)}


def run_many(paths, runtime="cpython", heap=DEFAULT_HEAP, workers=2, progress=None):
    """Replay every recording of `paths` with `workers` processes; returns
    (summaries in the order of `paths`, aggregate table of their scores).
    A recording that cannot be replayed gives a summary with `error` (one
    line) instead of scores. `progress(done, total, path)` is called as
    each replay ends."""
    jobs = [(p, runtime, heap) for p in paths]
    done = {}
    if workers <= 1 or len(jobs) == 1:
        for i, job in enumerate(jobs):
            done[i] = _summary_of(job)
            if progress:
                progress(len(done), len(jobs), job[0])
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(_summary_of, job): i for i, job in enumerate(jobs)}
            for fut in as_completed(futures):
                done[futures[fut]] = fut.result()
                if progress:
                    progress(len(done), len(jobs), jobs[futures[fut]][0])
    summaries = [done[i] for i in range(len(jobs))]
    table = score.aggregate([(s["recording"], s["scores"]) for s in summaries if "scores" in s])
    return summaries, table


class _Gunzip(io.RawIOBase):
    """A gzip file's data, read in order. Unlike gzip.GzipFile, which drops
    what it decompressed last when the file is cut short (how much depends on
    the size of the reads), it gives every byte before the cut, then raises
    EOFError; corrupt data raises OSError."""

    CHUNK = 1 << 16  # compressed bytes read at a time
    OUT = 1 << 20  # decompressed at a time, at most (a file of zeros inflates a thousandfold)

    def __init__(self, path):
        super().__init__()
        self._f = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._d = zlib.decompressobj(31)  # 31: a gzip header and trailer
        self._pending = b""  # compressed bytes read but not yet decompressed
        self._out = b""  # decompressed bytes, not all handed out yet
        self._at = 0

    def readable(self):
        return True

    def readinto(self, b):
        while self._at >= len(self._out):
            if self._d.eof:
                rest = self._d.unused_data or self._f.read(self.CHUNK)
                if not rest:
                    return 0
                self._d = zlib.decompressobj(31)  # the next member of a concatenated file
                self._pending = rest
            data = self._pending or self._f.read(self.CHUNK)
            if not data:
                raise EOFError("the compressed file ends early (cut short)")
            try:
                self._out = self._d.decompress(data, self.OUT)
            except zlib.error as e:
                raise OSError("corrupt compressed data (%s)" % e) from None
            self._at = 0
            self._pending = self._d.unconsumed_tail
        n = min(len(b), len(self._out) - self._at)
        b[:n] = self._out[self._at:self._at + n]
        self._at += n
        return n

    def close(self):
        self._f.close()
        super().close()


def _open(path):
    """A binary stream of the recording, decompressing `.gz`."""
    if str(path).endswith(".gz"):
        return _Gunzip(path)
    return open(path, "rb")


def read_header(path):
    """The checked header of a recording (only its first line is read);
    raises RecordingError (path:line: what) or OSError."""
    with _open(path) as f, Reader(str(path), stream=f) as reader:
        return reader.header


def read_truth(path):
    """The header and ground-truth records of a recording (checks every line)."""
    truth = []
    with _open(path) as f, Reader(str(path), stream=f) as reader:
        for rec in reader:
            if "truth" in rec:
                truth.append(rec)
        return reader.header, truth


def run(path, runtime="cpython", heap=DEFAULT_HEAP):
    """Replay `path` on `runtime`; returns a `Result`. Raises ReplayError
    with a one-line message (file:line for a bad recording)."""
    path = Path(path)
    if not path.is_file():
        raise ReplayError("%s: no such recording" % path)
    if runtime == "cpython":
        return _run_cpython(path)
    if runtime == "micropython":
        try:
            mpy.check_heap(heap)
        except ValueError as e:
            raise ReplayError(str(e)) from None
        return _run_micropython(path, heap)
    raise ReplayError("unknown runtime %r (choose from %s)" % (runtime, ", ".join(RUNTIMES)))


def _run_cpython(path):
    messages = []
    truth = []
    header = {}

    def publish(t, topic, payload):
        messages.append((t, topic, payload))

    try:
        with _open(path) as f:
            stats = core_replay.replay(str(path), publish, header.update, truth.append, stream=f, parts=parts)
    except RecordingError as e:
        raise ReplayError(str(e)) from None
    except (ValueError, OSError, EOFError) as e:
        raise ReplayError("%s: %s" % (path, e)) from None
    return Result(path, "cpython", header, messages, truth, stats)


def run_micropython_raw(path, heap=DEFAULT_HEAP, firmware=FIRMWARE):
    """Run the firmware replay under MicroPython on a plain (not gzipped)
    recording, importing the core from `firmware` (a folder holding the
    `citynode` package, as .py or .mpy); returns the CompletedProcess
    (stdout: JSON lines)."""
    # After the core: the emulated parts (host_tools) and Adafruit's driver,
    # which a recording of bus-level values replays through.
    env = dict(os.environ, MICROPYPATH=os.pathsep.join((str(firmware), str(ROOT),
                                                         mpy.library_path())))
    cmd = [mpy.micropython_binary(), "-X", "heapsize=%s" % heap, "-m", _entry(path), str(path)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)


def _entry(path):
    """The module MicroPython runs: the firmware's replay, or (for a
    recording of bus-level values, whose header has a `bus`) the same with
    the desk's emulated parts handed in, which costs the heap the parts take."""
    with open(path, "rb") as f:
        head = f.readline(MAX_LINE + 1)
    return "host_tools.emulators.replay" if b'"bus"' in head else "citynode.board.replay"


def plain_copy(path, dst):
    """Write recording `path`, decompressed if it is `.gz`, to `dst`; the
    MicroPython reader reads plain files only. A compressed file cut short
    or corrupt raises the RecordingError the reader would."""
    lines = 0
    with _open(path) as src, open(dst, "wb") as out:
        while True:
            try:
                chunk = src.read(1 << 16)
            except (OSError, EOFError) as e:
                raise RecordingError(str(path), lines + 1, READ_ERROR % e) from None
            if not chunk:
                return Path(dst)
            out.write(chunk)
            lines += chunk.count(b"\n")


def make_slice(src, hours, dst):
    """Write the part of recording `src` (.jsonl or .jsonl.gz) between
    `hours` (a, b) of its day to `dst` as plain JSON Lines, with times
    counted from the slice's start (the header's `start` moves with it, so
    every `ts` is unchanged). The ground truth in force at the slice's start
    is kept, stamped at 0. Returns the new header, the sample count and the
    first and last sample times."""
    lo, hi = int(hours[0] * 3600000), int(hours[1] * 3600000)
    with io.TextIOWrapper(io.BufferedReader(_open(src)), encoding="utf-8") as f:
        header = json.loads(f.readline())
        before = {}
        kept = []
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            t = rec["t"]
            if t >= hi:
                break
            if t < lo:
                if "truth" in rec:
                    before[rec["truth"]] = rec
                continue
            rec["t"] = t - lo
            kept.append(rec)
    header["start"] = header["start"] + lo // 1000
    header["duration_s"] = (hi - lo) // 1000
    header["notes"] = "%s (hours %g to %g of the day)" % (header.get("notes", ""), hours[0], hours[1])
    for rec in before.values():
        rec["t"] = 0
    with open(dst, "w", encoding="utf-8") as out:
        for rec in [header] + list(before.values()) + kept:
            out.write(json.dumps(rec, separators=(",", ":")) + "\n")
    samples = [r["t"] for r in kept if "s" in r]
    return {"header": header, "samples": len(samples), "first": samples[0] if samples else 0,
            "last": samples[-1] if samples else 0}


def _run_micropython(path, heap):
    with tempfile.TemporaryDirectory(prefix="citynode-replay-") as tmp:
        plain = path
        try:
            if str(path).endswith(".gz"):
                plain = plain_copy(path, Path(tmp) / path.name[:-3])
            mpy.compile_package(FIRMWARE / "citynode", Path(tmp) / "lib")
            proc = run_micropython_raw(plain, heap, Path(tmp) / "lib")
        except (mpy.ToolMissing, RecordingError) as e:
            raise ReplayError(str(e)) from None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        last = lines[-1] if lines else "exit status %d" % proc.returncode
        if last.startswith("error: "):
            raise ReplayError(last[len("error: "):].replace(str(plain), str(path)))
        if "MemoryError" in proc.stderr:
            raise ReplayError("%s: MicroPython ran out of memory with a %s heap" % (path, heap))
        raise ReplayError("%s: MicroPython replay failed: %s" % (path, last))
    messages = []
    stats = None
    for line in proc.stdout.splitlines():
        msg = json.loads(line)
        if "stats" in msg:
            stats = msg["stats"]
        else:
            messages.append((msg["t"], msg["topic"], msg["payload"]))
    if stats is None:
        raise ReplayError("%s: MicroPython replay ended without its summary line" % path)
    header, truth = read_truth(path)
    return Result(path, "micropython", header, messages, truth, stats)
