"""The firmware as it goes to one board: compiled with mpy-cross for the
.mpy version the board runs (after checking its MicroPython and its
architecture against its board profile), with the libraries, the node's
config, its recording (virtual boards) and the broker's CA; and which of
those files differ from what the board holds. A CircuitPython board gets
the same firmware and libraries as .py sources, CircuitPython's own entry
files (firmware/circuitpython/), and its secrets in settings.toml instead
of config.json.

`Workspace` builds each thing once per batch, in a private temporary
folder; `compile_flags` checks a MicroPython board, `check_drive` a
CircuitPython one; `changes` compares with a probe. Used by `citynode
provision` (host_tools.field.provision).
"""

import functools
import json
import os
import re
import subprocess
import tempfile
import threading
from pathlib import Path

from host_tools import mpy, tomlfile
from host_tools.desk import replay
from host_tools.field import sites
from host_tools.field.transport import BoardError, mpy_text, read_only, sha256_file
from host_tools.paths import FIRMWARE

PACKAGE = "citynode"
# Adafruit's BME280 driver and its bus helper (pinned host packages), which
# the firmware's BME280 driver imports: compiled into /lib on real boards.
LIBRARIES = ("adafruit_bme280", "adafruit_bus_device")
MIN_MICROPYTHON = (1, 20)  # the oldest MicroPython the firmware is written for
UNIX_PLATFORMS = ("linux", "darwin")  # where the virtual board's unix port runs
CIRCUITPYTHON = "circuitpython"  # a board profile's runtime for a CircuitPython board
CIRCUITPYTHON_FILES = FIRMWARE / "circuitpython"  # its code.py and boot.py
MIN_CIRCUITPYTHON = 9  # the oldest CircuitPython the firmware is written for
# What a CircuitPython node reads with os.getenv from /settings.toml instead
# of its config.json (citynode.board.hal_circuitpython.settings_into):
# (config section, field, key). Wi-Fi under CircuitPython's own keys, with
# which CircuitPython itself joins the network at start-up (and starts its
# web workflow, whose file access stays off without CIRCUITPY_WEB_API_PASSWORD).
SETTINGS = (("network", "ssid", "CIRCUITPY_WIFI_SSID"), ("network", "password", "CIRCUITPY_WIFI_PASSWORD"),
            ("broker", "password", "CITYNODE_BROKER_PASSWORD"))


class BuildError(BoardError):
    """The firmware cannot be built for this board; `str()` is one line."""


# ---- mpy-cross for the board


@functools.cache
def _mpy_cross_emits(flags=()):
    """The .mpy version mpy-cross writes with `flags` (("-b", "6.1")), or
    None if it cannot."""
    try:
        p = subprocess.run([mpy.mpy_cross_binary(), *flags, "--version"], capture_output=True, text=True,
                           timeout=30, check=False)
    except mpy.ToolMissing:
        return None
    m = re.search(r"emitting mpy v(\d+)(?:\.(\d+))?", p.stdout)
    return (int(m.group(1)), int(m.group(2) or 0)) if m else None


def compile_flags(info, row):
    """mpy-cross's flags for the board `info` describes, after checking that
    it runs a MicroPython the firmware supports on the architecture its
    profile names; BuildError (one line: what and the fix) otherwise."""
    where = "%s (%s, %s)" % (row.node, row.board.name, row.where)
    runs = ".".join(map(str, info.version))
    if info.name != "micropython":
        raise BuildError("%s runs %s, not MicroPython; flash MicroPython %d.%d or newer"
                             % (where, info.name, *MIN_MICROPYTHON))
    if info.version[:2] < MIN_MICROPYTHON:
        raise BuildError("%s runs MicroPython %s, too old: the firmware needs %d.%d or newer; flash a "
                             "newer MicroPython" % (where, runs, *MIN_MICROPYTHON))
    if row.board.virtual:
        if info.platform not in UNIX_PLATFORMS:
            raise BuildError("%s: the port holds a %s board, not a virtual board; fix the board or the "
                                 "port in the inventory" % (where, info.platform))
    elif info.arch != row.board.mpy_arch:
        raise BuildError("%s: the board runs MicroPython for %s (%s), but profile %s is %s; fix the "
                             "board or the port in the inventory"
                             % (where, info.arch, info.platform, row.board.name, row.board.mpy_arch))
    want = info.mpy_version
    newest = _mpy_cross_emits()
    if newest is None:
        raise BuildError("mpy-cross does not say which .mpy version it writes; run 'make setup'")
    if want > newest:
        raise BuildError("%s runs MicroPython %s with .mpy %s, newer than mpy-cross here writes (%s); "
                             "upgrade mpy-cross (requirements.lock)"
                             % (where, runs, mpy_text(want), mpy_text(newest)))
    if want == newest:
        return ()
    flags = ("-b", mpy_text(want))
    if _mpy_cross_emits(flags) != want:
        raise BuildError("%s runs MicroPython %s with .mpy %s, which mpy-cross here cannot write; flash "
                             "MicroPython %d.%d or newer" % (where, runs, mpy_text(want), *MIN_MICROPYTHON))
    return flags


