"""What launch.py makes of MicroPython's unix port, made of CPython for
launch_cpython.py, so that the same emulated modules run on either:

- MicroPython's `u` names for CPython's real modules, with the MicroPython
  calls the emulation makes on them: `uos` (MicroPython's calls only,
  taking the board's paths: CPython's `os.open` would hide the builtin
  `open` in the emulated `os`), `utime` (with `sleep_ms`), `usocket`
  (whose sockets have MicroPython's stream calls: `read`, None on a
  non-blocking socket that has nothing yet, and `write`, which sends it
  all) and `uselect`.
- The drive as `/`: `open()` and `uos`'s calls take the board's paths
  (and `uos.getcwd()` gives one): /host/... (cp_world.HOST) is the host's
  own file, any other absolute path is in the drive folder, which is the
  working folder. A write into the drive while `storage` says it is
  read-only to the code raises OSError 30 (EROFS), as launch.py's drive
  does.
- This folder's modules come before CPython's own of the same name
  (`time`, `os`, `socket`, `ssl`), built-in or imported already, as
  MICROPYPATH puts this folder first on MicroPython's path: whatever is
  imported from then on (the firmware, and a standard-library module the
  firmware is first to import: `random`) gets the emulated ones; what was
  imported before (this module, the emulation's `u` names) keeps CPython's.

Not here: MicroPython's `tls`, on which this folder's `ssl` is built, so
under CPython `import ssl` raises ImportError (no module named 'tls').
"""

import builtins
import errno
import os
import select
import socket
import sys
import time
import types
from importlib.machinery import PathFinder

HOST = "/host"  # where the host's own files are on the board (cp_world.HOST)
HERE = os.path.dirname(os.path.abspath(__file__))
# MicroPython's uos: what CPython's os has alike, then its calls on paths
_OS = ("getenv", "putenv", "sep", "system", "unsetenv", "urandom")
_READ_CALLS = ("chdir", "listdir", "stat", "statvfs")
_WRITE_CALLS = ("mkdir", "remove", "rename", "rmdir", "unlink")
_open = builtins.open


class _Socket(socket.socket):
    """CPython's socket with MicroPython's stream calls."""

    def read(self, n):
        try:
            return self.recv(n)
        except BlockingIOError:
            return None

    def write(self, data):
        self.sendall(data)
        return len(data)


class _Drive:
    """The board's paths on the host's filesystem, with the drive folder
    `root` as `/`."""

    def __init__(self, root):
        self.root = root

    def path(self, path):
        """The host's path for a path on the board."""
        if not isinstance(path, str) or not path.startswith("/"):
            return path
        if path == HOST or path.startswith(HOST + "/"):
            return path[len(HOST):] or "/"
        return self.root + path

    def getcwd(self):
        """The working folder, as a path on the board."""
        cwd = os.getcwd()
        if cwd == self.root or cwd.startswith(self.root + "/"):
            return cwd[len(self.root):] or "/"
        return HOST + cwd

    def check_write(self, path):
        """OSError EROFS if the host's `path` is on the drive while the
        drive is read-only to the code (as boot.py mounted it)."""
        if isinstance(path, str) and os.path.abspath(path).startswith(self.root + "/"):
            import storage  # the emulated one

            if storage.getmount("/").readonly:
                raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    def call(self, name):
        """os's call `name` on the board's paths."""
        real = getattr(os, name)
        writes = name in _WRITE_CALLS

        def on_board(*args):
            args = [self.path(a) for a in args]
            if writes:
                for a in args:
                    self.check_write(a)
            return real(*args)

        return on_board

    def open(self, file, mode="r", *args, **kwargs):
        file = self.path(file)
        if "r" not in mode or "+" in mode:
            self.check_write(file)
        return _open(file, mode, *args, **kwargs)


class _EmulationFirst:
    """The import system's first finder: a top-level name this folder has
    is this folder's module."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        return PathFinder.find_spec(name, [HERE]) if path is None else None


def _module(name, names):
    """A module `name` that has `names` ({name: value})."""
    m = types.ModuleType(name)
    m.__dict__.update(names)
    return m


def _public(real):
    return {k: v for k, v in vars(real).items() if not k.startswith("_")}


def start(root):
    """Make this interpreter the board's, with the drive folder `root` as
    `/` (before the world starts: cp_world reaches CPython by the `u` names)."""
    drive = _Drive(root)
    uos = {n: getattr(os, n) for n in _OS}
    uos.update({n: drive.call(n) for n in _READ_CALLS + _WRITE_CALLS}, getcwd=drive.getcwd)
    sys.modules.update(uos=_module("uos", uos),
                       utime=_module("utime", dict(_public(time), sleep_ms=lambda ms: time.sleep(ms / 1000))),
                       usocket=_module("usocket", dict(_public(socket), socket=_Socket)), uselect=select)
    builtins.open = drive.open
    os.chdir(root)
    for name in [n for n in sys.modules if "." not in n and PathFinder.find_spec(n, [HERE])]:
        del sys.modules[name]
    sys.meta_path.insert(0, _EmulationFirst)
