"""`citynode monitor`: the fleet live, from the MQTT broker.

    run("127.0.0.1", 1883, site="riverside", json_out=True, duration=60)

Subscribes with paho-mqtt (MQTT 3.1.1, QoS 1, a clean session) to what the
nodes publish under `citynode/<site>/+/` (`TOPICS`), feeds every message to
a `host_tools.field.fleet.Fleet` and shows the result: a live rich table on a
terminal, plain lines (one per node that changed, at most once a second)
otherwise, or with `json_out` one JSON object per received message (and per
node gone stale) on stdout. docs/monitor.md explains the output.

With `share`, the live readings (`water`, `env`, `event`, `health`,
`cmd/ack`) are taken through `$share/<group>/...`, so the monitors or
ingest workers of one group split them; brokers do not hand retained
messages to shared subscriptions, so the retained state topics (`status`,
`bay/+`) stay plain subscriptions that every member gets in full.

Paho's network thread only queues what arrives; the fleet, the stale check
and the output all run in the caller's thread.
"""

import json
import os
import queue
import re
import secrets
import sys
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from host_tools.field import fleet

TOPICS = ("status", "bay/+", "water", "env", "event", "health", "cmd/ack")
RETAINED = ("status", "bay/+")  # what nodes publish retained: never through a shared subscription
PASSWORD_ENV = "CITYNODE_MQTT_PASSWORD"
KEEPALIVE_S = 30
CONNECT_TIMEOUT_S = 10  # for the broker's CONNACK and SUBACK once TCP is up
SYNC_TIMEOUT_S = 2  # --once: how long to wait for the marker that follows the retained messages
PLAIN_EVERY_S = 1.0
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_AUTH_CODES = (134, 135)  # bad user name or password, not authorized (paho's numbers for 3.1.1's 4 and 5)


class MonitorError(ValueError):
    """Something the user can fix; `str()` is one line."""


def subscriptions(site, share=None):
    """The topic filters, in order: plain for the retained state topics,
    `$share/<share>/...` for the rest when `share` is given."""
    out = []
    for kind in TOPICS:
        f = "citynode/%s/+/%s" % (site, kind)
        out.append("$share/%s/%s" % (share, f) if share and kind not in RETAINED else f)
    return out


def describe(filters):
    """The filters in short: citynode/+/+/{status,bay/+} $share/g/citynode/+/+/{water,...}."""
    groups = {}
    for f in filters:
        head, _sep, kind = f.rpartition("/+/")
        groups.setdefault(head + "/+/", []).append(kind)
    return " ".join("%s{%s}" % (head, ",".join(kinds)) for head, kinds in groups.items())


def check_args(site, share, stale_s, duration):
    if site != "+" and not _NAME.match(site):
        raise MonitorError("`site` must be letters, digits, '-' and '_' (or + for every site), not %r" % site)
    if share is not None and not _NAME.match(share):
        raise MonitorError("`share` must be letters, digits, '-' and '_', not %r" % share)
    if not stale_s > 0:
        raise MonitorError("`stale_s` must be above 0 seconds, not %g" % stale_s)
    if duration is not None and not duration > 0:
        raise MonitorError("`duration` must be above 0 seconds, not %g" % duration)


def _why(rc):
    """' (reason)' for a paho reason code that says something, else ''."""
    return "" if rc.value in (0, 128) else " (%s)" % rc  # 128: paho's "Unspecified error"


