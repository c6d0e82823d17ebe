"""Start an emulated CircuitPython board under CPython, as launch.py starts
one under MicroPython's unix port:

    CITYNODE_CP_WORLD=world.json python launch_cpython.py DRIVE

The same emulated modules (this folder) and the same world (cp_world) run
the drive's boot.py, then code.py; cp_cpython makes of CPython what
launch.py makes of MicroPython (the `u` names, the drive as `/` and the
host's files under /host, this folder's modules first). The interpreter
restarts itself with -I -S: no site-packages (the firmware's libraries are
the drive's lib/, as on the board) and this folder not on sys.path, which
is CircuitPython's ('', '/', '/lib': the drive, its lib/) then the
repository (for the emulation). No .pyc files are written. A board reset
(cp_world.Reset) ends the interpreter with status 0; the world's state
file says why.
"""

import os
import sys


def _run(name):
    """Run the drive's file `name` as CircuitPython runs boot.py and code.py."""
    with open(name) as f:
        code = compile(f.read(), name, "exec")
    exec(code, {"__name__": "__main__"})


def main(drive):
    root = os.path.abspath(drive)
    repo = os.path.abspath(__file__).rsplit("/", 4)[0]
    sys.dont_write_bytecode = True
    sys.path[:0] = ["", root, root + "/lib", repo]
    from host_tools.emulators.circuitpython import cp_cpython

    cp_cpython.start(root)
    from host_tools.emulators.circuitpython.cp_world import power_up

    power_up(_run)


if __name__ == "__main__":
    if not (sys.flags.isolated and sys.flags.no_site):
        os.execv(sys.executable, [sys.executable, "-I", "-S", *sys.argv])
    main(sys.argv[1])
