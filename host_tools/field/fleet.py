"""The fleet as a consumer of its MQTT traffic sees it: one state per node,
built from the messages on `citynode/<site>/<node>/<kind>`, and how to show
it (a rich table, or plain lines).

    fleet = Fleet(stale_s=180)
    record = fleet.take(topic, payload_bytes, retained, time.monotonic())
    for record in fleet.check_stale(time.monotonic()):
        ...                      # a node has gone quiet
    console.print(render_table(fleet, time.monotonic(), "citynode monitor"))

`Fleet.take` returns the message normalised (site, node, kind, seq,
payload, flags), which is what `citynode monitor --json` prints. Sequence
numbers (docs/payloads.md: `seq` rises by one per message per node) are
checked per node by `SeqTrack`: gaps, QoS 1 repeats, late arrivals, a
counter that went back. Retained messages delivered at subscription time
are old state: they update the view (status, bays) but not the sequence
accounting. Used by `citynode monitor` (host_tools/field/monitor.py) and the demo
(host_tools/desk/demo.py).
"""

import json
import zlib
from collections import OrderedDict
from urllib.parse import urlparse

DEFAULT_STALE_S = 180  # 3 × the node's default health interval (health_s 60, docs/node.md)
PREFIX = "citynode"


class BrokerURLError(ValueError):
    """A broker URL that is not mqtt://HOST:PORT; `str()` is one line."""


def parse_broker(url):
    """mqtt://host:port (or host:port) -> (host, port); port 1883 by default."""
    u = urlparse(url if "://" in url else "mqtt://" + url)
    if u.scheme not in ("mqtt", "tcp") or not u.hostname:
        raise BrokerURLError("`broker` must look like mqtt://HOST:PORT, not %r" % url)
    try:
        port = u.port or 1883
    except ValueError:
        raise BrokerURLError("`broker`: bad port in %r" % url) from None
    return u.hostname, port


# ---- sequence numbers


class SeqTrack:
    """Sequence accounting of one node's messages.

    `contiguous=True`: this consumer should see every number, so a jump
    forward is a gap (its numbers are remembered as holes, and one that
    arrives later is `late`). `contiguous=False` (a member of a shared
    subscription group, which sees only its share): repeats are still told,
    gaps are not. A number seen among the last `WINDOW` ones with the same
    payload is a QoS 1 repeat (`duplicate`); with another payload, or a
    number below the highest that is neither recent nor a hole, the node's
    counter went back (a fresh outbox) and the accounting starts again from
    there (`seq_reset`). `first`: the number expected first (the demo knows
    its nodes start at 1); None takes the first one seen as the start.
    """

    WINDOW = 512  # recent numbers kept with their payload's CRC-32
    MAX_HOLES = 1024  # runs of missing numbers remembered; older runs can no longer be filled

    def __init__(self, contiguous=True, first=None):
        self.contiguous = contiguous
        self.highest = None if first is None else first - 1
        self.holes = []  # [lo, hi] inclusive, ascending
        self.missing = 0  # numbers skipped and not (yet) seen
        self.received = 0  # messages with a seq, repeats included
        self.distinct = 0
        self.duplicates = 0
        self.late = 0
        self.resets = 0
        self._recent = OrderedDict()  # seq -> crc32 of the payload

    def take(self, seq, digest):
        """Account for message number `seq` whose payload has CRC `digest`;
        returns its flags: {}, {"gap": n}, {"late": True},
        {"duplicate": True} or {"seq_reset": True}."""
        self.received += 1
        known = self._recent.get(seq)
        if known == digest:
            self.duplicates += 1
            return {"duplicate": True}
        flags = {}
        if known is not None:
            self._restart(seq)
            flags["seq_reset"] = True
        elif not self.contiguous or self.highest is None:
            if self.highest is None or seq > self.highest:
                self.highest = seq
        elif seq > self.highest:
            gap = seq - self.highest - 1
            if gap:
                self.holes.append([self.highest + 1, seq - 1])
                del self.holes[:-self.MAX_HOLES]
                self.missing += gap
                flags["gap"] = gap
            self.highest = seq
        elif self._fill(seq):
            self.late += 1
            flags["late"] = True
        else:
            self._restart(seq)
            flags["seq_reset"] = True
        self.distinct += 1
        self._recent[seq] = digest
        if len(self._recent) > self.WINDOW:
            self._recent.popitem(last=False)
        return flags

    def _fill(self, seq):
        for i, (lo, hi) in enumerate(self.holes):
            if lo <= seq <= hi:
                parts = [[lo, seq - 1]] if seq > lo else []
                parts += [[seq + 1, hi]] if seq < hi else []
                self.holes[i:i + 1] = parts
                self.missing -= 1
                return True
        return False

    def _restart(self, seq):
        self.resets += 1
        self.highest = seq
        self.holes = []
        self._recent.clear()


