"""Site files and inventories: what `citynode provision` builds node configs from.

    from host_tools.field import sites
    site = sites.load_site("sites/example/site.toml")       # + site.secrets.toml, env:NAME values
    rows = sites.load_inventory("sites/example/inventory.csv", site)
    cfg = sites.build_config(site, rows[0])                 # the node's /config.json, checked

A site file (TOML) holds what every node of a site shares: the site name,
the broker, Wi-Fi, node options, sensor defaults per kind and, for virtual
boards, the recordings they replay. An inventory (CSV) has one row per node:
its id, its board profile, its bays or the mount height of its street
sensor, its location and its serial port. docs/provisioning.md has both
formats.

Secrets (the broker password, the Wi-Fi password) never live in the site
file: a secret field there must read "env:NAME" (taken from the
environment), or the value sits in `<site>.secrets.toml` beside it, which
git ignores. They are held as `Secret` objects, whose str() and repr() show
where they came from, never the value.

Every error is a SiteError whose text names the file, the row (line) or
field, and what to write instead.
"""

import csv
import os
import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from citynode import sensors
from citynode.board.node import check_broker, check_config
from citynode.board.recording import RecordingError
from citynode.config import _ID_CHARS, DEFAULTS, check_sensor
from host_tools import tomlfile
from host_tools.desk import replay
from host_tools.field import boards

CA_PATH = "/ca.der"  # where the broker's CA certificate goes on the board
RECORDING_PATH = "/rec.jsonl"  # a virtual board's recording (hal "sim")
POWER = ("always_on", "duty_cycle")
DEFAULT_NTP = "pool.ntp.org"
REDACTED = "***"

# Bay kinds in the inventory's `bays` column, and the sensor type each is:
# every bay type (citynode.sensors), named without its "bay_".
BAY_KINDS = {t[len("bay_"):]: t for t in sensors.TYPES if sensors.is_bay(t)}
WATER_ID = "street"  # the water sensor of a street node (mount_mm)
ENV_ID = "env"  # the air sensor every node gets when the site has [sensors.env]

_SITE_TOP = ("site", "broker", "wifi", "node", "sensors", "virtual")
_BROKER = ("host", "port", "keepalive", "user", "password", "tls")
_WIFI = ("ssid", "password")
_NODE = ("ntp", "power", "ha_discovery", "outbox_dir", "health_s")
_VIRTUAL = ("speed", "bays", "water")
_RECORDING = ("recording", "hours")
SECRET_FIELDS = (("broker", "password"), ("wifi", "password"))

COLUMNS = ("node", "board", "port", "bays", "mount_mm", "location")
_REQUIRED_COLUMNS = ("node", "board")
MOUNT_RANGE_MM = (300, 10000)  # a street sensor hangs 0.3-10 m above the road
_LATLON = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*$")


class SiteError(ValueError):
    """A site file or inventory that cannot be used. `lines` holds one line
    per problem (file, row or field, the fix); str() joins them."""

    def __init__(self, lines):
        self.lines = [lines] if isinstance(lines, str) else list(lines)
        super().__init__("\n".join(self.lines))


class Secret:
    """A secret value; str() and repr() name its source, never the value.
    One taken from an unset environment variable is an error only when a
    node needs it: `value` then raises SiteError."""

    __slots__ = ("_value", "source", "_missing")

    def __init__(self, value, source, missing=None):
        self._value = value
        self.source = source
        self._missing = missing

    @property
    def value(self):
        if self._value is None:
            raise SiteError(self._missing)
        return self._value

    def __repr__(self):
        return "<secret from %s>" % self.source

    __str__ = __repr__


@dataclass
class VirtualRecording:
    """The recording a virtual node of one kind replays (bays or water)."""

    path: Path
    hours: tuple | None
    sensors: dict  # sensor id -> type, from the recording's header


