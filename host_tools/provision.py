"""`citynode provision`: a fleet of boards from a site file and an inventory,
through the real mpremote.

    citynode provision --site sites/example/site.toml --inventory sites/example/inventory.csv

For every node of the inventory (host_tools.sites builds and checks its
config.json):

1. ask the board, in one `mpremote exec`, which MicroPython it runs
   (`sys.implementation`: version, `.mpy` version and architecture) and
   the SHA-256 of every file provisioning owns on its flash;
2. refuse a board whose MicroPython is too old or too new, or whose
   architecture is not the one its board profile names;
3. compile the firmware with mpy-cross for the board's `.mpy` version
   (once per version, shared by the batch);
4. upload, in one mpremote connection, only the files whose hash differs,
   remove stale files from /citynode (a leftover .py would shadow its .mpy),
   and write config.json as config.json.new renamed over the old one;
5. soft-reset from the friendly REPL (Ctrl-D), so boot.py and main.py run;
6. optionally wait for the node's `online` on the broker: a fresh one, sent
   after the reset, not the retained one of its previous run.

`run(...)` does the batch and returns the summary; `provision_node(...)`
does one board; `add_parser(sub)` wires the subcommand. docs/provisioning.md
has the formats, the steps and what is guaranteed.
"""

import contextlib
import functools
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from citynode import topic_prefix
from host_tools import mpy, replay, sites

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
PACKAGE = "citynode"
# Adafruit's BME280 driver and its bus helper (pinned host packages), which
# the firmware's BME280 driver imports: compiled into /lib on real boards.
LIBRARIES = ("adafruit_bme280", "adafruit_bus_device")
MIN_MICROPYTHON = (1, 20)  # the oldest MicroPython the firmware is written for
# sys.implementation._mpy >> 10: MicroPython's native architectures, in order.
ARCHES = ("none", "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp", "xtensa",
          "xtensawin", "rv32imc", "rv64imc")
UNIX_PLATFORMS = ("linux", "darwin")  # where the virtual board's unix port runs
BOOT_MARK = b"citynode boot"  # what firmware/boot.py prints
PROBE_MARK = "citynode-probe"
DEFAULT_JOBS = 4
DEFAULT_ONLINE_S = 60.0
PROBE_TIMEOUT_S = 30
UPLOAD_TIMEOUT_S = 300
RESET_TIMEOUT_S = 15.0

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


class ProvisionError(Exception):
    """One board could not be provisioned; `str()` is one line for the user."""


# ---- mpremote


def mpremote(port, steps, timeout=PROBE_TIMEOUT_S, resume=False):
    """Run mpremote on `port` with `steps` (each a list of arguments) chained
    with "+", in one connection; returns its stdout. `resume` skips the soft
    reset mpremote does first. ProvisionError with mpremote's last line."""
    try:
        cmd = [mpy.mpremote_binary(), "connect", port] + (["resume"] if resume else [])
    except mpy.ToolMissing as e:
        raise ProvisionError(str(e)) from None
    for i, step in enumerate(steps):
        cmd += (["+"] if i else []) + list(step)
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise ProvisionError("mpremote on %s took more than %d s; is a board on that port?"
                             % (port, timeout)) from None
    if p.returncode != 0:
        lines = [ln.strip() for ln in (p.stderr + p.stdout).splitlines() if ln.strip()]
        last = lines[-1] if lines else "exit status %d" % p.returncode
        if "failed to access" in last or "no device found" in last:
            last += "; check the port (the inventory's port column or --port)"
        raise ProvisionError("mpremote on %s failed: %s" % (port, last))
    return p.stdout


# ---- what runs on the board