class _Client:
    """paho in its own network thread; everything it sees goes to `events`
    as tuples: ("connack", rc), ("suback", [refused filters]),
    ("message", topic, payload, retain), ("lost", reason)."""

    def __init__(self, host, port, user, password, filters):
        self.host, self.port, self.filters = host, port, filters
        self.events = queue.Queue()
        self.client_id = "citynode-monitor-%d-%s" % (os.getpid(), secrets.token_hex(3))
        self.sync_topic = "citynode-monitor/%s/sync" % self.client_id
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=True,
                        protocol=mqtt.MQTTv311)
        if user is not None:
            c.username_pw_set(user, password)
        c.reconnect_delay_set(1, 30)
        c.on_connect = self._on_connect
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        c.on_disconnect = self._on_disconnect
        self.mqtt = c
        self._sub_mid = None
        self._early = []  # messages that came while waiting for the SUBACK, in order
        self.connected = True  # as far as the caller's thread has heard (after wait_ready)

    def where(self):
        return "%s:%d" % (self.host, self.port)

    def start(self):
        try:
            self.mqtt.connect(self.host, self.port, keepalive=KEEPALIVE_S)
        except OSError as e:
            raise MonitorError("cannot reach the broker at %s: %s" % (
                self.where(), e.strerror or str(e) or type(e).__name__)) from None
        self.mqtt.loop_start()

    def stop(self):
        self.mqtt.disconnect()
        self.mqtt.loop_stop()

    def _on_connect(self, client, _userdata, _flags, rc, _props):
        self.events.put(("connack", rc))
        if not rc.is_failure:
            _result, self._sub_mid = client.subscribe([(f, 1) for f in self.filters + [self.sync_topic]])

    def _on_subscribe(self, client, _userdata, mid, codes, _props):
        if mid != self._sub_mid:
            return
        refused = [f for f, rc in zip(self.filters, codes, strict=False) if rc.is_failure]
        self.events.put(("suback", refused))
        client.publish(self.sync_topic, b"", 1)  # comes back after the retained messages

    def _on_message(self, _client, _userdata, msg):
        self.events.put(("message", msg.topic, msg.payload, bool(msg.retain)))

    def _on_disconnect(self, _client, _userdata, _flags, rc, _props):
        self.events.put(("lost", rc))

    def next_event(self, timeout):
        """The next event, or None after `timeout` s."""
        if self._early:
            return self._early.pop(0)
        try:
            return self.events.get(timeout=timeout) if timeout > 0 else self.events.get_nowait()
        except queue.Empty:
            return None

    def wait_ready(self):
        """Wait for CONNACK and SUBACK; raise MonitorError for a refusal."""
        end = time.monotonic() + CONNECT_TIMEOUT_S
        got = set()
        while got != {"connack", "suback"}:
            try:
                ev = self.events.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                raise MonitorError("no answer from the broker at %s within %d s" % (
                    self.where(), CONNECT_TIMEOUT_S)) from None
            if ev[0] == "message":
                self._early.append(ev)
                continue
            if ev[0] == "lost":
                raise MonitorError("%s closed the connection without accepting it%s (is it an MQTT broker?)"
                                   % (self.where(), _why(ev[1])))
            self.check(ev)
            got.add(ev[0])

    def check(self, ev):
        if ev[0] == "connack" and ev[1].is_failure:
            hint = " (check `user` and $%s)" % PASSWORD_ENV if ev[1].value in _AUTH_CODES else ""
            raise MonitorError("the broker at %s refused the connection: %s%s" % (self.where(), ev[1], hint))
        if ev[0] == "suback" and ev[1]:
            raise MonitorError("the broker at %s refused the subscription to %s" % (
                self.where(), ", ".join(ev[1])))


