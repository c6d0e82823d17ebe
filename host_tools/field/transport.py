"""One way to talk to a MicroPython board on a serial port: what
provisioning, recording and the demo (and, later, OTA and CircuitPython
provisioning) do to a board goes through `Board`.

    board = Board("/dev/ttyUSB0")
    info = board.probe(["/boot.py", "/config.json"], ["/citynode"])
    board.put({"/main.py": Path("firmware/main.py")}, ["/main.py"])
    board.soft_reset(b"citynode boot")
    stream = board.stream("import citynode.board.record\\ncitynode.board.record.main()\\n")

`run`, `probe` and `put` drive the real mpremote (its chained commands, in
one connection); `stream` runs code in the raw REPL through mpremote's
serial transport and hands its output back line by line as it comes;
`soft_reset` presses Ctrl-D at the friendly REPL, as a person at the
console would. Every failure is a BoardError whose text is one line.
"""

import contextlib
import io
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from host_tools import mpy

PROBE_MARK = "citynode-probe"
PROBE_TIMEOUT_S = 30
UPLOAD_TIMEOUT_S = 300
RESET_TIMEOUT_S = 15.0
# sys.implementation._mpy >> 10: MicroPython's native architectures, in order.
ARCHES = ("none", "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp", "xtensa",
          "xtensawin", "rv32imc", "rv64imc")
CTRL_C = b"\x03"
EOT = b"\x04"  # the raw REPL ends normal output, then error output, with it


class BoardError(Exception):
    """The board could not be reached or did not do what was asked;
    `str()` is one line for the user."""


# ---- what runs on the board

# Prints the MicroPython it is, then the SHA-256 of each file asked for (None
# when missing) and of every file under the folders asked for.
_PROBE = """\
import sys, os, hashlib, binascii
def _h(p):
    try:
        f = open(p, 'rb')
    except OSError:
        return None
    d = hashlib.sha256()
    b = bytearray(512)
    m = memoryview(b)
    while True:
        n = f.readinto(b)
        if not n:
            break
        d.update(m[:n])
    f.close()
    return binascii.hexlify(d.digest()).decode()
def _walk(d, out):
    try:
        es = list(os.ilistdir(d))
    except OSError:
        return
    for e in es:
        if e[1] == 0x4000:
            _walk(d + '/' + e[0], out)
        else:
            out.append(d + '/' + e[0])
_i = sys.implementation
_f = %r
for _d in %r:
    _walk(_d, _f)
print(%r, _i.name, '.'.join([str(x) for x in _i.version[:3]]), getattr(_i, '_mpy', 0), sys.platform)
for _p in _f:
    print(%r, _h(_p), _p)
"""

# Before the copies: stale files go, folders are made.
_PREPARE = """\
import os
for _p in %r:
    os.remove(_p)
for _d in %r:
    try:
        os.mkdir(_d)
    except OSError:
        pass
"""


@dataclass
class BoardInfo:
    """What a board said about itself and its flash."""

    name: str
    version: tuple
    mpy: int  # sys.implementation._mpy: version | sub-version << 8 | arch << 10
    platform: str
    files: dict = field(default_factory=dict)  # path -> SHA-256 hex, or None when missing

    @property
    def mpy_version(self):
        return (self.mpy & 0xFF, (self.mpy >> 8) & 3)

    @property
    def arch(self):
        i = self.mpy >> 10
        return ARCHES[i] if i < len(ARCHES) else "arch #%d" % i

    def describe(self):
        return "%s %s, .mpy %s, %s (%s)" % ("MicroPython" if self.name == "micropython" else self.name,
                                            ".".join(map(str, self.version)), mpy_text(self.mpy_version),
                                            self.arch, self.platform)


def mpy_text(v):
    """(6, 3) -> "6.3"; (6, 0) -> "6" (how mpy-cross names them)."""
    return "%d.%d" % v if v[1] else "%d" % v[0]