# Prints the MicroPython it is, then the SHA-256 of each file asked for (None
# when missing) and of every file under the folders asked for.
_PROBE = """\
import sys, os, hashlib, binascii
def _h(p):
    try:
        f = open(p, 'rb')
    except OSError:
        return None
    d = hashlib.sha256()
    b = bytearray(512)
    m = memoryview(b)
    while True:
        n = f.readinto(b)
        if not n:
            break
        d.update(m[:n])
    f.close()
    return binascii.hexlify(d.digest()).decode()
def _walk(d, out):
    try:
        es = list(os.ilistdir(d))
    except OSError:
        return
    for e in es:
        if e[1] == 0x4000:
            _walk(d + '/' + e[0], out)
        else:
            out.append(d + '/' + e[0])
_i = sys.implementation
_f = %r
for _d in %r:
    _walk(_d, _f)
print(%r, _i.name, '.'.join([str(x) for x in _i.version[:3]]), getattr(_i, '_mpy', 0), sys.platform)
for _p in _f:
    print(%r, _h(_p), _p)
"""

# Before the copies: stale files go, folders are made.
_PREPARE = """\
import os
for _p in %r:
    os.remove(_p)
for _d in %r:
    try:
        os.mkdir(_d)
    except OSError:
        pass
"""

# After the copies: the new config replaces the old one in one rename (the
# firmware's own, which also copes with a FAT flash).
_COMMIT_CONFIG = """\
from citynode.storage import replace
replace('/config.json.new', '/config.json')
"""


@dataclass
class BoardInfo:
    """What a board said about itself and its flash."""

    name: str
    version: tuple
    mpy: int  # sys.implementation._mpy: version | sub-version << 8 | arch << 10
    platform: str
    files: dict = field(default_factory=dict)  # path -> SHA-256 hex, or None when missing

    @property
    def mpy_version(self):
        return (self.mpy & 0xFF, (self.mpy >> 8) & 3)

    @property
    def arch(self):
        i = self.mpy >> 10
        return ARCHES[i] if i < len(ARCHES) else "arch #%d" % i

    def describe(self):
        return "%s %s, .mpy %s, %s (%s)" % ("MicroPython" if self.name == "micropython" else self.name,
                                            ".".join(map(str, self.version)), mpy_text(self.mpy_version),
                                            self.arch, self.platform)


def mpy_text(v):
    """(6, 3) -> "6.3"; (6, 0) -> "6" (how mpy-cross names them)."""
    return "%d.%d" % v if v[1] else "%d" % v[0]


def parse_probe(text):
    """The BoardInfo in the probe's output."""
    info = None
    for line in text.splitlines():
        parts = line.strip().split(" ", 2)
        if len(parts) < 3 or parts[0] != PROBE_MARK:
            continue
        if info is None:
            name, version, rest = parts[1], parts[2].split(" ")[0], parts[2].split(" ")[1:]
            info = BoardInfo(name=name, version=tuple(int(x) for x in version.split(".") if x.isdigit()),
                             mpy=int(rest[0]), platform=rest[1] if len(rest) > 1 else "")
        else:
            info.files[parts[2]] = None if parts[1] == "None" else parts[1]
    if info is None:
        raise ProvisionError("the board did not answer the probe: %r" % text.strip()[-200:])
    return info


