"""TLS on a CircuitPython node: the real firmware on the emulated
CircuitPython modules (tests/test_node_circuitpython.py), its MQTT client
going through the emulated `ssl` (CircuitPython's API: a default context,
the CA as PEM text, the socketpool socket wrapped before its connect, the
handshake in the TLS socket's connect) to Mosquitto's TLS listeners. The
TLS itself is MicroPython's mbedtls; the readings are read back by a
paho-mqtt subscriber on the plain listener.
"""

import json
import os
import shutil
import subprocess
import threading
import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.subscribeoptions import SubscribeOptions

from citynode.link.mqtt import _pem
from host_tools.mosquitto import HOST, Broker, make_pki
from host_tools.paths import ROOT
from tests import test_node_circuitpython
from tests.paho_subscriber import Subscriber, publish, unique
from tests.test_node_circuitpython import EMULATION, MICROPYTHON, Board, first_sightings, node_config

storm = test_node_circuitpython.storm  # its fixture: the storm slice and its bus-level twin

END_MS = 4 * 60 * 1000  # virtual time: a few readings of each sensor
TLS = {"ca": "/ca.der", "server_hostname": "localhost"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_broker(pki):
    with Broker(pki) as b:
        yield b


class StatusWatch:
    """An MQTT v5 subscriber to a status topic with retain-as-published:
    `got` holds (payload, retain flag as the publisher set it)."""

    def __init__(self, port, topic):
        self.got = []
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=unique("v5"),
                                  protocol=paho.MQTTv5)
        self.client.on_message = lambda _c, _u, m: self.got.append((m.payload, bool(m.retain)))
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.connect(HOST, port, keepalive=30)
        self.client.subscribe(topic, options=SubscribeOptions(qos=1, retainAsPublished=True))
        self.client.loop_start()
        assert subscribed.wait(5), "no SUBACK from the broker"

    def wait(self, cond, timeout):
        end = time.monotonic() + timeout
        while not cond() and time.monotonic() < end:
            time.sleep(0.01)
        return cond()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.client.loop_stop()
        self.client.disconnect()


def test_the_ca_goes_to_circuitpython_as_openssl_writes_it_in_pem(pki):
    """The client's PEM of the DER CA is openssl's own PEM of it, line for line."""
    assert _pem(pki["ca_der"].read_bytes()) == pki["ca"].read_text()


EMULATED_CA = """
import sys
import ssl
class Sock:
    type = 1
def attempt(f):
    try:
        f()
        return "ok"
    except Exception as e:
        return "%s %s" % (type(e).__name__, e.args[0]) if isinstance(e, (OSError, NotImplementedError)) else \
            type(e).__name__
pem, der = open(sys.argv[1]).read(), open(sys.argv[2], "rb").read()
for cadata in (pem, pem.encode(), der, "not a certificate", pem.replace("M", "*"), pem.split("-----END")[0]):
    ctx = ssl.create_default_context()
    ctx.load_verify_locations(cadata=cadata)
    print(attempt(lambda: ctx.wrap_socket(Sock(), server_hostname="localhost")))
print(attempt(lambda: ctx.load_verify_locations(cafile="/ca.pem")))
print(attempt(lambda: ctx.load_verify_locations(cadata=None)))
print(attempt(lambda: ctx.wrap_socket(Sock(), "localhost")))
"""


def test_the_emulated_ssl_takes_the_ca_as_circuitpython_does(pki, tmp_path):
    """The emulated `ssl` keeps cadata as CircuitPython does and parses it
    in wrap_socket: PEM (str or bytes) is taken; DER or other text fails
    there with mbedtls's OSError; cafile is not implemented, cadata must be
    text, and server_hostname is keyword-only."""
    script = tmp_path / "ca.py"
    script.write_text(EMULATED_CA)
    env = dict(os.environ, MICROPYPATH="%s:%s" % (EMULATION, ROOT))
    out = subprocess.run([str(MICROPYTHON), str(script), str(pki["ca"]), str(pki["ca_der"])], env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.stdout.split("\n")[:-1] == [
        "ok", "ok", "OSError -8576", "OSError -8576", "OSError -4396", "OSError -10112",
        "NotImplementedError cafile", "TypeError", "TypeError"], out.stdout + out.stderr


def drained(sub, port, prefix):
    """What `sub` has got once everything published before now has reached
    it: a marker published now comes after it (on `cmd/`, which
    `Subscriber.data()` leaves out; the node has stopped by then)."""
    marker = prefix + "cmd/drained"
    publish(port, marker, "{}")
    assert sub.wait(lambda: any(m[0] == marker for m in sub.got), timeout=30), "the marker did not come"
    return [m for m in sub.got if m[0] != marker]


def tls_board(tmp_path, storm, pki, port, site):
    """A board whose config names a TLS broker on `port`, the CA (DER) on its drive."""
    plain, bus, _last_ms = storm
    header = json.loads(plain.read_text().split("\n", 1)[0])
    cfg = node_config(port, site, header["sensors"])
    cfg["broker"]["tls"] = TLS
    board = Board(tmp_path, cfg, bus, END_MS)
    shutil.copy(pki["ca_der"], board.drive / TLS["ca"].lstrip("/"))
    return board


def test_a_node_over_tls_comes_online_and_its_readings_arrive(tls_broker, pki, storm, tmp_path):
    """Over TLS, with the CA given as DER on the drive (sent to
    CircuitPython's ssl as PEM): `online` published retained, then the
    readings, seq 1..N, as a subscriber on the plain listener sees them;
    the world's end is a power cut, and the will says so."""
    site = unique("cptls")
    prefix = "citynode/%s/feather-1/" % site
    board = tls_board(tmp_path, storm, pki, tls_broker.tls_port, site)
    status_topic = prefix + "status"
    with Subscriber(tls_broker.port, prefix) as sub, StatusWatch(tls_broker.port, status_topic) as status:
        kept = board.run()
        assert status.wait(lambda: len(status.got) >= 2, timeout=30), (status.got, board.outputs)
        drained(sub, tls_broker.port, prefix)
        data = sub.data()
    assert (kept["boots"], kept["wdt_resets"]) == (1, 0), kept
    assert status.got == [(b"online", True), (b"offline", True)]
    first, order = first_sightings(data)
    assert order == list(range(1, len(order) + 1))
    assert {suffix for suffix, _p in first.values()} >= {"water", "env"}, first
    out = "".join(board.outputs)
    assert "Traceback" not in out and "safe mode" not in out, out


def test_a_server_with_the_wrong_name_is_refused_and_the_node_runs_on(tls_broker, pki, storm, tmp_path):
    """The listener's certificate is signed by the CA but names another
    host: the handshake fails verification every time, so nothing is
    published; the node keeps running to the world's end (no reset, no
    traceback, no safe mode), and the broker saw it reject the certificate."""
    site = unique("cpbadtls")
    prefix = "citynode/%s/feather-1/" % site
    board = tls_board(tmp_path, storm, pki, tls_broker.bad_tls_port, site)
    with Subscriber(tls_broker.port, prefix) as sub:
        kept = board.run()
        assert drained(sub, tls_broker.port, prefix) == []
    assert (kept["boots"], kept["wdt_resets"]) == (1, 0) and kept["now_ms"] >= END_MS, kept
    out = "".join(board.outputs)
    assert "Traceback" not in out and "safe mode" not in out, out
    assert "bad certificate" in tls_broker.log(), tls_broker.log()
