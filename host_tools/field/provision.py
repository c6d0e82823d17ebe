"""`citynode provision`: a fleet of boards from a site file and an inventory,
through the real mpremote.

    citynode provision --site sites/example/site.toml --inventory sites/example/inventory.csv

For every node of the inventory (host_tools.field.sites builds and checks its
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

A CircuitPython board (its profile's runtime) is reached through its
CIRCUITPY drive instead: its boot_out.txt says which CircuitPython and
board it is (checked before any board is touched), the firmware goes as .py
sources with CircuitPython's code.py and boot.py, the secrets in
settings.toml, and the changed files are written as one journalled update
(transport.Drive.put); then the technician presses RESET.

The board is reached through host_tools.field.transport (steps 1, 4, 5) and the
files are built by host_tools.field.build (steps 2, 3, 4); this module orders the
steps for each node and runs the batch. `run(...)` does the batch and
returns the summary; `provision_node(...)` does one board. docs/provisioning.md
has the formats, the steps and what is guaranteed.
"""

import contextlib
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from citynode import topic_prefix
from host_tools.field import build, sites
from host_tools.field.transport import Board, BoardError, Drive

BOOT_MARK = b"citynode boot"  # what firmware/boot.py prints
DEFAULT_JOBS = 4
DEFAULT_ONLINE_S = 60.0

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


class ProvisionError(BoardError):
    """One board could not be provisioned; `str()` is one line for the user."""


# After the copies: the new config replaces the old one in one rename (the
# firmware's own, which also copes with a FAT flash).
_COMMIT_CONFIG = """\
from citynode.storage import replace
replace('/config.json.new', '/config.json')
"""
PORT_HINT = "the inventory's port column or --port"
SERIAL_PORT = "serial port (e.g. /dev/ttyUSB0)"
DRIVE_PORT = "CIRCUITPY drive (its folder, CIRCUITPY or label:NAME)"


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
    folders = ["/" + build.PACKAGE] + ([] if row.board.virtual else ["/lib/" + n for n in build.LIBRARIES])
    drive = build.on_drive(row.board)
    if drive:
        board = Drive(port, PORT_HINT)
        info = board.identify()
        say("%s on %s" % (info.describe(), board.root))
        build.check_drive(info, row)
        info = board.probe(build.probe_paths(row, site), folders)
        if info.update:
            say("a cut-off update was found and %s, as the board's boot.py would" % info.update)
        files = build.drive_files(row, site, workspace, cfg)
    else:
        board = Board(port, PORT_HINT)
        info = board.probe(build.probe_paths(row, site), folders)
        say("%s on %s" % (info.describe(), port))
        flags = build.compile_flags(info, row)
        files = workspace.firmware(flags)
        if not row.board.virtual:  # a board reads its BME280 through Adafruit's driver
            files.update(workspace.libraries(flags))
        files.update(build.node_extras(row, site, workspace))
        files["/config.json"] = workspace.config(row.node, cfg)
    to_upload, to_remove = build.changes(files, info.files)
    verb, noun = ("writing", "write") if drive else ("uploading", "upload")
    if to_upload:
        size = sum(Path(files[p]).stat().st_size for p in to_upload)
        say("%s %s (%.1f KB)" % (verb, _count(len(to_upload), "file"), size / 1024))
    if to_remove:
        say("removing %s: %s" % (_count(len(to_remove), "stale file"), " ".join(to_remove)))
    if drive and (to_upload or to_remove):
        board.put(files, to_upload, to_remove)
    elif to_upload or to_remove:
        board.put(files, to_upload, to_remove, then=_COMMIT_CONFIG if "/config.json" in to_upload else None)
    else:
        say("up to date: nothing to %s" % noun)
    watch = StatusWatch(site, row.node) if wait_online else None
    try:
        t_reset = time.monotonic()
        if drive:  # no console here to reset it from
            say("press the board's RESET button: boot.py, then code.py start the node")
        else:
            board.soft_reset(BOOT_MARK)
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
        on_drive = build.on_drive(r.board)
        if port is None and need_ports:
            errors.append("%s: port: empty; fill in the board's %s or pass `port` %s=PORT"
                          % (r.where, DRIVE_PORT if on_drive else SERIAL_PORT, r.node))
        elif port is not None and need_ports and on_drive:
            try:  # a drive is checked now: reading it touches nothing
                drive = Drive(port, PORT_HINT)
                build.check_drive(drive.identify(), r)
                port = str(drive.root)
            except BoardError as e:
                errors.append("%s: port: %s" % (r.where, e))
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
    workspace = build.Workspace(p.site)

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
        except (BoardError, OSError) as e:  # OSError: the port or the broker went away mid-way
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