def run(host, port, site="+", user=None, password=None, stale_s=fleet.DEFAULT_STALE_S, json_out=False,
        share=None, once=False, duration=None, out=None, err=None, console=None):
    """Watch until `duration` seconds have passed, or (`once`) until the
    retained state is in, or a Ctrl-C. Output to `out` (default stdout):
    JSON lines with `json_out`; a live table on `console` (a rich Console;
    default: one when `out` is a terminal); plain lines otherwise. Notes
    about the connection go to `err` (default stderr). Returns the Fleet.
    Raises MonitorError for what the user can fix."""
    out = out or sys.stdout
    err = err or sys.stderr
    check_args(site, share, stale_s, duration)
    filters = subscriptions(site, share)
    nodes = fleet.Fleet(stale_s, contiguous=share is None)
    if console is None and not json_out and out.isatty():
        from rich.console import Console

        console = Console(file=out)
    client = _Client(host, port, user, password, filters)
    client.start()
    live = None
    try:
        client.wait_ready()
        print("citynode monitor: watching %s on %s, stale after %g s" % (
            describe(filters), client.where(), stale_s), file=err, flush=True)
        view = _View(nodes, out, json_out, console, once, "citynode monitor: %s" % client.where())
        if console is not None and not once:
            from rich.live import Live

            live = Live(view.table(time.monotonic()), console=console, refresh_per_second=4)
            live.start()
        t0 = time.monotonic()
        synced = False
        try:
            while True:
                synced = _pump(client, nodes, view, err) or synced
                now = time.monotonic()
                for record in nodes.check_stale(now) if client.connected else ():
                    view.record(record)
                if live is not None:
                    live.update(view.table(now))
                elif not once:
                    view.lines(now)
                if once and (synced or now - t0 >= SYNC_TIMEOUT_S):
                    break
                if duration is not None and now - t0 >= duration:
                    break
        except KeyboardInterrupt:
            pass
        view.finish(time.monotonic(), live)
        return nodes
    finally:
        if live is not None:
            live.stop()
        client.stop()


def _pump(client, nodes, view, err, wait=0.25, most=2000):
    """Take what paho has queued, waiting up to `wait` s for the first and
    taking at most `most` (so the view is redrawn under a flood too); True
    if the --once marker came back."""
    synced = False
    for _ in range(most):
        ev = client.next_event(wait)
        if ev is None:
            break
        wait = 0
        if ev[0] == "message":
            if ev[1] == client.sync_topic:
                synced = True
            else:
                view.record(nodes.take(ev[1], ev[2], ev[3], time.monotonic()))
        elif ev[0] == "lost":
            client.connected = False
            print("citynode monitor: lost the connection to %s%s; reconnecting"
                  % (client.where(), _why(ev[1])), file=err, flush=True)
        else:
            client.check(ev)
            if ev[0] == "connack":
                client.connected = True
                nodes.listening(time.monotonic())  # the silence while away was ours, not the nodes'
                print("citynode monitor: connected again to %s" % client.where(), file=err, flush=True)
    return synced


class _View:
    """Where records and the fleet's state go: JSON lines, a table, or
    plain lines of the nodes that changed."""

    def __init__(self, nodes, out, json_out, console, once, title):
        self.nodes, self.out, self.json_out, self.console, self.once = nodes, out, json_out, console, once
        self.title = title
        self.changed = set()
        self.last_lines = 0.0

    def record(self, r):
        if self.json_out:
            self.out.write(json.dumps(r, separators=(",", ":")) + "\n")
            self.out.flush()
        else:
            self.changed.add((r["site"], r["node"]))

    def table(self, now):
        return fleet.render_table(self.nodes, now, "%s, %d nodes, %d messages" % (
            self.title, len(self.nodes.nodes), self.nodes.messages))

    def lines(self, now, every=PLAIN_EVERY_S):
        if self.json_out or not self.changed or now - self.last_lines < every:
            return
        stamp = time.strftime("%H:%M:%S")
        for key in sorted(self.changed):
            self.out.write("%s %s\n" % (stamp, fleet.node_line(self.nodes.nodes[key], now)))
        self.out.flush()
        self.changed.clear()
        self.last_lines = now

    def finish(self, now, live):
        if self.json_out:
            return
        if live is not None:
            live.update(self.table(now))
        elif self.console is not None:
            self.console.print(self.table(now))
        else:
            if self.once:
                self.changed = set(self.nodes.nodes)
            self.lines(now, every=0)


# ---- the command line
