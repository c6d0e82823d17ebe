"""A virtual board: MicroPython's unix port behind a pseudo-terminal, with a
folder of the host as its flash, so `mpremote` drives it as it drives an
ESP32 on a serial port.

    with VirtualBoard("build/flash") as board:
        subprocess.run(["mpremote", "connect", board.port, "exec", "print(1)"])

Two pseudo-terminals are involved. The user's one (`board.port`, a
`/dev/pts/N`) is what mpremote opens; the interpreter's one is the
interpreter's stdin, stdout and stderr. A relay thread copies bytes between
them and does what the unix port does not do the way a board does:

- soft reset: Ctrl-D makes the unix interpreter exit (in the raw REPL as in
  the friendly one), and so does `sys.exit()`. The relay answers as a board:
  it prints ``MPY: soft reboot``, starts a fresh interpreter on the same flash
  and, if the old one was in the raw REPL, puts the new one back in it, so
  the host reads ``raw REPL; CTRL-B to exit`` and ``>`` again;
- boot: every interpreter first runs ``boot.py`` and, unless the reset
  happened in the raw REPL, ``main.py`` from the flash (a board's rules:
  main.py is skipped when boot.py failed);
- Ctrl-C: the unix port only hears SIGINT, so a Ctrl-C from the host while
  the interpreter runs code (and has its interrupt handler installed)
  becomes a SIGINT; at a prompt it goes through as the character it is.

The interpreter sees the flash folder as its root ``/`` (mounted through
``vfs.VfsPosix``), with ``sys.path`` ``['', '.frozen', '/lib']`` as on a board. It is
not a sandbox: code on the virtual board is code running on the host.
Details and differences from an ESP32: docs/virtual-board.md.
"""

import contextlib
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import threading
import time
import tty
from pathlib import Path

from host_tools import mpy

EXIT_ERROR = 2

RAW_PROMPT = b"raw REPL; CTRL-B to exit\r\n"
FRIENDLY_BANNER = b'Type "help()" for more information.\r\n'
SOFT_REBOOT = b"MPY: soft reboot\r\n"

# Printed by the startup code when it begins (MicroPython, not the process
# that hosts it, now owns SIGINT) and once boot.py (and main.py) are done; the
# relay removes both from what the host sees.
_STARTED = b"\x00\x00vboard:started\x00\x00"
_BOOTED = b"\x00\x00vboard:booted\x00\x00"
_RESET = b"\x00\x00vboard:reset\x00\x00"  # boot.py/main.py ended in SystemExit: a soft reset

CTRL_A = b"\x01"
CTRL_C = 0x03

# Bounded waits, in seconds.
_TICK = 0.02                  # relay poll interval
_START_TIMEOUT = 10.0         # start(): interpreter up and running its startup code
_RAW_RESET_TIMEOUT = 10.0     # host input held while a raw-REPL reset completes
_CTRL_C_GRACE = 0.3           # a Ctrl-C waits this long for the interpreter to settle
_CTRL_C_REPEAT = 0.25         # a second SIGINT sooner than this would kill the unix port
_STALE_OUTPUT = 1.0           # output nobody reads for this long is dropped, as on a UART
_MAX_BACKLOG = 1 << 16        # stop reading the interpreter when this much is unsent
_CHILD_EXIT_TIMEOUT = 3.0     # after SIGTERM, before SIGKILL