# ---- one node


class NodeState:
    """What has been heard from one node. `last_seen` and `known_since` are
    in the caller's clock (time.monotonic()); `last_seen` counts live
    messages only (None while only retained state is known)."""

    def __init__(self, site, node, now, contiguous=True, first_seq=None, label=None, expected=None):
        self.site = site
        self.node = node
        self.label = label  # a short name to show above the node's (the demo's "parking")
        self.expected = expected  # messages with a seq the caller expects, if it knows
        self.known_since = now
        self.last_seen = None
        self.stale = False
        self.status = None  # "online", "offline", "safe_mode", or what the node sent
        self.reason = None  # safe mode's reason
        self.bays = {}
        self.water = {}  # sensor -> last water payload
        self.env = None
        self.health = None
        self.counts = {}  # kind -> messages, first sightings of a seq only
        self.alerts = 0
        self.occupancy_changes = 0
        self.faults = 0
        self.active_faults = set()  # (sensor, fault) raised and not cleared
        self.seq = SeqTrack(contiguous, first_seq)

    def done(self):
        """Whether every expected message has arrived (the demo)."""
        return self.expected is not None and self.seq.distinct >= self.expected

    def take_status(self, payload):
        """`payload` is the normalised status object ({"state": ...})."""
        self.status = payload.get("state")
        self.reason = payload.get("reason")
        if self.status == "offline":
            self.stale = False

    def take_reading(self, kind, p):
        """A first sighting of a payload (dict) from the node."""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if kind.startswith("bay/"):
            self.bays[kind[4:]] = p.get("state")
        elif kind == "water":
            self.water[str(p.get("sensor", "?"))] = p
        elif kind == "env":
            self.env = p
        elif kind == "health":
            self.health = p
        elif kind == "event":
            what = p.get("kind")
            if what == "alert":
                self.alerts += 1
            elif what == "occupancy":
                self.occupancy_changes += 1
            elif what == "fault":
                self.faults += 1
                key = (str(p.get("sensor")), str(p.get("fault")))
                if p.get("active"):
                    self.active_faults.add(key)
                else:
                    self.active_faults.discard(key)

    def silent_s(self, now, listening_since=None):
        """Seconds without a live message; not counting before `listening_since`
        (when the consumer itself got its connection back)."""
        heard = self.last_seen if self.last_seen is not None else self.known_since
        return now - max(heard, listening_since if listening_since is not None else heard)

    def may_go_stale(self):
        """Offline (its will) and safe mode are said by the node's status; a
        silent node is flagged only while it is supposed to be talking."""
        return self.status not in ("offline", "safe_mode")


# ---- the fleet


def _record(site, node, kind, seq, payload, flags):
    return {"site": site, "node": node, "kind": kind, "seq": seq, "payload": payload, "flags": flags}


def parse_topic(topic):
    """citynode/<site>/<node>/<kind...> -> (site, node, kind), or None."""
    parts = topic.split("/", 3)
    if len(parts) < 4 or parts[0] != PREFIX or not all(parts[1:]):
        return None
    return parts[1], parts[2], parts[3]


def status_payload(text):
    """The status topic's payload as an object: `online`/`offline` (plain
    text) become {"state": ...}; a JSON object (safe mode) stays as it is."""
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None
    if isinstance(obj, dict) and isinstance(obj.get("state"), str):
        return obj
    return {"state": text.strip()}