def on_drive(board):
    """Whether `board` is provisioned through its CIRCUITPY drive."""
    return board.runtime == CIRCUITPYTHON


def check_drive(info, row):
    """Check the CircuitPython drive `info` describes (transport.DriveInfo)
    for inventory row `row`: CircuitPython 9 or newer, the board id of the
    row's profile, a drive this computer may write; BuildError (one line:
    what and the fix) otherwise."""
    board = row.board
    if info.version[0] < MIN_CIRCUITPYTHON:
        raise BuildError("%s runs CircuitPython %s (boot_out.txt): the firmware needs CircuitPython %d or "
                         "newer; install it from circuitpython.org/board/%s"
                         % (info.root, info.release, MIN_CIRCUITPYTHON, board.board_id))
    if info.board_id != board.board_id:
        raise BuildError("%s is Board ID %s (boot_out.txt), but profile %s is %s; fix the board or the port "
                         "in the inventory" % (info.root, info.board_id, board.name, board.board_id))
    if not info.writable:
        raise BuildError(read_only(info.root))


# ---- the files of a node


def _sources(package, prefix):
    """{board path: local file}: the .py files of `package` under `prefix`."""
    return {prefix + py.relative_to(package.parent).as_posix(): py for py in mpy.package_sources(package)}


class Workspace:
    """The batch's private temporary folder: the firmware compiled once per
    mpy-cross flags, the virtual boards' recordings once per kind, the CA
    once, each node's config. Safe to use from several threads."""

    def __init__(self, site):
        self.site = site
        self._tmp = tempfile.TemporaryDirectory(prefix="citynode-provision-")  # mode 0700
        self.dir = Path(self._tmp.name)
        self._lock = threading.Lock()
        self._compiled = {}
        self._recordings = {}
        self._ca = None

    def close(self):
        self._tmp.cleanup()

    def firmware(self, flags):
        """{board path: local file}: boot.py, main.py and the package as .mpy."""
        with self._lock:
            if flags not in self._compiled:
                dest = self.dir / ("mpy%s" % "".join(flags).replace("-", "_"))
                try:
                    pkg = mpy.compile_package(FIRMWARE / PACKAGE, dest, flags)
                except mpy.ToolMissing as e:
                    raise BuildError(str(e)) from None
                except subprocess.CalledProcessError as e:
                    raise BuildError("mpy-cross failed: %s" % (e.stderr or "").strip()) from None
                files = {"/boot.py": FIRMWARE / "boot.py", "/main.py": FIRMWARE / "main.py"}
                for f in sorted(pkg.rglob("*.mpy")):
                    files["/" + f.relative_to(dest).as_posix()] = f
                self._compiled[flags] = files
            return dict(self._compiled[flags])

    def libraries(self, flags):
        """{board path: local file}: LIBRARIES as .mpy under /lib."""
        with self._lock:
            key = ("lib",) + tuple(flags)
            if key not in self._compiled:
                dest = self.dir / ("lib%s" % "".join(flags).replace("-", "_"))
                files = {}
                for name in LIBRARIES:
                    pkg = mpy.compile_package(Path(mpy.library_path()) / name, dest, flags)
                    for f in sorted(pkg.rglob("*.mpy")):
                        files["/lib/" + f.relative_to(dest).as_posix()] = f
                self._compiled[key] = files
            return dict(self._compiled[key])

    def recording(self, kind):
        """The plain recording a virtual node of `kind` replays (sliced to
        the site's hours, if it gives them)."""
        with self._lock:
            if kind not in self._recordings:
                rec = self.site.recordings[kind]
                d = self.dir / ("rec-" + kind)
                d.mkdir()
                dst = d / Path(sites.RECORDING_PATH).name
                if rec.hours:
                    replay.make_slice(rec.path, rec.hours, dst)
                else:
                    replay.plain_copy(rec.path, dst)
                self._recordings[kind] = dst
            return self._recordings[kind]

    def ca(self):
        with self._lock:
            if self._ca is None:
                d = self.dir / "ca"
                d.mkdir()
                self._ca = d / Path(sites.CA_PATH).name
                self._ca.write_bytes(sites.ca_der(self.site.tls_ca))
            return self._ca

    def circuitpython(self):
        """{drive path: local file}: CircuitPython's code.py and boot.py, the
        package and LIBRARIES (under /lib) as .py sources: a .mpy from
        MicroPython's mpy-cross does not load on CircuitPython."""
        files = {"/code.py": CIRCUITPYTHON_FILES / "code.py", "/boot.py": CIRCUITPYTHON_FILES / "boot.py"}
        files.update(_sources(FIRMWARE / PACKAGE, "/"))
        for name in LIBRARIES:
            files.update(_sources(Path(mpy.library_path()) / name, "/lib/"))
        return files

    def config(self, node, cfg):
        """The node's config as a private file named config.json.new."""
        return self._private(node, "config.json.new", config_text(cfg))

    def settings(self, node, settings):
        """The node's settings.toml (`settings_text`) as a private file."""
        return self._private(node, "settings.toml", settings_text(settings))

    def _private(self, node, name, text):
        """File `name` of node `node`, readable by this user only (it may
        hold secrets)."""
        d = self.dir / ("node-" + node)
        d.mkdir(exist_ok=True)
        path = d / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        return path