# Runs in the interpreter's __main__ before its REPL starts (`micropython -i
# -c`). Mounts the flash folder as / (a VfsPosix whose directory listings also
# give sizes, as a board's littlefs does), runs boot.py then main.py in
# __main__'s globals, prints tracebacks without this code's own frames, then
# prints the booted marker. A KeyboardInterrupt while mounting is remembered
# and skips the boot scripts, so a Ctrl-C sent at any moment still lands.
_STARTUP = """\
def _vboard_boot(root, run_main, started, booted, reset):
    import io, os, sys
    sys.stdout.write(started)
    import vfs
    class VfsFlash:
        def __init__(self, root):
            self.fs = vfs.VfsPosix(root)
        def mount(self, readonly, mkfs):
            pass
        def umount(self):
            pass
        def ilistdir(self, path):
            for e in self.fs.ilistdir(path):
                size = 0
                if e[1] != 0x4000:
                    try:
                        size = self.fs.stat(path.rstrip("/") + "/" + e[0])[6]
                    except OSError:
                        pass
                yield (e[0], e[1], e[2], size)
        def open(self, path, mode):
            return self.fs.open(path, mode)
        def chdir(self, path):
            return self.fs.chdir(path)
        def getcwd(self):
            return self.fs.getcwd()
        def mkdir(self, path):
            return self.fs.mkdir(path)
        def remove(self, path):
            return self.fs.remove(path)
        def rename(self, old, new):
            # VfsPosix fails a rename of two absolute paths: give it both
            # relative to the flash root, which names the same files.
            return self.fs.rename(old.lstrip("/"), new.lstrip("/"))
        def rmdir(self, path):
            return self.fs.rmdir(path)
        def stat(self, path):
            return self.fs.stat(path)
        def statvfs(self, path):
            return self.fs.statvfs(path)
    def report(e):
        buf = io.StringIO()
        sys.print_exception(e, buf)
        for line in buf.getvalue().split("\\n"):
            if line and not line.startswith('  File "<stdin>"'):
                print(line)
    interrupted = False
    marker = booted
    try:
        while True:
            try:
                try:
                    vfs.umount("/")
                except OSError:
                    pass
                vfs.mount(VfsFlash(root), "/")
                os.chdir("/")
                break
            except KeyboardInterrupt:
                interrupted = True
        del sys.argv[:]
        if interrupted:
            return
        for name in ("boot.py", "main.py") if run_main else ("boot.py",):
            try:
                os.stat(name)
            except OSError:
                continue
            try:
                execfile(name, globals())
            except SystemExit:
                marker = reset
                return
            except BaseException as e:
                report(e)
                return
    finally:
        sys.stdout.write(marker)
_vboard_boot(%r, %s, %r, %r, %r)
del _vboard_boot
"""

# Relay states while an interpreter boots.
_STARTING = "starting"    # process starting: forward output, watch for the started marker
_BOOT = "boot"            # boot.py/main.py: forward output, watch for the booted marker
_BOOT_RAW = "boot-raw"    # same, then put the interpreter in the raw REPL
_AWAIT_RAW = "await-raw"  # swallow the banner until the raw REPL prompt
_RUNNING = "running"      # forward everything


class VirtualBoardError(Exception):
    """The virtual board could not start or stopped working; `str()` says why."""


def _partial_suffix(buf, token):
    """Length of the longest end of `buf` that is a proper start of `token`."""
    for n in range(min(len(buf), len(token) - 1), 0, -1):
        if buf.endswith(token[:n]):
            return n
    return 0


