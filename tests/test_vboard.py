"""The virtual board (host_tools/desk/vboard.py) driven by the real `mpremote`,
exactly as an ESP32 on a serial port would be: every test runs the mpremote
command line in a subprocess against the board's pseudo-terminal."""

import os
import select
import signal
import subprocess
import sys
import time
import tty
from pathlib import Path

import pytest

from host_tools import mpy
from host_tools.desk import vboard
from host_tools.desk.vboard import RAW_PROMPT, SOFT_REBOOT, VirtualBoard, VirtualBoardError
from tests.conftest import ROOT

MPREMOTE = mpy.mpremote_binary()

pytestmark = pytest.mark.skipif(MPREMOTE is None, reason="mpremote not installed: run 'make setup'")

BANNER_PROMPT = b'Type "help()" for more information.\r\n>>> '


def mpremote(port, *args, timeout=30, cwd=ROOT):
    """Run `mpremote connect PORT ARGS...`; returns the CompletedProcess."""
    return subprocess.run([MPREMOTE, "connect", port, *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, check=False)


def ok(port, *args, **kw):
    p = mpremote(port, *args, **kw)
    assert p.returncode == 0, (args, p.stdout, p.stderr)
    return p.stdout


@pytest.fixture
def flash(tmp_path):
    d = tmp_path / "flash"
    d.mkdir()
    return d


@pytest.fixture
def board(flash):
    with VirtualBoard(flash) as b:
        yield b


class Terminal:
    """The port opened as a serial terminal would open it."""

    def __init__(self, port):
        self.fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)

    def write(self, data):
        os.write(self.fd, data)

    def read_until(self, token, timeout=10):
        buf = b""
        deadline = time.monotonic() + timeout
        while token not in buf and time.monotonic() < deadline:
            r, _, _ = select.select([self.fd], [], [], 0.05)
            if r:
                buf += os.read(self.fd, 4096)
        assert token in buf, buf
        return buf

    def close(self):
        os.close(self.fd)


def raw_repl(port):
    """The port as a terminal, the board in its raw REPL."""
    term = Terminal(port)
    term.write(b"\r\x03\r\x01")
    term.read_until(RAW_PROMPT + b">")
    return term


def test_resume_exec_runs_code_on_the_interpreter(board):
    assert board.port.startswith("/dev/pts/")
    assert ok(board.port, "resume", "exec", "print(1+1)").strip() == "2"


def test_the_flash_folder_is_the_boards_root_with_a_boards_sys_path(board, flash):
    (flash / "lib").mkdir()
    (flash / "lib" / "helper.py").write_text("ANSWER = 42\n")
    (flash / "data.txt").write_text("on flash")
    out = ok(board.port, "resume", "exec",
             "import os, sys, helper; print(sys.path); print(os.getcwd()); "
             "print(sorted(os.listdir('/'))); print(helper.ANSWER, open('/data.txt').read())")
    assert out.splitlines() == ["['', '.frozen', '/lib']", "/", "['data.txt', 'lib']", "42 on flash"]


def test_fs_cp_ls_cat_round_trip(board, flash, tmp_path):
    local = tmp_path / "local.py"
    local.write_text("print('written on the desk')\n")
    ok(board.port, "fs", "cp", str(local), ":main.py")
    assert (flash / "main.py").read_text() == local.read_text()
    listing = ok(board.port, "fs", "ls")
    assert any(line.split() == [str(local.stat().st_size), "main.py"] for line in listing.splitlines())
    assert ok(board.port, "fs", "cat", ":main.py") == local.read_text()


def test_exec_soft_resets_first_every_time(board):
    before = board.soft_resets
    assert ok(board.port, "exec", "print('x'); a = 5").strip() == "x"
    assert ok(board.port, "resume", "exec", "print(a)").strip() == "5"   # resume keeps state
    assert ok(board.port, "exec", "print('x', 'a' in globals())").strip() == "x False"
    assert board.soft_resets == before + 2


