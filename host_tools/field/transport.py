"""One way to talk to a board: what provisioning, recording and the demo
(and, later, OTA) do to a MicroPython board on a serial port goes through
`Board`, and what provisioning does to a CircuitPython board, through the
CIRCUITPY drive it shows the computer, goes through `Drive`.

    board = Board("/dev/ttyUSB0")
    info = board.probe(["/boot.py", "/config.json"], ["/citynode"])
    board.put({"/main.py": Path("firmware/main.py")}, ["/main.py"])
    board.soft_reset(b"citynode boot")
    stream = board.stream("import citynode.board.record\\ncitynode.board.record.main()\\n")

`run`, `probe` and `put` drive the real mpremote (its chained commands, in
one connection); `stream` runs code in the raw REPL through mpremote's
serial transport and hands its output back line by line as it comes;
`soft_reset` presses Ctrl-D at the friendly REPL, as a person at the
console would.

    drive = Drive("/media/tech/CIRCUITPY")       # or Drive("CIRCUITPY"): found by its volume label
    info = drive.probe(["/code.py", "/settings.toml"], ["/citynode"])   # boot_out.txt, file hashes
    drive.put({"/code.py": Path("firmware/circuitpython/code.py")}, ["/code.py"])

`Drive.put` writes an update so that a cable pulled at any moment leaves
the old files or the new ones, never a mix: staged, journalled, moved into
place by the update function of the board's own boot.py
(firmware/circuitpython/boot.py), which finishes or drops a cut-off update
at the board's next start. Every failure is a BoardError whose text is one
line.
"""

import ast
import contextlib
import errno
import functools
import hashlib
import io
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from host_tools import mpy
from host_tools.paths import FIRMWARE

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


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(65536), b""):
            h.update(chunk)
    return h.hexdigest()


# ---- a CircuitPython board: its CIRCUITPY drive

DRIVE_LABEL = "CIRCUITPY"  # the volume label CircuitPython gives its drive
LABEL_PREFIX = "label:"  # a port "label:NAME": the mounted drive labelled NAME
# Where a drive is found by its label: udev's links (Linux), the mount table,
# and macOS's mount folders.
BY_LABEL = "/dev/disk/by-label"
MOUNT_TABLE = "/proc/self/mounts"
VOLUMES = "/Volumes"
BOOT_OUT = "boot_out.txt"  # CircuitPython writes its version and board id there when it starts
BOOT_PY = FIRMWARE / "circuitpython" / "boot.py"  # its finish_update finishes an update on the board
UPDATE_FOLDER = ".citynode-update"  # the staging folder, the journal's lines: as finish_update reads them
JOURNAL_HEAD, JOURNAL_END = "citynode-update 1", "end"
# How the board gets its drive back for USB: its boot.py leaves the drive to USB
# for one boot when BOOT (board.BUTTON) is held as it runs, after the status
# LED's purple (the UF2 bootloader's window: BOOT then starts it) and while it
# blinks yellow (CircuitPython's wait for a second RESET, which would start
# its safe mode: that skips boot.py and gives the drive to USB too, without
# the node). Holding BOOT through RESET starts the ESP32-S3's ROM bootloader.
USB_WRITE_ACCESS = ("press RESET, then hold BOOT from when the status LED blinks yellow until the drive "
                    "shows up again (boot.py leaves it writable over USB until the next reset)")
# boot_out.txt's first line: "Adafruit CircuitPython 9.2.1 on 2024-11-20; Adafruit Feather ESP32S3 4MB
# Flash 2MB PSRAM with ESP32S3" (CircuitPython's main.c writes MICROPY_FULL_VERSION_INFO, then "Board ID:").
_VERSION_LINE = re.compile(r"CircuitPython (\d+)(?:\.(\d+))?(?:\.(\d+))?(\S*) on ")
_MOUNT_ESCAPE = re.compile(r"\\([0-7]{3})")  # the kernel writes a space in a mount table as \040
_LABEL_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})")  # udev writes a space in a by-label name as \x20