def probe(port, paths, folders):
    """Ask the board on `port` what it runs and the hashes of `paths` and of
    every file under `folders` (one mpremote exec; it soft-resets the board
    first, which stops a running node)."""
    code = _PROBE % (list(paths), list(folders), PROBE_MARK, PROBE_MARK)
    return parse_probe(mpremote(port, [["exec", code]]))


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
    profile names; ProvisionError (one line: what and the fix) otherwise."""
    where = "%s (%s, %s)" % (row.node, row.board.name, row.where)
    runs = ".".join(map(str, info.version))
    if info.name != "micropython":
        raise ProvisionError("%s runs %s, not MicroPython; flash MicroPython %d.%d or newer"
                             % (where, info.name, *MIN_MICROPYTHON))
    if info.version[:2] < MIN_MICROPYTHON:
        raise ProvisionError("%s runs MicroPython %s, too old: the firmware needs %d.%d or newer; flash a "
                             "newer MicroPython" % (where, runs, *MIN_MICROPYTHON))
    if row.board.virtual:
        if info.platform not in UNIX_PLATFORMS:
            raise ProvisionError("%s: the port holds a %s board, not a virtual board; fix the board or the "
                                 "port in the inventory" % (where, info.platform))
    elif info.arch != row.board.mpy_arch:
        raise ProvisionError("%s: the board runs MicroPython for %s (%s), but profile %s is %s; fix the "
                             "board or the port in the inventory"
                             % (where, info.arch, info.platform, row.board.name, row.board.mpy_arch))
    want = info.mpy_version
    newest = _mpy_cross_emits()
    if newest is None:
        raise ProvisionError("mpy-cross does not say which .mpy version it writes; run 'make setup'")
    if want > newest:
        raise ProvisionError("%s runs MicroPython %s with .mpy %s, newer than mpy-cross here writes (%s); "
                             "upgrade mpy-cross (requirements.lock)"
                             % (where, runs, mpy_text(want), mpy_text(newest)))
    if want == newest:
        return ()
    flags = ("-b", mpy_text(want))
    if _mpy_cross_emits(flags) != want:
        raise ProvisionError("%s runs MicroPython %s with .mpy %s, which mpy-cross here cannot write; flash "
                             "MicroPython %d.%d or newer" % (where, runs, mpy_text(want), *MIN_MICROPYTHON))
    return flags


# ---- the files of a node


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(65536), b""):
            h.update(chunk)
    return h.hexdigest()


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
                    raise ProvisionError(str(e)) from None
                except subprocess.CalledProcessError as e:
                    raise ProvisionError("mpy-cross failed: %s" % (e.stderr or "").strip()) from None
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

    def config(self, node, cfg):
        """The node's config as a private file named config.json.new."""
        d = self.dir / ("node-" + node)
        d.mkdir(exist_ok=True)
        path = d / "config.json.new"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(config_text(cfg))
        return path


def config_text(cfg):
    """config.json's bytes: the same config always gives the same text."""
    return json.dumps(cfg, sort_keys=True, separators=(",", ":")) + "\n"


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


def upload(port, files, upload_paths, remove):
    """One mpremote connection (no reset): remove `remove`, make folders,
    copy `upload_paths` (board paths, from `files`), then rename
    config.json.new over config.json if the config is among them."""
    folders = sorted({str(Path(p).parent) for p in upload_paths} - {"/"}, key=lambda d: d.count("/"))
    steps = [["exec", _PREPARE % (list(remove), folders)]]
    by_folder = {}
    for p in upload_paths:
        local = files[p]
        target = "/config.json.new" if p == "/config.json" else p  # local files bear the target's name
        by_folder.setdefault(str(Path(target).parent), []).append(str(local))
    for folder, locals_ in sorted(by_folder.items()):
        steps.append(["fs", "cp", *locals_, ":" if folder == "/" else ":%s/" % folder.lstrip("/")])
    if "/config.json" in upload_paths:
        steps.append(["exec", _COMMIT_CONFIG])
    mpremote(port, steps, timeout=UPLOAD_TIMEOUT_S, resume=True)


def soft_reset(port, timeout=RESET_TIMEOUT_S):
    """Ctrl-D at the friendly REPL (where mpremote leaves the board): a soft
    reset that runs boot.py and then main.py. Returns once boot.py has
    printed BOOT_MARK."""
    import serial

    try:
        con = serial.Serial(port, 115200, timeout=0.05)
    except (serial.SerialException, OSError) as e:
        raise ProvisionError("cannot open %s for the soft reset: %s" % (port, e)) from None
    with con:
        def read_until(token, seconds):
            buf = b""
            end = time.monotonic() + seconds
            while token not in buf and time.monotonic() < end:
                buf += con.read(4096)
            return token in buf

        con.write(b"\r")
        if not read_until(b">>> ", 5):
            raise ProvisionError("no REPL prompt on %s after mpremote; reset the board by hand" % port)
        con.write(b"\x04")
        if not read_until(BOOT_MARK, timeout):
            raise ProvisionError("no '%s' on %s within %.0f s of the soft reset; look at its console: "
                                 "mpremote connect %s repl" % (BOOT_MARK.decode(), port, timeout, port))


# ---- the node's status on the broker