class Fleet:
    """Every node heard from, by (site, node). `contiguous=False` for a
    member of a shared subscription group (see SeqTrack)."""

    def __init__(self, stale_s=DEFAULT_STALE_S, contiguous=True):
        self.stale_s = stale_s
        self.contiguous = contiguous
        self.nodes = {}
        self.messages = 0
        self.listening_since = None  # set by `listening()`; silence before it is the consumer's own

    def add(self, site, node, now, **kw):
        """The state of a node, made (with NodeState's keywords) if new."""
        key = (site, node)
        if key not in self.nodes:
            self.nodes[key] = NodeState(site, node, now, self.contiguous, **kw)
        return self.nodes[key]

    def take(self, topic, payload, retained, now):
        """One message; returns its normalised record. `payload` is bytes.
        Raises ValueError for a topic outside citynode/<site>/<node>/..."""
        where = parse_topic(topic)
        if where is None:
            raise ValueError("not a citynode topic: %r" % topic)
        site, node, kind = where
        n = self.add(site, node, now)
        self.messages += 1
        flags = {"retained": True} if retained else {}
        if not retained:
            if n.stale:
                flags["resumed"] = True
                n.stale = False
            n.last_seen = now
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            flags["bad_payload"] = "not UTF-8"
            return _record(site, node, kind, None, payload.decode("utf-8", "replace"), flags)
        if kind == "status":
            p = status_payload(text)
            n.take_status(p)
            return _record(site, node, kind, None, p, flags)
        try:
            p = json.loads(text)
        except ValueError:
            p = None
        if not isinstance(p, dict):
            flags["bad_payload"] = "not a JSON object"
            return _record(site, node, kind, None, text, flags)
        seq = p.get("seq")
        if type(seq) is not int:
            flags["bad_payload"] = "no integer seq"
            seq = None
        elif not retained:
            flags.update(n.seq.take(seq, zlib.crc32(payload)))
        if not flags.get("duplicate"):
            n.take_reading(kind, p)
        return _record(site, node, kind, seq, p, flags)

    def listening(self, now):
        """The consumer is connected again (after an outage of its own):
        no node's silence counts before `now`."""
        self.listening_since = now

    def check_stale(self, now):
        """Records for the nodes that have just gone quiet for `stale_s`.
        Call it only while connected."""
        out = []
        for n in self.nodes.values():
            quiet = n.silent_s(now, self.listening_since)
            if not n.stale and n.may_go_stale() and quiet >= self.stale_s:
                n.stale = True
                out.append(_record(n.site, n.node, "stale", None, {"silent_s": round(quiet, 1)},
                                   {"stale": True}))
        return out

    def sorted(self):
        return [self.nodes[k] for k in sorted(self.nodes)]


# ---- showing it