def _mounts():
    """(device, mount point) of every line of the mount table."""
    try:
        text = Path(MOUNT_TABLE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    unescape = functools.partial(_MOUNT_ESCAPE.sub, lambda m: chr(int(m.group(1), 8)))
    fields = [line.split() for line in text.splitlines()]
    return [(unescape(f[0]), unescape(f[1])) for f in fields if len(f) > 1]


def _labelled(label):
    """The device udev lists with volume label `label`, or None."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(BY_LABEL):
            name = _LABEL_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), os.fsencode(entry.name))
            if name.decode("utf-8", "replace") == label:
                return os.path.realpath(entry.path)
    return None


def find_mounted(label):
    """The folders where a drive labelled `label` is mounted: the mounts of
    the device with that label, and mount folders named after it
    (/media/USER/CIRCUITPY, /Volumes/CIRCUITPY). Sorted."""
    device = _labelled(label)
    found = {point for dev, point in _mounts()
             if Path(point).name == label or (device and os.path.realpath(dev) == device)}
    if Path(VOLUMES, label).is_dir():
        found.add(str(Path(VOLUMES, label)))
    return sorted(found)


def drive_folder(port, port_hint=None):
    """The folder of the drive `port` names: a folder, or DRIVE_LABEL or
    "label:NAME", the one drive mounted with that volume label."""
    hint = " (%s)" % port_hint if port_hint else ""
    if port == DRIVE_LABEL or port.startswith(LABEL_PREFIX):
        label = port[len(LABEL_PREFIX):] if port.startswith(LABEL_PREFIX) else port
        found = find_mounted(label)
        if len(found) == 1:
            return Path(found[0])
        if found:
            raise BoardError("%d drives labelled %s are mounted (%s): give the board's own folder instead%s"
                             % (len(found), label, ", ".join(found), hint))
        device = _labelled(label)
        if device:
            raise BoardError("the drive labelled %s (%s) is not mounted: mount it (udisksctl mount -b %s) or "
                             "give its folder%s" % (label, device, device, hint))
        raise BoardError("no drive labelled %s is mounted: plug in the board (running CircuitPython) and let "
                         "the computer mount its drive, or give the drive's folder%s" % (label, hint))
    if not Path(port).is_dir():
        raise BoardError("%s is not a folder: give the board's mounted %s drive, as its folder, %s or "
                         "%sNAME%s" % (port, DRIVE_LABEL, DRIVE_LABEL, LABEL_PREFIX, hint))
    return Path(port)


def read_only(folder):
    """The line for a drive this computer may not write."""
    return ("%s is mounted read-only: the board's boot.py gave its filesystem to the code; to give it to "
            "USB, %s, then run again" % (folder, USB_WRITE_ACCESS))


@dataclass
class DriveInfo:
    """What a CircuitPython drive says of its board (boot_out.txt) and holds."""

    root: Path
    release: str  # "9.2.1", "9.0.0-beta.2"
    version: tuple  # (9, 2, 1)
    board_id: str  # boot_out.txt's "Board ID:"
    writable: bool
    files: dict = field(default_factory=dict)  # drive path -> SHA-256 hex, or None when missing
    update: str | None = None  # what the probe did with a cut-off update: "finished" or "dropped"

    def describe(self):
        return "CircuitPython %s on %s" % (self.release, self.board_id)


def parse_boot_out(root, text):
    """The DriveInfo in boot_out.txt's `text` (files not read yet)."""
    lines = text.splitlines()
    m = _VERSION_LINE.search(lines[0]) if lines else None
    ids = [ln[len("Board ID:"):].strip() for ln in lines if ln.startswith("Board ID:")]
    if m is None or not ids or not ids[0]:
        raise BoardError("%s does not start with CircuitPython's version and Board ID lines (%r); press the "
                         "board's RESET button so CircuitPython writes it anew"
                         % (Path(root, BOOT_OUT), text.strip()[:120]))
    version = tuple(int(g) for g in m.groups()[:3] if g is not None)
    release = ".".join(map(str, version)) + m.group(4)
    return DriveInfo(root=root, release=release, version=version, board_id=ids[0], writable=False)


def update_source(boot_py=BOOT_PY):
    """The source of finish_update in `boot_py` (firmware/circuitpython/
    boot.py): the one function that carries out (or drops) an update's
    journal, on the board at its start and here on the drive; None if the
    file has none."""
    text = Path(boot_py).read_text(encoding="utf-8")
    for node in ast.parse(text, str(boot_py)).body:
        if isinstance(node, ast.FunctionDef) and node.name == "finish_update":
            return ast.get_source_segment(text, node)
    return None


@functools.cache
def _finish_update():
    scope = {}
    exec(compile(update_source(), str(BOOT_PY), "exec"), scope)
    return scope["finish_update"]


class _DriveFS:
    """The file operations of an update, for `Drive.put` and finish_update:
    os's own, each one synced to the drive (the file, then its folder)
    before the next starts, so the drive sees them in this order."""

    stat = staticmethod(os.stat)
    listdir = staticmethod(os.listdir)

    def mkdir(self, path):
        os.mkdir(path)
        self._synced(path)

    def rmdir(self, path):
        os.rmdir(path)
        self._synced(path)

    def remove(self, path):
        os.remove(path)
        self._synced(path)

    def rename(self, src, dst):
        os.replace(src, dst)
        self._synced(src, dst)

    def write(self, path, data):
        """A new file `path` holding `data`, its missing folders made first."""
        missing = []
        folder = os.path.dirname(path)
        while not os.path.isdir(folder):
            missing.append(folder)
            folder = os.path.dirname(folder)
        for folder in reversed(missing):
            self.mkdir(folder)
        with open(path, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        self._synced(path)

    def _synced(self, *paths):
        """The folders holding `paths` synced: the step is on the drive."""
        for folder in sorted({os.path.dirname(p) for p in paths}):
            fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


class Drive:
    """A CircuitPython board through the drive it shows this computer (its
    CIRCUITPY filesystem), named by `port` (see `drive_folder`); `port_hint`
    says where the port came from, for the line shown when it is wrong."""

    def __init__(self, port, port_hint=None):
        self.root = drive_folder(port, port_hint)

    def identify(self):
        """The board's CircuitPython and board id (boot_out.txt), and whether
        this computer may write the drive."""
        try:
            text = Path(self.root, BOOT_OUT).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            raise BoardError("%s has no %s, so it is not a CircuitPython drive (CircuitPython writes it "
                             "when it starts); give the board's %s drive" % (self.root, BOOT_OUT, DRIVE_LABEL)
                             ) from None
        except OSError as e:
            raise BoardError("cannot read %s: %s" % (Path(self.root, BOOT_OUT), e.strerror)) from None
        info = parse_boot_out(self.root, text)
        info.writable = (not os.statvfs(self.root).f_flag & os.ST_RDONLY) and os.access(self.root, os.W_OK)
        return info

    def probe(self, paths, folders):
        """`identify`, then the SHA-256 of `paths` (drive paths, "/code.py")
        and of every file under `folders`. An update cut off on a writable
        drive is finished or dropped first, as the board's boot.py would."""
        info = self.identify()
        if info.writable:
            try:
                info.update = _finish_update()(str(self.root) + "/", _DriveFS())
            except OSError as e:
                raise BoardError(self._failed("settling the last update", e)) from None
        for p in paths:
            local = self._local(p)
            info.files[p] = sha256_file(local) if local.is_file() else None
        for folder in folders:
            for dirpath, _dirs, names in os.walk(self._local(folder)):
                for name in names:
                    local = Path(dirpath, name)
                    info.files["/" + local.relative_to(self.root).as_posix()] = sha256_file(local)
        return info

    def put(self, files, paths, remove=()):
        """Write `paths` (drive paths; `files` maps each to its local file)
        and remove `remove`, as one update: every file staged under
        UPDATE_FOLDER, then the journal, then the moves, by finish_update.
        boot.py is moved first here, where a rename replaces a file in one
        step: from then on the board finishes a cut-off update itself. The
        journal lists it last: the board, which must remove a file before
        renaming over it, replaces its own boot.py only when all the rest is
        in place."""
        fs = _DriveFS()
        root = str(self.root) + "/"
        stage = root + UPDATE_FOLDER + "/"
        order = sorted(paths, key=lambda p: (p == "/boot.py", p))
        lines = [JOURNAL_HEAD] + ["del " + p.lstrip("/") for p in remove] + \
            ["put " + p.lstrip("/") for p in order] + [JOURNAL_END]
        try:
            for p in order:
                fs.write(stage + p.lstrip("/"), Path(files[p]).read_bytes())
            fs.write(stage + "journal.tmp", ("\n".join(lines) + "\n").encode())
            fs.rename(stage + "journal.tmp", stage + "journal")
            if "/boot.py" in order:
                fs.rename(stage + "boot.py", root + "boot.py")
            _finish_update()(root, fs)
        except OSError as e:
            raise BoardError(self._failed("writing the update", e)) from None

    def _local(self, path):
        return Path(self.root, path.lstrip("/"))

    def _failed(self, what, e):
        if e.errno == errno.EROFS:
            return read_only(self.root)
        return ("%s on %s failed: %s; the drive keeps the old files or gets the whole new set (the board's "
                "boot.py settles a cut-off update when it starts, or the next run does)" % (
                    what, self.root, e.strerror or e))