@dataclass
class Site:
    path: Path
    name: str
    broker: dict  # host, port, keepalive, user; the password is in `secrets`
    tls_ca: Path | None
    wifi_ssid: str | None
    node: dict  # ntp, power, ha_discovery, outbox_dir, health_s
    sensor_defaults: dict  # sensor type -> parameters
    speed: float
    recordings: dict  # "bays" / "water" -> VirtualRecording
    secrets: dict = field(default_factory=dict)  # "broker.password" -> Secret

    def secret_values(self):
        """The secret strings known, for checks that they are never shown."""
        return [s._value for s in self.secrets.values() if s._value]


@dataclass
class Row:
    """One inventory row: a node to provision."""

    path: Path
    line: int
    node: str
    board: boards.Board
    port: str | None
    bays: list  # [(bay id, "ultrasonic" | "magnetic")]
    mount_mm: int | None
    location: str

    @property
    def where(self):
        return "%s:%d" % (self.path, self.line)

    @property
    def kind(self):
        return "bays" if self.bays else "water"


# ---- the site file


def _site_fail(path, field_, what):
    if not field_.isprintable():  # a key written with escapes: shown with them, on one line
        field_ = repr(field_)
    raise SiteError("%s: %s: %s" % (path, field_, what))


def _read_text(path, example):
    """The text of a site file or inventory (a UTF-8 byte-order mark aside)."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SiteError("%s: no such file; write one from %s" % (path, example)) from None
    except OSError as e:
        raise SiteError("%s: cannot read: %s" % (path, e.strerror)) from None
    except UnicodeDecodeError:
        raise SiteError("%s: not UTF-8 text; save it as UTF-8" % path) from None


def _read_toml(path):
    text = _read_text(path, "sites/example/site.toml")
    try:
        return tomlfile.loads(text)
    except tomlfile.TOMLDecodeError as e:
        raise SiteError("%s: not valid TOML: %s; see docs/provisioning.md for the format"
                        % (path, e)) from None


def _table(path, data, key, allowed, required=()):
    t = data.get(key, {})
    if not isinstance(t, dict):
        _site_fail(path, key, "must be a table: write [%s] on its own line, then its fields" % key)
    for k in t:
        if k not in allowed:
            _site_fail(path, "%s.%s" % (key, k), "unknown field; [%s] takes %s" % (key, ", ".join(allowed)))
    for k in required:
        if k not in t:
            _site_fail(path, "%s.%s" % (key, k), "missing; add %s = ... under [%s]" % (k, key))
    return t


def secrets_path(site_path):
    """`riverside.toml` -> `riverside.secrets.toml`, in the same folder."""
    p = Path(site_path)
    return p.with_name(p.stem + ".secrets.toml")


def _load_secrets(site_path, data):
    """The secret values: "env:NAME" in the site file, or the secrets file."""
    spath = secrets_path(site_path)
    sdata = _read_toml(spath) if spath.exists() else {}
    allowed = ", ".join("%s.%s" % f for f in SECRET_FIELDS)
    for sect, table in sdata.items():
        if not isinstance(table, dict):
            _site_fail(spath, sect, "only %s belong here, as [section] key = \"value\"" % allowed)
        for key in table:
            if (sect, key) not in SECRET_FIELDS:
                _site_fail(spath, "%s.%s" % (sect, key), "not a secret: only %s belong here; put it in %s"
                           % (allowed, Path(site_path).name))
    secrets = {}
    for sect, key in SECRET_FIELDS:
        name = "%s.%s" % (sect, key)
        in_site = data.get(sect, {}).get(key) if isinstance(data.get(sect), dict) else None
        in_file = sdata.get(sect, {}).get(key)
        if in_site is not None and in_file is not None:
            _site_fail(site_path, name, "given here and in %s; keep it in one place" % spath.name)
        if in_site is not None:
            if not isinstance(in_site, str) or not in_site.startswith("env:"):
                _site_fail(site_path, name, "a secret must not be written in the site file (it goes to git); "
                           "write %s = \"env:NAME\" and export NAME, or put it in %s under [%s]"
                           % (key, spath.name, sect))
            var = in_site[4:]
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", var):
                _site_fail(site_path, name, "%r is not an environment variable name; write e.g. "
                           "\"env:CITYNODE_%s_%s\"" % (var, sect.upper(), key.upper()))
            missing = ("%s: %s: environment variable %s is not set; export it, or put the %s in %s under [%s]"
                       % (site_path, name, var, key, spath.name, sect))
            secrets[name] = Secret(os.environ.get(var) or None, "environment variable %s" % var, missing)
        elif in_file is not None:
            if not isinstance(in_file, str) or not in_file:
                _site_fail(spath, name, "must be a non-empty string in quotes")
            secrets[name] = Secret(in_file, str(spath))
    return secrets


def _check_hours(path, name, v):
    if (not isinstance(v, list) or len(v) != 2 or any(type(x) not in (int, float) for x in v)
            or not 0 <= v[0] < v[1]):
        _site_fail(path, name, "must be [FROM, TO] in hours of the recording, FROM < TO, e.g. [7.5, 8.0]")
    return (float(v[0]), float(v[1]))


def _load_recording(path, name, t):
    if not isinstance(t, dict):
        _site_fail(path, name, "must be a table: [%s] with recording = \"FILE\" (and hours)" % name)
    for k in t:
        if k not in _RECORDING:
            _site_fail(path, "%s.%s" % (name, k), "unknown field; [%s] takes %s"
                       % (name, ", ".join(_RECORDING)))
    rec = t.get("recording")
    if not isinstance(rec, str) or not rec:
        _site_fail(path, name + ".recording", "missing; write recording = \"FILE.jsonl.gz\" (relative to "
                   "this file)")
    rpath = (Path(path).parent / rec).resolve()
    try:
        header = replay.read_header(rpath)
    except FileNotFoundError:
        _site_fail(path, name + ".recording", "%s: no such file; give a path relative to %s"
                   % (rpath, Path(path).name))
    except OSError as e:
        _site_fail(path, name + ".recording", "%s: cannot read: %s" % (rpath, e.strerror))
    except (RecordingError, EOFError, ValueError) as e:
        _site_fail(path, name + ".recording", "not a usable recording: %s" % e)
    if header.get("bus"):
        _site_fail(path, name + ".recording", "%s holds bus-level samples, which only the desk's replay "
                   "reads; use a recording in SI values (version 1)" % rpath.name)
    hours = _check_hours(path, name + ".hours", t["hours"]) if "hours" in t else None
    return VirtualRecording(rpath, hours, {s["id"]: s["type"] for s in header["sensors"]})


def _check_sensor_defaults(path, data):
    sens = data.get("sensors", {})
    if not isinstance(sens, dict):
        _site_fail(path, "sensors", "must be tables: [sensors.water], [sensors.env], ...")
    out = {}
    for kind, params in sens.items():
        name = "sensors.%s" % kind
        if kind not in sensors.TYPES:
            _site_fail(path, name, "unknown sensor type; the types are %s" % ", ".join(sorted(sensors.TYPES)))
        if not isinstance(params, dict):
            _site_fail(path, name, "must be a table: [%s] followed by its parameters" % name)
        for k in ("id", "type"):
            if k in params:
                _site_fail(path, "%s.%s" % (name, k), "comes from the inventory and the table's name; "
                           "remove it")
        if "mount_mm" in params:
            _site_fail(path, name + ".mount_mm", "is per node: put it in the inventory's mount_mm column")
        try:
            check_sensor(dict(params, id="default", type=kind))
        except ValueError as e:
            what = str(e)[len("sensor default: "):]
            _site_fail(path, name, "%s; fix it under [%s] (docs/recording-format.md lists the fields)"
                       % (what, name))
        out[kind] = dict(params)
    return out


def load_site(path):
    """The Site in TOML file `path` (secrets resolved), checked field by field."""
    path = Path(path)
    data = _read_toml(path)
    for k in data:
        if k not in _SITE_TOP:
            _site_fail(path, k, "unknown field; a site file has %s" % ", ".join(_SITE_TOP))
    name = data.get("site")
    if not isinstance(name, str) or not name or any(c not in _ID_CHARS for c in name):
        what = "missing" if name is None else "%r is not usable" % (name,)
        _site_fail(path, "site", "%s; write e.g. site = \"riverside\" (letters, digits, '-' and '_': it "
                   "becomes an MQTT topic level)" % what)
    secrets = _load_secrets(path, data)

    b = _table(path, data, "broker", _BROKER, ("host", "port"))
    broker = {k: b[k] for k in ("host", "port", "keepalive", "user") if k in b}
    broker.setdefault("keepalive", DEFAULTS["keepalive"])
    check = dict(broker)
    if "broker.password" in secrets:
        check["password"] = "x"  # its presence matters here, never its value
    try:
        check_broker(check)
    except ValueError as e:
        raise SiteError("%s: %s; fix it under [broker]" % (path, str(e)[len("config.json: "):])) from None
    tls_ca = None
    if "tls" in b:
        tls = b["tls"]
        if not isinstance(tls, dict) or set(tls) != {"ca"} or not isinstance(tls["ca"], str):
            _site_fail(path, "broker.tls", "must be a table with ca = \"FILE\" only: [broker.tls] then "
                       "ca = \"ca.pem\" (the CA that signed the broker's certificate, PEM or DER)")
        tls_ca = (path.parent / tls["ca"]).resolve()
        try:
            ca_der(tls_ca)
        except SiteError as e:
            _site_fail(path, "broker.tls.ca", str(e))

    wifi = _table(path, data, "wifi", _WIFI)
    ssid = wifi.get("ssid")
    if ssid is not None and (not isinstance(ssid, str) or not ssid):
        _site_fail(path, "wifi.ssid", "must be the network's name in quotes, e.g. ssid = \"city-iot\"")
    if ssid is None and "wifi.password" in secrets:
        _site_fail(path, "wifi.ssid", "missing: a Wi-Fi password is given, so add ssid = \"...\" under "
                   "[wifi]")

    n = _table(path, data, "node", _NODE)
    node = {"ntp": n.get("ntp", DEFAULT_NTP), "power": n.get("power", "always_on"),
            "ha_discovery": n.get("ha_discovery", False),
            "outbox_dir": n.get("outbox_dir", DEFAULTS["outbox_dir"]),
            "health_s": n.get("health_s", DEFAULTS["health_s"])}
    if not isinstance(node["ntp"], str) or not node["ntp"]:
        _site_fail(path, "node.ntp", "must be an NTP server's name in quotes, e.g. ntp = \"pool.ntp.org\"")
    if node["power"] not in POWER:
        _site_fail(path, "node.power", "%r is not a power profile; write power = \"always_on\" or "
                   "\"duty_cycle\"" % (node["power"],))
    if type(node["ha_discovery"]) is not bool:
        _site_fail(path, "node.ha_discovery", "must be true or false (no quotes)")
    if not isinstance(node["outbox_dir"], str) or not node["outbox_dir"].startswith("/"):
        _site_fail(path, "node.outbox_dir", "must be a folder on the board's flash, e.g. \"/outbox\"")
    if type(node["health_s"]) not in (int, float) or node["health_s"] <= 0:
        _site_fail(path, "node.health_s", "must be a number of seconds above 0, e.g. health_s = 60")

    sensor_defaults = _check_sensor_defaults(path, data)

    v = _table(path, data, "virtual", _VIRTUAL)
    speed = v.get("speed", 1)
    if type(speed) not in (int, float) or speed < 0:
        _site_fail(path, "virtual.speed", "must be a number, 0 or more (1 = real time, 0 = as fast as the "
                   "board goes)")
    recordings = {k: _load_recording(path, "virtual." + k, v[k]) for k in ("bays", "water") if k in v}
    return Site(path=path, name=name, broker=broker, tls_ca=tls_ca, wifi_ssid=ssid, node=node,
                sensor_defaults=sensor_defaults, speed=speed, recordings=recordings, secrets=secrets)


def ca_der(path):
    """The CA certificate at `path` (PEM or DER) as DER bytes, as the board's
    TLS loads it; SiteError if it is neither."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise SiteError("%s: cannot read: %s; give the CA certificate's path relative to the site file"
                        % (path, e.strerror)) from None
    if data.lstrip().startswith(b"-----BEGIN CERTIFICATE-----"):
        try:
            return ssl.PEM_cert_to_DER_cert(data.decode("ascii"))
        except ValueError:
            raise SiteError("%s: a broken PEM certificate; export the CA again" % path) from None
    if data[:1] != b"\x30":  # a DER certificate is an ASN.1 SEQUENCE
        raise SiteError("%s: neither a PEM nor a DER certificate; give the CA's .pem or .der file" % path)
    return data