class StatusWatch:
    """A subscriber (paho-mqtt) to the node's status topic, started before
    the reset: `wait()` returns once a fresh `online` arrives (delivered as
    a live message, not a retained one from before)."""

    def __init__(self, site, node):
        import paho.mqtt.client as mqtt

        self.where = "%s:%d" % (site.broker["host"], site.broker["port"])
        self.topic = topic_prefix(site.name, node) + "status"
        self._fresh = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self._refused = None
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311,
                        client_id="citynode-provision-%d-%s" % (os.getpid(), node))
        if "user" in site.broker:
            pw = site.secrets.get("broker.password")
            c.username_pw_set(site.broker["user"], pw.value if pw else None)
        if site.tls_ca is not None:
            import ssl

            c.tls_set_context(ssl.create_default_context(cadata=sites.ca_der(site.tls_ca)))
        c.on_connect = self._on_connect
        c.on_subscribe = lambda *_a: self._subscribed.set()
        c.on_message = self._on_message
        self.client = c
        try:
            c.connect(site.broker["host"], site.broker["port"], keepalive=30)
        except (OSError, ValueError) as e:
            raise ProvisionError("cannot reach the broker at %s to wait for online: %s; check [broker] in %s"
                                 % (self.where, e, site.path.name)) from None
        c.loop_start()
        end = time.monotonic() + 10
        while not self._subscribed.is_set() and self._refused is None and time.monotonic() < end:
            time.sleep(0.02)
        if not self._subscribed.is_set():
            self.close()
            raise ProvisionError("the broker at %s %s; check [broker] in %s" % (
                self.where, "refused the login: %s" % self._refused if self._refused else
                "did not take the subscription within 10 s", site.path.name))

    def _on_connect(self, client, _userdata, _flags, reason, _props):
        if reason.is_failure:
            self._refused = str(reason)
        else:
            client.subscribe(self.topic, 1)

    def _on_message(self, _client, _userdata, msg):
        if msg.retain:
            return  # from before the reset
        with self._cond:
            self._fresh.append(msg.payload)
            self._cond.notify_all()

    def wait(self, timeout, since):
        """Seconds from `since` (time.monotonic()) to the fresh `online`;
        ProvisionError on a safe-mode status (with its reason) or `timeout`
        s after `since`."""
        t0 = since
        with self._cond:
            while True:
                for payload in self._fresh:
                    if payload == b"online":
                        return time.monotonic() - t0
                    with contextlib.suppress(ValueError, AttributeError):
                        doc = json.loads(payload)
                        if doc.get("state") == "safe_mode":
                            raise ProvisionError("the node started in safe mode: %s" % doc.get("reason"))
                left = timeout - (time.monotonic() - t0)
                if left <= 0:
                    raise ProvisionError("no fresh 'online' on %s within %.0f s; check the node's network "
                                         "and [broker] (console: mpremote connect PORT repl)"
                                         % (self.topic, timeout))
                self._cond.wait(left)

    def close(self):
        with contextlib.suppress(Exception):  # closing anyway
            self.client.disconnect()
        self.client.loop_stop()


# ---- one node


def provision_node(row, port, cfg, site, workspace, wait_online=None, say=print):
    """Provision one board; returns {"uploaded", "removed", "online_s"}.
    ProvisionError (one line) when it cannot."""
    folders = ["/" + PACKAGE] + ([] if row.board.virtual else ["/lib/" + n for n in LIBRARIES])
    info = probe(port, probe_paths(row, site), folders)
    say("%s on %s" % (info.describe(), port))
    flags = compile_flags(info, row)
    files = workspace.firmware(flags)
    if not row.board.virtual:  # a board reads its BME280 through Adafruit's driver
        files.update(workspace.libraries(flags))
    files.update(node_extras(row, site, workspace))
    files["/config.json"] = workspace.config(row.node, cfg)
    to_upload, to_remove = changes(files, info.files)
    if to_upload:
        size = sum(Path(files[p]).stat().st_size for p in to_upload)
        say("uploading %s (%.1f KB)" % (_count(len(to_upload), "file"), size / 1024))
    if to_remove:
        say("removing %s: %s" % (_count(len(to_remove), "stale file"), " ".join(to_remove)))
    if to_upload or to_remove:
        upload(port, files, to_upload, to_remove)
    else:
        say("up to date: nothing to upload")
    watch = StatusWatch(site, row.node) if wait_online else None
    try:
        t_reset = time.monotonic()
        soft_reset(port)
        say("soft reset: boot.py and main.py run")
        online_s = None
        if watch is not None:
            online_s = watch.wait(wait_online, t_reset)
            say("online %.1f s after the reset" % online_s)
    finally:
        if watch is not None:
            watch.close()
    return {"uploaded": len(to_upload), "removed": len(to_remove), "online_s": online_s}


