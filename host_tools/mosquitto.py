"""A real Mosquitto broker on loopback only, for the tests and the benchmarks.

    with Broker() as b:                 # plain listener on b.port
        ...
        b.stop(); ...; b.start()        # an outage: same port, fresh broker

    pki = make_pki(tmp_dir)             # test CA, a `localhost` cert, a wrong-name cert
    with Broker(pki) as b:              # adds b.tls_port (right name) and b.bad_tls_port

Every wait is bounded; the broker is killed when the context ends.
"""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"  # Debian puts it in sbin
HOST = "127.0.0.1"


def free_port():
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_port(port, timeout=5.0):
    """True once `port` on loopback accepts a connection, False after `timeout` s."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection((HOST, port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_pki(directory):
    """Make a test CA (EC P-256) and two server certificates it signs: one for
    `localhost` (CN and SAN), one for `wrong.example`. Returns a dict of paths:
    ca (PEM), ca_der, cert/key (localhost), bad_cert/bad_key (wrong name)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key", cwd=d)
    _openssl("req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days", "2",
             "-subj", "/CN=citynode test CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", "ca.pem", cwd=d)
    _openssl("x509", "-in", "ca.pem", "-outform", "DER", "-out", "ca.der", cwd=d)
    for stem, name in (("server", "localhost"), ("bad", "wrong.example")):
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", stem + ".key", cwd=d)
        _openssl("req", "-new", "-key", stem + ".key", "-subj", "/CN=" + name, "-out", stem + ".csr", cwd=d)
        (d / (stem + ".ext")).write_text("subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\n"
                                         "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n" % name)
        _openssl("x509", "-req", "-in", stem + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "2", "-sha256", "-extfile", stem + ".ext", "-out", stem + ".pem", cwd=d)
    return {"ca": d / "ca.pem", "ca_der": d / "ca.der", "cert": d / "server.pem", "key": d / "server.key",
            "bad_cert": d / "bad.pem", "bad_key": d / "bad.key"}


class Broker:
    """Mosquitto with a plain listener (`port`) and, given `pki` from
    `make_pki`, TLS listeners with the right (`tls_port`) and the wrong
    (`bad_tls_port`) server name. Ports stay the same across stop/start."""

    def __init__(self, pki=None):
        self.dir = Path(tempfile.mkdtemp(prefix="citynode-mosquitto-"))
        self.port = free_port()
        self.tls_port = free_port() if pki else None
        self.bad_tls_port = free_port() if pki else None
        self.proc = None
        self._log = None
        lines = [
            # Run as root, mosquitto would drop to its own user and could not
            # read this private folder; as anyone else the line is ignored.
            "user %s" % pwd.getpwuid(os.getuid()).pw_name,
            "allow_anonymous true",
            "persistence false",
            "log_dest stderr",
            "listener %d %s" % (self.port, HOST),
        ]
        if pki:
            pairs = ((self.tls_port, "cert", "key"), (self.bad_tls_port, "bad_cert", "bad_key"))
            for port, cert, key in pairs:
                lines += ["listener %d %s" % (port, HOST), "cafile %s" % pki["ca"],
                          "certfile %s" % pki[cert], "keyfile %s" % pki[key]]
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self, timeout=5.0):
        assert self.proc is None, "already running"
        self._log = open(self.dir / "mosquitto.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        ports = [p for p in (self.port, self.tls_port, self.bad_tls_port) if p]
        end = time.monotonic() + timeout
        for p in ports:
            if not wait_port(p, max(0.1, end - time.monotonic())) or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("mosquitto did not start:\n" + self.log())
        return self

    def stop(self):
        """Terminate the broker (SIGTERM, then SIGKILL after 5 s); its clients lose the connection."""
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log(self):
        path = self.dir / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