# ---- the inventory


def _row_fail(path, line, column, what):
    return "%s:%d: %s: %s" % (path, line, column, what)


def _parse_bays(text):
    """"bay-1:ultrasonic bay-2:magnetic" -> [(id, kind)]; ValueError with the fix."""
    bays = []
    for item in text.split():
        bay, sep, kind = item.partition(":")
        if not sep or kind not in BAY_KINDS:
            raise ValueError("%r is not BAY:KIND with KIND ultrasonic or magnetic; write e.g. "
                             "\"bay-1:ultrasonic bay-2:magnetic\"" % item)
        if not bay or any(c not in _ID_CHARS for c in bay):
            raise ValueError("bay id %r: use letters, digits, '-' and '_' (it becomes an MQTT topic level)"
                             % bay)
        if bay == ENV_ID:
            raise ValueError("bay id %r is the air sensor's; name the bay otherwise" % bay)
        if any(b == bay for b, _k in bays):
            raise ValueError("bay %s is listed twice; give each bay once" % bay)
        bays.append((bay, kind))
    return bays


def _check_location(text):
    m = _LATLON.match(text)
    if not m:
        return
    lat, lon = float(m.group(1)), float(m.group(2))
    if not -90 <= lat <= 90:
        raise ValueError("latitude %g is out of range (-90 to 90); write \"LAT,LON\" in degrees" % lat)
    if not -180 <= lon <= 180:
        raise ValueError("longitude %g is out of range (-180 to 180); write \"LAT,LON\" in degrees" % lon)