# ---- the batch


def state_path_for(inventory):
    """inventory.csv -> inventory.provision.json beside it."""
    p = Path(inventory)
    return p.with_name(p.stem + ".provision.json")


def load_state(path):
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise sites.SiteError("%s: not a provisioning state file (%s); delete it and run without `resume`"
                              % (path, e)) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), dict):
        raise sites.SiteError("%s: not a provisioning state file; delete it and run without `resume`" % path)
    return doc


def _save_state(path, state):
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


class Output:
    """Lines for the user, from any thread: a progress bar on a terminal
    (rich), plain lines otherwise. Every line passes a last check that no
    secret of the site is in it."""

    def __init__(self, out, secrets=()):
        self.out = out
        self.secrets = [s for s in secrets if s]
        self.lock = threading.Lock()
        self.progress = None
        self.task = None

    def start(self, total, what):
        if hasattr(self.out, "isatty") and self.out.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=Console(file=self.out), transient=True)
            self.task = self.progress.add_task(what, total=total)
            self.progress.start()

    def advance(self):
        if self.progress is not None:
            self.progress.advance(self.task)

    def stop(self):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def clean(self, text):
        for s in self.secrets:
            text = text.replace(s, sites.REDACTED)
        return text

    def line(self, text):
        text = self.clean(text)
        with self.lock:
            if self.progress is not None:
                self.progress.console.print(text, markup=False, highlight=False, soft_wrap=True)
            else:
                print(text, file=self.out, flush=True)


@dataclass
class Plan:
    """What a batch will do: the rows, each with its port and checked config."""

    site: sites.Site
    rows: list
    ports: dict
    configs: dict
    state_path: Path


def plan(site_path, inventory_path, only=(), ports=None, resume=False, state_path=None, need_ports=True):
    """Load and check everything before any board is touched; SiteError
    listing every problem (one line each)."""
    site = sites.load_site(site_path)
    rows = sites.load_inventory(inventory_path, site)
    names = [r.node for r in rows]
    errors = []
    for n in list(only) + list(ports or {}):
        if n not in names:
            errors.append("%s: no node %s; the nodes are %s" % (inventory_path, n, ", ".join(names)))
    if errors:
        raise sites.SiteError(errors)
    if only:
        rows = [r for r in rows if r.node in only]
    state_path = Path(state_path) if state_path else state_path_for(inventory_path)
    if resume:
        state = load_state(state_path)
        if state is None:
            raise sites.SiteError("%s: no state file, so nothing to resume; run without `resume` first"
                                  % state_path)
        rows = [r for r in rows if state["nodes"].get(r.node, {}).get("result") != "ok"]
    port_of = {}
    configs = {}
    for r in rows:
        port = (ports or {}).get(r.node) or r.port
        if port is None and need_ports:
            errors.append("%s: port: empty; fill in the board's serial port (e.g. /dev/ttyUSB0) or pass "
                          "`port` %s=PORT" % (r.where, r.node))
        port_of[r.node] = port
        try:
            configs[r.node] = sites.build_config(site, r)
        except sites.SiteError as e:
            errors.extend(e.lines)
    taken = {}
    for r in rows:
        p = port_of[r.node]
        if p is not None and p in taken:
            errors.append("%s: port: %s is also node %s's port; each board has its own port"
                          % (r.where, p, taken[p]))
        taken.setdefault(p, r.node)
    if errors:
        raise sites.SiteError(list(dict.fromkeys(errors)))  # a site-wide problem once, not once per node
    return Plan(site, rows, port_of, configs, state_path)