def _sigint_caught(pid):
    """True if process `pid` has a SIGINT handler installed (the unix port
    installs one only while it runs code); None where /proc cannot tell."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    except (OSError, ValueError):
        pass
    return None


class VirtualBoard:
    """MicroPython's unix interpreter behind a pseudo-terminal, answering
    mpremote as a board does, with `flash_dir` as its flash.

    `heap` is the interpreter's GC heap (`-X heapsize=`), `micropython` the
    interpreter to run (default: the one `make setup` installs). `start()`
    returns the port to give mpremote; `stop()` ends the interpreter and the
    relay. Also a context manager."""

    def __init__(self, flash_dir, heap="256K", micropython=None):
        try:
            mpy.check_heap(heap)
        except ValueError as e:
            raise VirtualBoardError(str(e)) from None
        self.flash_dir = Path(flash_dir).resolve()
        self.heap = str(heap)
        self.micropython = micropython
        self.port = None
        self.boots = 0             # interpreters started (power-up and every reset)
        self.soft_resets = 0
        self.error = None          # an exception that stopped the relay, if any
        self._child = None
        self._thread = None
        self._stopping = threading.Event()
        self._hard_reset_request = threading.Event()
        self._booted = threading.Event()
        self._fds = []

    # -- public API ---------------------------------------------------------

    def start(self):
        """Power the board up: run boot.py and main.py, start relaying.
        Returns the pseudo-terminal path (`/dev/pts/N`) for mpremote."""
        if self._thread is not None:
            raise VirtualBoardError("the virtual board is already running")
        if self.flash_dir.exists() and not self.flash_dir.is_dir():
            raise VirtualBoardError("flash folder %s is not a folder" % self.flash_dir)
        self.flash_dir.mkdir(parents=True, exist_ok=True)
        binary = self.micropython or mpy.micropython_binary()
        if not os.access(binary, os.X_OK):
            raise VirtualBoardError("%s is not an executable MicroPython interpreter" % binary)
        self._binary = binary
        self._stopping.clear()
        self._hard_reset_request.clear()
        try:
            self._open_ptys()
            self._reset_state()
            self._spawn(run_main=True, raw=False)
            self._wait_up()
        except BaseException:
            self._kill_child()
            self._close_ptys()
            raise
        self._thread = threading.Thread(target=self._relay, name="vboard-relay", daemon=True)
        self._thread.start()
        return self.port

    def stop(self):
        """Stop relaying and end the interpreter; safe to call twice."""
        self._stopping.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self._kill_child()
        self._close_ptys()

    def hard_reset(self):
        """Power-cycle the board: kill the interpreter, start a fresh one
        that runs boot.py and main.py (what `machine.reset()` does on a
        board; the unix port has no `machine.reset`)."""
        self._hard_reset_request.set()
        self._wake()

    def wait_booted(self, timeout=10.0):
        """Wait until the current interpreter has finished boot.py and
        main.py (its REPL comes next); False if it has not within `timeout`
        seconds (a main.py that loops forever never finishes)."""
        return self._booted.wait(timeout)

    @property
    def pid(self):
        """The running interpreter's process id, or None."""
        child = self._child
        return child.pid if child is not None and child.poll() is None else None

    @property
    def running(self):
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- pseudo-terminals and processes ---------------------------------------

    def _open_ptys(self):
        self._user_m, self._user_s = pty.openpty()
        self._fds += [self._user_m, self._user_s]
        self._board_m, self._board_s = pty.openpty()
        self._fds += [self._board_m, self._board_s]
        self._wake_r, self._wake_w = os.pipe()
        self._fds += [self._wake_r, self._wake_w]
        for fd in (self._user_s, self._board_s):
            tty.setraw(fd)
        # The interpreter saves these settings as its "original" mode and
        # switches to lflag == 0 while it waits at a prompt: a non-zero lflag
        # (echo-related bits, without ECHO itself) marks "running code".
        attrs = termios.tcgetattr(self._board_s)
        attrs[3] = (attrs[3] | termios.ECHOE | termios.ECHOK) & ~(termios.ECHO | termios.ISIG
                                                                   | termios.ICANON)
        termios.tcsetattr(self._board_s, termios.TCSANOW, attrs)
        self._board_attrs = attrs
        for fd in (self._user_m, self._board_m, self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
        self.port = os.ttyname(self._user_s)

    def _close_ptys(self):
        fds, self._fds = self._fds, []
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _wake(self):
        with contextlib.suppress(OSError, AttributeError):
            os.write(self._wake_w, b"x")

    def _env(self):
        env = dict(os.environ)
        env["MICROPYPATH"] = ".frozen:/lib"
        return env

    def _spawn(self, run_main, raw):
        """Start an interpreter on the flash; `raw`: bring it back to the raw
        REPL once booted (boot.py only, as after a raw-REPL soft reset)."""
        termios.tcflush(self._board_s, termios.TCIFLUSH)
        termios.tcsetattr(self._board_s, termios.TCSANOW, self._board_attrs)
        code = _STARTUP % (str(self.flash_dir), bool(run_main), _STARTED.decode(), _BOOTED.decode(),
                           _RESET.decode())
        self._state = _STARTING
        self._raw_boot = raw
        self._booted.clear()
        self._pending = b""
        self._hold_until = time.monotonic() + _RAW_RESET_TIMEOUT if raw else None
        self._child = subprocess.Popen(
            [self._binary, "-X", "heapsize=" + self.heap, "-i", "-c", code],
            stdin=self._board_s, stdout=self._board_s, stderr=self._board_s,
            cwd=self.flash_dir, env=self._env(), close_fds=True, start_new_session=True)
        self.boots += 1

    def _wait_up(self):
        """Wait until the interpreter runs its startup code (its Ctrl-C
        handler is in place)."""
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._child.poll() is not None:
                self._read_board()
                raise VirtualBoardError("the interpreter exited at start (status %s): %s" % (
                    self._child.returncode, bytes(self._outq).decode("utf-8", "replace").strip()))
            if self._state != _STARTING:
                return
            r, _, _ = select.select([self._board_m], [], [], _TICK)
            if r:
                self._read_board()
        raise VirtualBoardError("the interpreter did not start within %.0f s" % _START_TIMEOUT)

    def _kill_child(self):
        child, self._child = self._child, None
        if child is None or child.poll() is not None:
            return
        child.terminate()
        try:
            child.wait(timeout=_CHILD_EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=_CHILD_EXIT_TIMEOUT)

    # -- relay ----------------------------------------------------------------

    def _reset_state(self):
        self._outq = bytearray()      # to the host
        self._inq = bytearray()       # from the host, not yet given to the interpreter
        self._sysq = bytearray()      # from the relay itself, goes first
        self._mode = "friendly"
        self._mode_tail = b""
        self._hold_until = None
        self._ctrl_c_since = None
        self._last_sigint = 0.0
        self._stuck_since = None
        self._state = _STARTING
        self._raw_boot = False
        self._pending = b""
        self._reset_asked = False

    def _relay(self):
        try:
            while not self._stopping.is_set():
                self._relay_once()
        except Exception as e:  # noqa: BLE001 - kept for stop() and the caller to see
            self.error = e
        finally:
            self._kill_child()

    def _relay_once(self):
        readers = [self._user_m, self._wake_r]
        if len(self._outq) < _MAX_BACKLOG:
            readers.append(self._board_m)
        writers = []
        if self._outq:
            writers.append(self._user_m)
        if self._sysq or (self._inq and not self._input_held()):
            writers.append(self._board_m)
        r, _, _ = select.select(readers, writers, [], _TICK)
        if self._wake_r in r:
            with contextlib.suppress(OSError):
                os.read(self._wake_r, 256)
        if self._board_m in r:
            self._read_board()
        if self._user_m in r:
            self._read_user()
        self._pump_input()
        self._flush_output()
        if self._stopping.is_set():
            return
        if self._hard_reset_request.is_set():
            self._hard_reset_request.clear()
            self._kill_child()
            self._read_board()
            self._flush_output()
            self._restart(raw=False, soft=False)
        elif self._reset_asked:
            self._reset_asked = False
            self._kill_child()
            self._restart(raw=False, soft=True)
        elif self._child is not None and self._child.poll() is not None:
            self._read_board()  # what it said last ("OK", a traceback)
            self._restart(raw=self._mode == "raw", soft=True)

    def _restart(self, raw, soft):
        crashed_in_boot = soft and self._state != _RUNNING
        if self._pending and self._state != _AWAIT_RAW:
            self._outq += self._pending
        self._pending = b""
        if soft:
            self.soft_resets += 1
            self._outq += SOFT_REBOOT
        self._flush_output()
        if crashed_in_boot:
            time.sleep(0.5)  # an interpreter dying while booting must not spin
        self._ctrl_c_since = None
        self._mode = "raw" if raw else "friendly"
        self._mode_tail = b""
        if not soft:
            self._inq.clear()  # a power cycle loses what was on its way
        self._spawn(run_main=not raw, raw=raw)

    def _read_board(self):
        while True:
            try:
                data = os.read(self._board_m, 65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if not data:
                return
            self._track_mode(data)
            self._outq += self._scan(data)
            if len(data) < 65536:
                return

    def _track_mode(self, data):
        s = self._mode_tail + data
        raw_at = s.rfind(RAW_PROMPT)
        friendly_at = s.rfind(FRIENDLY_BANNER)
        if raw_at > friendly_at:
            self._mode = "raw"
        elif friendly_at > raw_at:
            self._mode = "friendly"
        keep = max(len(RAW_PROMPT), len(FRIENDLY_BANNER)) - 1
        self._mode_tail = s[-keep:]

    def _scan(self, data):
        """What of the interpreter's output the host sees, by boot state."""
        buf = self._pending + data
        self._pending = b""
        out = bytearray()
        while buf:
            if self._state == _RUNNING:
                out += buf
                break
            token = {_STARTING: _STARTED, _AWAIT_RAW: RAW_PROMPT}.get(self._state, _BOOTED)
            i = buf.find(token)
            if token == _BOOTED:
                j = buf.find(_RESET)
                if j >= 0 and (i < 0 or j < i):  # sys.exit() or soft_reset() in boot.py/main.py
                    out += buf[:j]
                    self._reset_asked = True
                    break
            if i < 0:
                keep = _partial_suffix(buf, token)
                if token == _BOOTED:
                    keep = max(keep, _partial_suffix(buf, _RESET))
                if self._state != _AWAIT_RAW:
                    out += buf[:len(buf) - keep]
                self._pending = buf[len(buf) - keep:]
                break
            if self._state != _AWAIT_RAW:
                out += buf[:i]
            if self._state == _STARTING:
                self._state = _BOOT_RAW if self._raw_boot else _BOOT
                buf = buf[i + len(token):]
            elif self._state == _BOOT:
                self._state = _RUNNING
                self._booted.set()
                buf = buf[i + len(token):]
            elif self._state == _BOOT_RAW:
                self._state = _AWAIT_RAW
                self._sysq += CTRL_A
                buf = buf[i + len(token):]
            else:
                self._state = _RUNNING
                self._hold_until = None
                self._booted.set()
                buf = buf[i:]
        return bytes(out)

    def _read_user(self):
        while True:
            try:
                data = os.read(self._user_m, 65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # nobody has the port open
            if not data:
                return
            self._inq += data
            if len(data) < 65536:
                return

    def _input_held(self):
        if self._hold_until is None:
            return False
        if time.monotonic() >= self._hold_until:
            self._hold_until = None
            return False
        return True

    def _write_board(self, buf):
        """Write what the interpreter's pty takes of `buf`; returns the count."""
        try:
            return os.write(self._board_m, buf)
        except (BlockingIOError, InterruptedError):
            return 0

    def _pump_input(self):
        if self._sysq:
            n = self._write_board(bytes(self._sysq))
            del self._sysq[:n]
            if self._sysq:
                return
        while self._inq and not self._input_held():
            i = self._inq.find(CTRL_C)
            if i != 0:
                chunk = bytes(self._inq if i < 0 else self._inq[:i])
                n = self._write_board(chunk)
                del self._inq[:n]
                if n < len(chunk):
                    return
                continue
            verdict = self._ctrl_c_verdict()
            if verdict == "wait":
                return
            del self._inq[:1]
            self._ctrl_c_since = None
            if verdict == "forward":
                self._sysq += b"\x03"
                n = self._write_board(bytes(self._sysq))
                del self._sysq[:n]
                if self._sysq:
                    return
            elif verdict == "signal":
                self._last_sigint = time.monotonic()
                with contextlib.suppress(OSError):
                    os.kill(self._child.pid, signal.SIGINT)

    def _ctrl_c_verdict(self):
        """What a Ctrl-C from the host becomes: "forward" (the interpreter
        waits at a prompt, or reads Ctrl-C as data), "signal" (it runs code
        and has its handler in place), "drop" (no interpreter to take it) or
        "wait" (judged again on the next turn: while a SIGINT is still being
        handled, since a second one would kill the unix port; a Ctrl-C is
        never lost, as none is on a board)."""
        child = self._child
        if child is None or child.poll() is not None:
            return "drop"
        now = time.monotonic()
        if self._ctrl_c_since is None:
            self._ctrl_c_since = now
        if self._state == _STARTING:
            # The process hosting MicroPython may not even run it yet: a
            # SIGINT now would kill it. The interrupt waits for the startup code.
            return "wait" if now - self._ctrl_c_since < _START_TIMEOUT else "forward"
        try:
            lflag = termios.tcgetattr(self._board_s)[3]
        except termios.error:
            return "forward"
        caught = _sigint_caught(child.pid)
        # At a prompt the terminal is raw (lflag 0) and no handler is in
        # place; code sent in raw-paste mode (mpremote's way) runs with the
        # terminal still raw, but with its handler.
        if lflag == 0 and not caught:
            return "forward"
        if caught or caught is None:
            return "wait" if now - self._last_sigint < _CTRL_C_REPEAT else "signal"
        # Running without a handler: between two states, or the program
        # turned Ctrl-C into data (micropython.kbd_intr(-1)).
        return "forward" if now - self._ctrl_c_since >= _CTRL_C_GRACE else "wait"

    def _flush_output(self):
        while self._outq:
            try:
                n = os.write(self._user_m, bytes(self._outq[:4096]))
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError:
                n = len(self._outq)  # the port is gone: nothing to deliver to
            if n == 0:
                now = time.monotonic()
                if self._stuck_since is None:
                    self._stuck_since = now
                elif now - self._stuck_since > _STALE_OUTPUT:
                    # Nobody reads the port: drop what waits unread, as a UART would.
                    with contextlib.suppress(termios.error):
                        termios.tcflush(self._user_s, termios.TCIFLUSH)
                    self._stuck_since = None
                return
            self._stuck_since = None
            del self._outq[:n]


def serve(flash_dir, heap="256K", micropython=None, out=None, err=None):
    """Run a virtual board in the foreground until Ctrl-C (or SIGTERM):
    print its port and how to connect. Returns an exit status (0, or 2 with
    one line on `err` when it cannot start)."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        board = VirtualBoard(flash_dir, heap=heap, micropython=micropython)
        port = board.start()
    except (VirtualBoardError, mpy.ToolMissing, OSError) as e:
        print("vboard: %s" % e, file=err)
        return EXIT_ERROR
    old_term = None
    if threading.current_thread() is threading.main_thread():
        def _on_term(signum, frame):
            raise KeyboardInterrupt
        old_term = signal.signal(signal.SIGTERM, _on_term)
    try:
        print("virtual board: MicroPython unix port, heap %s, flash %s" % (board.heap, board.flash_dir),
              file=out)
        print("port: %s" % port, file=out)
        print("connect with: mpremote connect %s" % port, file=out)
        print("Ctrl-C stops the board.", file=out)
        out.flush()
        while board.running:
            time.sleep(0.2)
        if board.error is not None:
            print("vboard: relay stopped: %s" % board.error, file=err)
            return EXIT_ERROR
    except KeyboardInterrupt:
        pass
    finally:
        board.stop()
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    print("virtual board stopped", file=out)
    return 0