def _read_rows(path):
    """(line, {column: cell}) for every row of the CSV, header checked."""
    text = _read_text(path, "sites/example/inventory.csv")
    # Comment lines (#...) and blank lines are kept as empty lines, so the
    # reader's line numbers stay those of the file.
    cleaned = ["\n" if ln.lstrip().startswith("#") or not ln.strip() else ln
               for ln in text.splitlines(keepends=True)]
    reader = csv.reader(cleaned)
    header = None
    rows = []
    for cells in reader:
        if not cells:
            continue
        line = reader.line_num
        if header is None:
            header = [c.strip() for c in cells]
            for c in header:
                if c not in COLUMNS:
                    raise SiteError(_row_fail(path, line, "header", "unknown column %r; the columns are %s"
                                              % (c, ", ".join(COLUMNS))))
                if header.count(c) > 1:
                    raise SiteError(_row_fail(path, line, "header", "column %r appears twice" % c))
            for c in _REQUIRED_COLUMNS:
                if c not in header:
                    raise SiteError(_row_fail(path, line, "header", "column %r is missing; the first line "
                                              "names the columns, e.g. node,board,port,bays,mount_mm,location"
                                              % c))
            continue
        if len(cells) > len(header):
            rows.append((line, None, "%d cells but the header has %d; put a location with a comma in quotes, "
                         "e.g. \"52.37,4.89\"" % (len(cells), len(header))))
            continue
        rows.append((line, {c: (cells[i].strip() if i < len(cells) else "") for i, c in enumerate(header)},
                     None))
    if header is None:
        raise SiteError("%s: empty; the first line names the columns, e.g. "
                        "node,board,port,bays,mount_mm,location" % path)
    return rows