def run(site_path, inventory_path, only=(), ports=None, resume=False, wait_online=None, dry_run=False,
        state_path=None, jobs=DEFAULT_JOBS, out=None):
    """The batch: returns (exit status, summary rows). Input errors raise
    SiteError before any board is touched."""
    out = out or sys.stdout
    p = plan(site_path, inventory_path, only, ports, resume, state_path, need_ports=not dry_run)
    o = Output(out, p.site.secret_values())
    if not p.rows:
        o.line("nothing to resume: every node in %s is provisioned" % p.state_path)
        return EXIT_OK, []
    if dry_run:
        for r in p.rows:
            o.line("%s: %s board on %s%s" % (r.node, r.board.name, p.ports[r.node] or "(no port yet)",
                                              ", at %s" % r.location if r.location else ""))
            o.line("  config.json %s" % json.dumps(sites.redacted(p.configs[r.node]), sort_keys=True))
        o.line("dry run: %s checked, no board touched" % _count(len(p.rows), "node"))
        return EXIT_OK, []

    state = load_state(p.state_path) or {"nodes": {}}
    state.update(site=str(site_path), inventory=str(inventory_path))
    for r in p.rows:
        state["nodes"][r.node] = {"result": "pending", "port": p.ports[r.node]}
    _save_state(p.state_path, state)
    results = {}
    state_lock = threading.Lock()
    workspace = Workspace(p.site)

    def one(r):
        port = p.ports[r.node]

        def say(text):
            o.line("%s: %s" % (r.node, text))

        t0 = time.monotonic()
        say("%s board on %s%s" % (r.board.name, port, ", at %s" % r.location if r.location else ""))
        try:
            res = provision_node(r, port, p.configs[r.node], p.site, workspace, wait_online, say)
            res["result"] = "ok"
            online = res["online_s"]
            res["detail"] = "ok" + (", online after %.1f s" % online if online is not None else "")
        except (ProvisionError, OSError) as e:  # OSError: the port or the broker went away mid-way
            res = {"result": "failed", "detail": "FAILED: %s" % o.clean(str(e)), "uploaded": 0}
            say(res["detail"])
        res["seconds"] = round(time.monotonic() - t0, 1)
        results[r.node] = res
        with state_lock:
            state["nodes"][r.node] = {"result": res["result"], "detail": res["detail"], "port": port,
                                      "uploaded": res["uploaded"], "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
            _save_state(p.state_path, state)
        o.advance()

    o.start(len(p.rows), "provisioning")
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for f in [pool.submit(one, r) for r in p.rows]:
                f.result()
    finally:
        o.stop()
        workspace.close()

    summary = [{"node": r.node, "board": r.board.name, "port": p.ports[r.node], **results[r.node]}
               for r in p.rows]
    for line in summary_table(summary):
        o.line(line)
    failed = [s["node"] for s in summary if s["result"] != "ok"]
    if failed:
        o.line("%d of %s failed (%s); fix them, then: citynode provision ... --resume"
               % (len(failed), _count(len(summary), "node"), ", ".join(failed)))
        return EXIT_FAILED, summary
    o.line("%s provisioned; state in %s" % (_count(len(summary), "node"), p.state_path))
    return EXIT_OK, summary


def _count(n, what):
    return "%d %s%s" % (n, what, "" if n == 1 else "s")


def summary_table(summary):
    cols = (("NODE", "node"), ("BOARD", "board"), ("PORT", "port"), ("UPLOADED", "uploaded"),
            ("RESULT", "detail"))
    widths = [max([len(title)] + [len(str(s[key])) for s in summary]) for title, key in cols[:-1]]
    fmt = "  ".join("%%-%ds" % w for w in widths) + "  %s"
    return [fmt % tuple(t for t, _k in cols)] + [fmt % tuple(str(s[k]) for _t, k in cols) for s in summary]


# ---- `citynode provision`
