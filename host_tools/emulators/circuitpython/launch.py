"""Start an emulated CircuitPython board under MicroPython's unix port:

    CITYNODE_CP_WORLD=world.json micropython launch.py DRIVE

DRIVE (a folder: the CIRCUITPY drive) becomes `/` (as on the board; the
host's own files stay reachable under /host for this folder's modules and
the world's files), `sys.path` is CircuitPython's ('', '/', '/lib') after
this folder, then boot.py and code.py run as CircuitPython runs them.
A board reset (cp_world.Reset) ends the interpreter with status 0;
the world's state file says why.
"""

import sys

import uos
import vfs

HOST = "/host"


class _Drive:
    """The drive folder as a filesystem: MicroPython's VfsPosix, with
    renames given relative to the drive (VfsPosix fails two absolute ones)."""

    def __init__(self, root):
        self.fs = vfs.VfsPosix(root)

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def rename(self, old, new):
        return self.fs.rename(old.lstrip("/"), new.lstrip("/"))

    def __getattr__(self, name):
        return getattr(self.fs, name)


def main(drive):
    here = sys.path[0]
    root = uos.getcwd() + "/" + drive if not drive.startswith("/") else drive
    repo = here.rsplit("/", 3)[0]
    host = vfs.VfsPosix("/")
    vfs.umount("/")
    vfs.mount(_Drive(root), "/")
    vfs.mount(host, HOST)
    uos.chdir("/")
    sys.path[:] = [HOST + here, "", "/", "/lib", HOST + repo]
    from host_tools.emulators.circuitpython.cp_world import world

    w = world()
    for name in ("boot.py", "code.py"):
        try:
            uos.stat(name)
        except OSError:
            continue
        w.in_boot = name == "boot.py"
        execfile(name, {"__name__": "__main__"})  # noqa: F821 - MicroPython's builtin
    w.end()


main(sys.argv[1])