def load_inventory(path, site):
    """The inventory's rows (Row), each checked against the site and its
    board; SiteError listing every bad row (one line each)."""
    path = Path(path)
    errors = []
    out = []
    seen = {}
    for line, cells, problem in _read_rows(path):
        if problem:
            errors.append(_row_fail(path, line, "row", problem))
            continue
        try:
            row = _parse_row(path, line, cells, site)
        except SiteError as e:
            errors.extend(e.lines)
            continue
        if row.node in seen:
            errors.append(_row_fail(path, line, "node", "%s is also on line %d; node ids must be unique in a "
                                    "site" % (row.node, seen[row.node])))
            continue
        seen[row.node] = line
        out.append(row)
    if errors:
        raise SiteError(errors)
    if not out:
        raise SiteError("%s: no nodes; add a row per node under the header line" % path)
    return out


def _parse_row(path, line, cells, site):
    def fail(column, what):
        raise SiteError(_row_fail(path, line, column, what))

    node = cells.get("node", "")
    if not node or any(c not in _ID_CHARS for c in node):
        fail("node", "%s; use letters, digits, '-' and '_' (it becomes an MQTT topic level)"
             % ("empty" if not node else "%r is not usable" % node))
    bname = cells.get("board", "")
    if bname not in boards.names():
        fail("board", "%s; use one of %s (citynode boards lists them)"
             % ("empty" if not bname else "%r is not a board profile" % bname, ", ".join(boards.names())))
    board = boards.load(bname)
    try:
        bays = _parse_bays(cells.get("bays", ""))
    except ValueError as e:
        fail("bays", str(e))
    mount = cells.get("mount_mm", "")
    if bool(bays) == bool(mount):
        fail("bays/mount_mm", "a node has bays (a parking node) or mount_mm (a street water sensor); fill in "
             "exactly one of them")
    mount_mm = None
    if mount:
        if not mount.isdigit():
            fail("mount_mm", "%r must be a whole number of millimetres, e.g. 3500" % mount)
        mount_mm = int(mount)
        if not MOUNT_RANGE_MM[0] <= mount_mm <= MOUNT_RANGE_MM[1]:
            fail("mount_mm", "%d mm is not a mount height (%d to %d mm above the road)"
                 % ((mount_mm,) + MOUNT_RANGE_MM))
    location = cells.get("location", "")
    try:
        _check_location(location)
    except ValueError as e:
        fail("location", str(e))
    row = Row(path=path, line=line, node=node, board=board, port=cells.get("port") or None, bays=bays,
              mount_mm=mount_mm, location=location)
    if board.network == "wifi" and (site.wifi_ssid is None or "wifi.password" not in site.secrets):
        fail("board", "%s joins Wi-Fi, but %s has no [wifi] ssid and password; add them (the password in %s "
             "or as \"env:NAME\")" % (bname, site.path.name, secrets_path(site.path).name))
    if board.virtual:
        rec = site.recordings.get(row.kind)
        if rec is None:
            fail("board", "a virtual %s node replays a recording: add [virtual.%s] recording = \"FILE\" to %s"
                 % ("parking" if bays else "street", row.kind, site.path.name))
        for s in node_sensors(site, row):
            if rec.sensors.get(s["id"]) != s["type"]:
                has = ", ".join("%s (%s)" % kv for kv in rec.sensors.items())
                fail("bays" if bays else "mount_mm", "the virtual board replays %s, which has no %s sensor "
                     "%s (it has %s); name the node's sensors as in the recording"
                     % (rec.path.name, s["type"], s["id"], has))
    elif site.node["power"] == "duty_cycle" and not board.deep_sleep:
        fail("board", "%s cannot deep-sleep, but %s says power = \"duty_cycle\"; use a board that can, or "
             "power = \"always_on\"" % (bname, site.path.name))
    try:
        boards.hal_config(board, node_sensors(site, row))
    except boards.BoardError as e:
        fail("bays" if bays else "board", "%s; use a board with more connectors or split the node" % e)
    return row