def parse_probe(text):
    """The BoardInfo in the probe's output."""
    info = None
    for line in text.splitlines():
        parts = line.strip().split(" ", 2)
        if len(parts) < 3 or parts[0] != PROBE_MARK:
            continue
        if info is None:
            name, version, rest = parts[1], parts[2].split(" ")[0], parts[2].split(" ")[1:]
            info = BoardInfo(name=name, version=tuple(int(x) for x in version.split(".") if x.isdigit()),
                             mpy=int(rest[0]), platform=rest[1] if len(rest) > 1 else "")
        else:
            info.files[parts[2]] = None if parts[1] == "None" else parts[1]
    if info is None:
        raise BoardError("the board did not answer the probe: %r" % text.strip()[-200:])
    return info


# ---- the board


class Board:
    """The board on `port`. `port_hint` says where the port came from, for
    the line shown when it cannot be opened."""

    def __init__(self, port, port_hint=None):
        self.port = port
        self.port_hint = port_hint

    def command(self, steps, resume=False):
        """The mpremote command line for `steps` (each a list of arguments),
        chained with "+" into one connection."""
        cmd = ["connect", self.port] + (["resume"] if resume else [])
        for i, step in enumerate(steps):
            cmd += (["+"] if i else []) + list(step)
        return cmd

    def run(self, steps, timeout=PROBE_TIMEOUT_S, resume=False):
        """Run mpremote with `steps` in one connection; returns its stdout.
        `resume` skips the soft reset mpremote does first."""
        try:
            cmd = [mpy.mpremote_binary()] + self.command(steps, resume)
        except mpy.ToolMissing as e:
            raise BoardError(str(e)) from None
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise BoardError("mpremote on %s took more than %d s; is a board on that port?"
                             % (self.port, timeout)) from None
        if p.returncode != 0:
            lines = [ln.strip() for ln in (p.stderr + p.stdout).splitlines() if ln.strip()]
            last = lines[-1] if lines else "exit status %d" % p.returncode
            if "failed to access" in last or "no device found" in last:
                last += "; check the port" + (" (%s)" % self.port_hint if self.port_hint else "")
            raise BoardError("mpremote on %s failed: %s" % (self.port, last))
        return p.stdout

    def probe(self, paths, folders):
        """What the board runs and the hashes of `paths` and of every file
        under `folders` (one mpremote exec; it soft-resets the board first,
        which stops a running program)."""
        code = _PROBE % (list(paths), list(folders), PROBE_MARK, PROBE_MARK)
        return parse_probe(self.run([["exec", code]]))

    def _put_steps(self, files, paths, remove=(), then=None):
        """The mpremote steps of `put`: remove `remove`, make the folders,
        copy `paths` (board paths; `files` maps each to its local file,
        which bears the target's name), then exec `then`."""
        folders = sorted({str(Path(p).parent) for p in paths} - {"/"}, key=lambda d: d.count("/"))
        steps = [["exec", _PREPARE % (list(remove), folders)]] if remove or folders else []
        by_folder = {}
        for p in paths:
            by_folder.setdefault(str(Path(p).parent), []).append(str(files[p]))
        for folder, locals_ in sorted(by_folder.items()):
            steps.append(["fs", "cp", *locals_, ":" if folder == "/" else ":%s/" % folder.lstrip("/")])
        if then:
            steps.append(["exec", then])
        return steps

    def put(self, files, paths, remove=(), then=None, resume=True, timeout=UPLOAD_TIMEOUT_S):
        """Copy files to the board in one mpremote connection (see
        `_put_steps`); `resume`: without mpremote's soft reset first."""
        self.run(self._put_steps(files, paths, remove, then), timeout=timeout, resume=resume)

    def soft_reset(self, mark, timeout=RESET_TIMEOUT_S):
        """Ctrl-D at the friendly REPL (where mpremote leaves the board): a
        soft reset that runs boot.py and then main.py. Returns once the
        board has printed `mark`."""
        import serial

        try:
            con = serial.Serial(self.port, 115200, timeout=0.05)
        except (serial.SerialException, OSError) as e:
            raise BoardError("cannot open %s for the soft reset: %s" % (self.port, e)) from None
        with con:
            def read_until(token, seconds):
                buf = b""
                end = time.monotonic() + seconds
                while token not in buf and time.monotonic() < end:
                    buf += con.read(4096)
                return token in buf

            con.write(b"\r")
            if not read_until(b">>> ", 5):
                raise BoardError("no REPL prompt on %s after mpremote; reset the board by hand" % self.port)
            con.write(b"\x04")
            if not read_until(mark, timeout):
                raise BoardError("no '%s' on %s within %.0f s of the soft reset; look at its console: "
                                 "mpremote connect %s repl" % (mark.decode(), self.port, timeout, self.port))

    def stream(self, code, timeout):
        """Soft-reset (a clean heap), then run `code` in the raw REPL without
        waiting for its end; returns the Stream of its output."""
        s = Stream(self.port)
        try:
            s.start(code, timeout)
        except BoardError:
            s.close()
            raise
        return s