def test_soft_reset_in_raw_repl_runs_boot_py_but_not_main_py(flash):
    # As on an ESP32: a reset from the raw REPL runs boot.py only.
    (flash / "boot.py").write_text("open('boot.txt', 'a').write('b')\n")
    (flash / "main.py").write_text("open('main.txt', 'a').write('m')\n")
    with VirtualBoard(flash) as board:   # power-up: both run
        assert board.wait_booted(10)
        ok(board.port, "soft-reset")
    assert (flash / "boot.txt").read_text() == "bb"
    assert (flash / "main.txt").read_text() == "m"


def test_friendly_repl_soft_reset_runs_boot_py_then_main_py(board, flash, tmp_path):
    (flash / "boot.py").write_text("print('boot.py says hi')\n")
    main = tmp_path / "main.py"
    main.write_text("print('main.py says hi')\nopen('proof.txt', 'w').write('main ran')\n")
    ok(board.port, "fs", "cp", str(main), ":main.py")
    assert not (flash / "proof.txt").exists()
    term = Terminal(board.port)        # mpremote left the friendly REPL; press Ctrl-D there
    try:
        term.write(b"\r")
        term.read_until(b">>> ")
        term.write(b"\x04")
        out = term.read_until(BANNER_PROMPT)
    finally:
        term.close()
    assert (flash / "proof.txt").read_text() == "main ran"
    i = out.index(SOFT_REBOOT)
    assert i < out.index(b"boot.py says hi") < out.index(b"main.py says hi") < out.index(BANNER_PROMPT)


def test_soft_reset_in_main_py_reboots_and_runs_main_py_again(flash):
    """As on an ESP32: machine.soft_reset() (or sys.exit()) in main.py is a
    soft reboot, after which boot.py and main.py run again."""
    (flash / "main.py").write_text(
        "import machine\n"
        "try:\n    n = int(open('runs').read())\nexcept OSError:\n    n = 0\n"
        "open('runs', 'w').write(str(n + 1))\n"
        "if n == 0:\n    machine.soft_reset()\n"
        "print('main.py run', n + 1)\n")
    with VirtualBoard(flash) as b:
        term = Terminal(b.port)
        try:
            out = term.read_until(b"main.py run 2")
        finally:
            term.close()
        assert out.count(SOFT_REBOOT) == 1 and b.soft_resets == 1 and b.boots == 2
    assert (flash / "runs").read_text() == "2"


def test_power_up_runs_main_py_and_ctrl_c_hands_the_board_to_mpremote(flash):
    (flash / "main.py").write_text(
        "import time\nloops = 1\nopen('looping', 'w').close()\n"
        "while True:\n    loops += 1\n    time.sleep_ms(5)\n")
    with VirtualBoard(flash) as board:
        deadline = time.monotonic() + 10
        while not (flash / "looping").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not board.wait_booted(0.1)   # main.py never ends by itself
        # Ctrl-C interrupts main.py; its globals stay, as on a board.
        assert ok(board.port, "resume", "exec", "print(loops > 0)").strip() == "True"
        assert ok(board.port, "exec", "print('after a soft reset')").strip() == "after a soft reset"


def test_ctrl_c_interrupts_code_run_from_the_raw_repl(board):
    # Code sent in raw-paste mode (as mpremote sends it) runs with the
    # terminal still raw; on an ESP32 a Ctrl-C interrupts it all the same,
    # so here it must become a SIGINT.
    term = raw_repl(board.port)
    try:
        term.write(b"\x05A\x01")
        term.read_until(b"R\x01")
        term.write(b"import time\nprint('looping')\nwhile True:\n    time.sleep_ms(5)\n\x04")
        term.read_until(b"looping")
        term.write(b"\x03")
        out = term.read_until(b"\x04>", timeout=5)
        assert b"KeyboardInterrupt" in out
        term.write(b"print(6 * 7)\x04")
        assert b"OK42" in term.read_until(b"\x04>")
    finally:
        term.close()


def test_run_executes_a_local_script(board, tmp_path):
    script = tmp_path / "script.py"
    script.write_text("import sys\nprint('ran', 6 * 7, sys.implementation.name)\n")
    assert ok(board.port, "run", str(script)).strip() == "ran 42 micropython"