# ---- the node's config


def node_sensors(site, row):
    """The node's sensor list: its bays or its water sensor, then the air
    sensor when the site has [sensors.env]; parameters from the site's
    defaults per sensor type."""
    sensors = []
    for bay, kind in row.bays:
        t = BAY_KINDS[kind]
        sensors.append(dict({"id": bay, "type": t}, **site.sensor_defaults.get(t, {})))
    if row.mount_mm is not None:
        sensors.append(dict({"id": WATER_ID, "type": "water"}, **site.sensor_defaults.get("water", {}),
                            mount_mm=row.mount_mm))
    if "env" in site.sensor_defaults:
        sensors.append(dict({"id": ENV_ID, "type": "env"}, **site.sensor_defaults["env"]))
    return sensors


def node_config(site, node, board, sensors, broker, *, wifi=None, tls=False, ntp=DEFAULT_NTP,
                power="always_on", ha_discovery=False, outbox_dir=DEFAULTS["outbox_dir"],
                health_s=DEFAULTS["health_s"], speed=1):
    """A node's /config.json (docs/node.md, docs/provisioning.md): the one
    place its fields are put together. `broker`: host, port, keepalive and
    optionally user, password; `wifi`: (ssid, password) for a Wi-Fi board;
    `tls`: the CA goes to CA_PATH. A virtual board gets the simulated
    hardware layer replaying RECORDING_PATH at `speed`, and no network,
    clock or power fields (its host has them)."""
    cfg = {"site": site, "node": node, "broker": dict(broker)}
    if tls:
        cfg["broker"]["tls"] = {"ca": CA_PATH}
    hal = boards.hal_config(board, sensors)
    if board.virtual:
        hal.update(recording=RECORDING_PATH, speed=speed)
    else:
        if board.network == "wifi":
            cfg["network"] = {"kind": "wifi", "ssid": wifi[0], "password": wifi[1]}
        else:
            cfg["network"] = dict({"kind": "ethernet"}, **board.ethernet)
        cfg.update(ntp=ntp, power=power, ha_discovery=ha_discovery)
    cfg.update(sensors=sensors, hal=hal, outbox_dir=outbox_dir, health_s=health_s)
    return cfg


def build_config(site, row):
    """The checked config of inventory row `row`; SiteError naming the row
    and the field (the firmware's own check_config decides)."""
    broker = dict(site.broker)
    if "broker.password" in site.secrets:
        broker["password"] = site.secrets["broker.password"].value
    wifi = None
    if row.board.network == "wifi":
        wifi = (site.wifi_ssid, site.secrets["wifi.password"].value)
    cfg = node_config(site.name, row.node, row.board, node_sensors(site, row), broker, wifi=wifi,
                      tls=site.tls_ca is not None, speed=site.speed, **site.node)
    try:
        check_config(cfg)
    except ValueError as e:
        raise SiteError("%s: node %s: the firmware refuses its config: %s; fix the site file or the row"
                        % (row.where, row.node, e)) from None
    return cfg


def redacted(cfg):
    """A copy of config `cfg` with every secret replaced by REDACTED."""
    out = dict(cfg)
    for key in ("broker", "network"):
        if isinstance(out.get(key), dict) and "password" in out[key]:
            out[key] = dict(out[key], password=REDACTED)
    return out