class Stream:
    """Code running in the raw REPL, through mpremote's serial transport:
    its output split into lines, the normal output ending at the first EOT
    and the error output at the second (`stage`: "out", "err", "done")."""

    def __init__(self, port):
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport

        self.port = port
        self._error_type = TransportError
        if not os.path.exists(port):
            raise BoardError("%s: no such port" % port)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                self.transport = SerialTransport(port)
        except TransportError:
            raise BoardError("%s: cannot open the port (another program has it, or it is not a serial "
                             "port)" % port) from None
        self.serial = self.transport.serial
        self.stage = "out"
        self.error_text = b""
        self.lines = 0
        self._buf = b""
        self.stop_sent = 0
        self.stop_at = None

    def start(self, code, timeout):
        self.serial.timeout = timeout  # mpremote reads a pseudo-terminal without waiting to see data
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # mpremote prints what it got on failure
                self.transport.enter_raw_repl(soft_reset=True, timeout_overall=timeout)
                self.transport.exec_raw_no_follow(code)
        except self._error_type:
            raise BoardError("%s: the board does not answer (no MicroPython raw REPL within %g s)"
                             % (self.port, timeout)) from None
        self.serial.timeout = 0

    def fileno(self):
        return self.serial.fileno()

    def read(self):
        """The whole lines that arrived: [(line number, text)]; at the end
        of the normal output, `stage` moves on."""
        try:
            data = self.serial.read(max(1, self.serial.in_waiting))
        except OSError as e:
            raise BoardError("%s: the port went away (%s)" % (self.port, e)) from None
        out = []
        while data:
            if self.stage == "out":
                i = data.find(EOT)
                self._buf += data if i < 0 else data[:i]
                data = b"" if i < 0 else data[i + 1:]
                *whole, self._buf = self._buf.split(b"\n")
                for raw in whole:
                    self.lines += 1
                    out.append((self.lines, raw.rstrip(b"\r")))
                if i >= 0:
                    if self._buf:
                        self.lines += 1
                        out.append((self.lines, self._buf.rstrip(b"\r")))
                    self._buf = b""
                    self.stage = "err"
            elif self.stage == "err":
                i = data.find(EOT)
                self.error_text += data if i < 0 else data[:i]
                data = b""
                if i >= 0:
                    self.stage = "done"
            else:
                data = b""
        return out

    def write(self, data):
        try:
            self.serial.write(data)
        except OSError as e:
            raise BoardError("%s: the port went away (%s)" % (self.port, e)) from None

    def interrupt(self):
        """Ctrl-C: a KeyboardInterrupt in the running code."""
        self.stop_sent += 1
        self.stop_at = time.monotonic()
        self.write(CTRL_C)

    def error(self):
        """The last line of what the code raised, or None."""
        text = self.error_text.decode("utf-8", "replace").strip()
        return text.splitlines()[-1] if text else None

    def close(self):
        with contextlib.suppress(Exception):  # the port may be gone already
            if self.stage == "done":
                self.transport.exit_raw_repl()
            self.transport.close()