def test_the_firmware_package_copies_and_imports_as_on_an_esp32(board, flash):
    ok(board.port, "fs", "cp", "-r", "firmware/citynode", ":", timeout=60)
    ticks = "citynode/ticks.py"
    assert (flash / ticks).read_bytes() == (ROOT / "firmware" / ticks).read_bytes()
    out = ok(board.port, "resume", "exec",
             "import citynode.ticks as t; print(t.__file__, t.diff(t.add(t.MASK, 3), t.MASK))")
    assert out.strip() == "citynode/ticks.py 3"


def test_sys_exit_is_a_soft_reset(board):
    before = board.soft_resets
    ok(board.port, "exec", "import sys; sys.exit()")
    assert ok(board.port, "resume", "exec", "print('still here')").strip() == "still here"
    assert board.soft_resets == before + 2


def test_raw_repl_soft_reset_answers_as_a_board(board):
    term = raw_repl(board.port)
    try:
        term.write(b"\x04")
        out = term.read_until(RAW_PROMPT + b">")
    finally:
        term.close()
    assert out.startswith(b"OK\r\n" + SOFT_REBOOT), out
    assert b"MicroPython" not in out   # the new interpreter's banner is not shown


def test_output_nobody_reads_does_not_stall_the_board(flash):
    (flash / "main.py").write_text("while True:\n    print('chatter ' * 8)\n")
    with VirtualBoard(flash) as board:
        time.sleep(vboard._STALE_OUTPUT + 1)   # the pty fills up; old output is dropped as a UART would
        assert ok(board.port, "exec", "print('quiet now')", timeout=20).strip() == "quiet now"


def test_hard_reset_runs_boot_and_main_again(flash):
    (flash / "main.py").write_text("open('count.txt', 'a').write('.')\n")
    with VirtualBoard(flash) as board:
        assert board.wait_booted(10)
        assert (flash / "count.txt").read_text() == "."
        boots = board.boots
        board.hard_reset()
        deadline = time.monotonic() + 10
        while board.boots == boots and time.monotonic() < deadline:
            time.sleep(0.02)
        assert board.wait_booted(10)
        assert (flash / "count.txt").read_text() == ".."
        assert board.boots == boots + 1
        assert ok(board.port, "resume", "exec", "print(3)").strip() == "3"


def test_stop_ends_the_interpreter_and_the_port(flash):
    board = VirtualBoard(flash)
    port = board.start()
    pid = board.pid
    assert pid is not None and os.path.exists(port)
    board.stop()
    board.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not os.path.exists(port)


def test_bad_settings_are_clear_errors(flash, tmp_path):
    with pytest.raises(VirtualBoardError, match="heap"):
        VirtualBoard(flash, heap="lots")
    with pytest.raises(VirtualBoardError, match="not an executable"):
        VirtualBoard(flash, micropython=str(tmp_path / "no-such-interpreter")).start()
    (tmp_path / "file").write_text("")
    with pytest.raises(VirtualBoardError, match="not a folder"):
        VirtualBoard(tmp_path / "file").start()


def test_serve_prints_the_port_and_stops_on_ctrl_c(flash):
    proc = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "sim", str(flash), "--heap", "128K"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if line.startswith("connect with:") or not line:
                break
        port = lines[-1].split()[-1]
        assert lines[-1] == "connect with: mpremote connect %s\n" % port, lines
        heap = int(ok(port, "resume", "exec", "import gc; print(gc.mem_free() + gc.mem_alloc())"))
        assert 120 * 1024 < heap <= 128 * 1024   # --heap reached the interpreter (less GC tables)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)  # a bound: stop() may wait 5 s for the relay, then the child
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    assert proc.returncode == 0, err
    assert "virtual board stopped" in out


def test_the_interpreter_is_the_projects_micropython(board):
    assert Path(mpy.micropython_binary()).exists()
    out = ok(board.port, "resume", "eval", "__import__('sys').implementation.name")
    assert out.strip() == "micropython"