def config_text(cfg):
    """config.json's bytes: the same config always gives the same text."""
    return json.dumps(cfg, sort_keys=True, separators=(",", ":")) + "\n"


def drive_config(cfg):
    """(config.json, settings.toml's keys) of a CircuitPython node from its
    checked config `cfg`: the fields of SETTINGS move to settings.toml, the
    rest stays (a Wi-Fi node's `network` keeps its `kind`)."""
    config = {k: dict(v) if isinstance(v, dict) else v for k, v in cfg.items()}
    settings = {}
    for section, key, name in SETTINGS:
        if key in config.get(section, {}):
            settings[name] = config[section].pop(key)
    return config, settings


def settings_text(settings):
    """settings.toml's text: one `KEY = "value"` line per setting, quoted so
    that CircuitPython's os.getenv and TOML read the same value."""
    lines = ["# CircuitPython reads these with os.getenv; written by citynode provision"]
    lines += ["%s = %s" % (k, tomlfile.quote(v)) for k, v in settings.items()]
    return "\n".join(lines) + "\n"


def drive_files(row, site, workspace, cfg):
    """{drive path: local file}: everything a CircuitPython node's drive
    holds, its config `cfg` split into config.json and settings.toml."""
    files = workspace.circuitpython()
    files.update(node_extras(row, site, workspace))
    config, settings = drive_config(cfg)
    files["/config.json"] = workspace.config(row.node, config)
    files["/settings.toml"] = workspace.settings(row.node, settings)
    return files


def node_extras(row, site, workspace):
    """{board path: local file} besides the firmware: the recording of a
    virtual board, the broker's CA."""
    extra = {}
    if row.board.virtual:
        extra[sites.RECORDING_PATH] = workspace.recording(row.kind)
    if site.tls_ca is not None:
        extra[sites.CA_PATH] = workspace.ca()
    return extra


def probe_paths(row, site):
    """The single files provisioning owns on a node's flash (the package
    folder is listed as a whole)."""
    if on_drive(row.board):
        paths = ["/boot.py", "/code.py", "/settings.toml", "/config.json"]
    else:
        paths = ["/boot.py", "/main.py", "/config.json"]
    if row.board.virtual:
        paths.append(sites.RECORDING_PATH)
    if site.tls_ca is not None:
        paths.append(sites.CA_PATH)
    return paths


def changes(files, on_board):
    """(to upload, to remove): the board paths of `files` ({board path: local
    file}) whose hash differs from `on_board`'s, and the files under the
    package's and the libraries' folders that are not in `files`."""
    upload = [p for p in sorted(files) if sha256_file(files[p]) != on_board.get(p)]
    owned = tuple("/%s/" % d for d in (PACKAGE,) + tuple("lib/" + n for n in LIBRARIES))
    remove = [p for p in sorted(on_board) if p.startswith(owned) and p not in files]
    return upload, remove
