"""Start an emulated CircuitPython board under MicroPython's unix port:

    CITYNODE_CP_WORLD=world.json micropython launch.py DRIVE

DRIVE (a folder: the CIRCUITPY drive) becomes `/` (as on the board; the
host's own files stay reachable under /host for this folder's modules and
the world's files), `sys.path` is CircuitPython's ('', '/', '/lib') after
this folder, then boot.py and code.py run as CircuitPython runs them.
A board reset (cp_world.Reset) ends the interpreter with status 0;
the world's state file says why. launch_cpython.py starts the same board
under CPython.
"""

import builtins
import sys

import uos
import vfs

HOST = "/host"


EROFS = 30


def _writable():
    """Raise OSError EROFS while the drive is read-only to the code (the
    emulated storage module keeps how boot.py mounted it)."""
    import storage

    if storage.getmount("/").readonly:
        raise OSError(EROFS)


class _Drive:
    """The drive folder as a filesystem: MicroPython's VfsPosix, with
    renames given relative to the drive (VfsPosix fails two absolute ones),
    and no writes while `storage` says the drive is read-only."""

    def __init__(self, root):
        self.fs = vfs.VfsPosix(root)

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def open(self, path, mode):
        if "r" not in mode or "+" in mode:
            _writable()
        return self.fs.open(path, mode)

    def rename(self, old, new):
        _writable()
        return self.fs.rename(old.lstrip("/"), new.lstrip("/"))

    def remove(self, path):
        _writable()
        return self.fs.remove(path)

    def mkdir(self, path):
        _writable()
        return self.fs.mkdir(path)

    def rmdir(self, path):
        _writable()
        return self.fs.rmdir(path)

    def __getattr__(self, name):
        return getattr(self.fs, name)


def main(drive):
    if not hasattr(builtins, "ConnectionError"):  # CircuitPython's builtin (an OSError); not MicroPython's
        builtins.ConnectionError = type("ConnectionError", (OSError,), {})
    here = sys.path[0]
    root = uos.getcwd() + "/" + drive if not drive.startswith("/") else drive
    repo = here.rsplit("/", 3)[0]
    host = vfs.VfsPosix("/")
    vfs.umount("/")
    vfs.mount(_Drive(root), "/")
    vfs.mount(host, HOST)
    uos.chdir("/")
    sys.path[:] = [HOST + here, "", "/", "/lib", HOST + repo]
    from host_tools.emulators.circuitpython.cp_world import power_up

    power_up(lambda name: execfile(name, {"__name__": "__main__"}))  # noqa: F821 - MicroPython's builtin


main(sys.argv[1])