def _ago(seconds):
    s = int(seconds)
    if s < 120:
        return "%ds" % s
    if s < 7200:
        return "%dm%02ds" % (s // 60, s % 60)
    return "%dh%02dm" % (s // 3600, s % 3600 // 60)


def status_text(n):
    if n.status is None:
        s = "-"
    elif n.status == "safe_mode":
        s = "safe mode: %s" % n.reason if n.reason else "safe mode"
    else:
        s = n.status
    return s + (" STALE" if n.stale else "")


def seen_text(n, now):
    if n.last_seen is None:
        return "not live yet"
    return "%s ago" % _ago(now - n.last_seen)


def bays_text(n):
    if not n.bays:
        return ""
    occupied = sorted(b for b, s in n.bays.items() if s == "occupied")
    return "%d occupied, %d free%s" % (len(occupied), len(n.bays) - len(occupied),
                                       ": " + " ".join(occupied) if occupied else "")


def water_text(n):
    lines = []
    for sensor, w in sorted(n.water.items()):
        line = "%s %s mm, %+d mm/min, %s" % (sensor, w.get("level_mm"), w.get("rate_mm_min") or 0,
                                             w.get("alert"))
        if w.get("fault"):
            line += ", fault %s" % w["fault"]
        lines.append(line)
    return "; ".join(lines)


def env_text(n):
    e = n.env
    if not e:
        return ""
    parts = []
    if isinstance(e.get("temp_c"), (int, float)):
        parts.append("%.1f °C" % e["temp_c"])
    if isinstance(e.get("humidity_pct"), (int, float)):
        parts.append("%.0f %%RH" % e["humidity_pct"])
    if isinstance(e.get("pressure_pa"), (int, float)):
        parts.append("%.0f hPa" % (e["pressure_pa"] / 100))
    return ", ".join(parts)


def health_text(n):
    """The health fields a person watches; other keys are left out, so new
    ones a firmware adds do not disturb the view."""
    h = n.health
    if not h:
        return ""
    parts = []
    if isinstance(h.get("uptime_s"), int):
        parts.append("up %s" % _ago(h["uptime_s"]))
    if isinstance(h.get("heap_free"), int):
        parts.append("heap %d" % h["heap_free"])
    for key, label, always in (("outbox_depth", "outbox", True), ("in_flight", "in flight", False),
                               ("dropped", "dropped", True), ("lost", "lost", False)):
        if isinstance(h.get(key), int) and (always or h[key]):
            parts.append("%s %d" % (label, h[key]))
    if h.get("fw") is not None:
        parts.append("fw %s" % h["fw"])
    return ", ".join(parts)


def events_text(n):
    if not (n.alerts or n.occupancy_changes or n.faults):
        return ""
    s = "alerts %d, occupancy %d, faults %d" % (n.alerts, n.occupancy_changes, n.faults)
    if n.active_faults:
        s += " (active: %s)" % " ".join("%s %s" % f for f in sorted(n.active_faults))
    return s


def seq_text(n):
    t = n.seq
    if not t.received and n.expected is None:
        return ""
    msgs = "%d/%d msgs" % (t.distinct, n.expected) if n.expected is not None else "%d msgs" % t.distinct
    s = "seq %s, %s" % ("-" if t.highest is None else t.highest, msgs)
    if t.contiguous:
        s += ", gaps %d" % t.missing
    s += ", dup %d" % t.duplicates
    if t.late:
        s += ", late %d" % t.late
    if t.resets:
        s += ", resets %d" % t.resets
    return s


def name_text(n):
    name = "%s/%s" % (n.site, n.node)
    return "%s %s" % (n.label, name) if n.label else name


def node_line(n, now):
    """One plain line for a node."""
    parts = ["%s %s" % (name_text(n), status_text(n)), "last seen %s" % seen_text(n, now)]
    for label, text in (("bays", bays_text(n)), ("water", water_text(n)), ("env", env_text(n)),
                        ("health", health_text(n)), ("events", events_text(n)), ("", seq_text(n))):
        if text:
            parts.append("%s %s" % (label, text) if label else text)
    return " | ".join(parts)


_STATUS_STYLE = {"online": "green", "offline": "red", "safe_mode": "yellow"}
_ALERT_STYLE = {"watch": "yellow", "warning": "dark_orange", "danger": "bold red"}


def render_table(nodes, now, title):
    """A rich Table, one row per node (texts from the network are never
    read as markup)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title)
    for col in ("node", "status", "last seen", "bays", "water", "env", "health", "events", "seq"):
        table.add_column(col, no_wrap=col == "node")
    for n in nodes.sorted():
        status = Text(status_text(n), style="bold magenta" if n.stale else _STATUS_STYLE.get(n.status, ""))
        alerts = {w.get("alert") for w in n.water.values()}
        worst = next((a for a in ("danger", "warning", "watch") if a in alerts), None)
        name = name_text(n).replace(" ", "\n", 1) if n.label else name_text(n)  # the label on its own line
        table.add_row(Text(name), status, Text(seen_text(n, now)), Text(bays_text(n).replace(": ", ":\n")),
                      Text(water_text(n).replace("; ", "\n"), style=_ALERT_STYLE.get(worst, "")),
                      Text(env_text(n)), Text(health_text(n)), Text(events_text(n)), Text(seq_text(n)))
    return table
