"""CircuitPython's `ssl`: `create_default_context()`, `SSLContext`
(`load_verify_locations`, `set_default_verify_paths`, `check_hostname`,
`wrap_socket`) and the `SSLSocket` it returns, on MicroPython's `tls`.

What CircuitPython does, and so this module (shared-bindings/ssl and
shared-module/ssl, over mbedtls; docs.circuitpython.org/en/latest/shared-bindings/ssl/):

- `load_verify_locations(cadata=...)` takes one CA certificate as PEM
  text (`cafile`, `capath`: NotImplementedError) and only keeps it: the
  certificate is parsed by `wrap_socket`, where a cadata that is not PEM
  raises OSError -0x2180 (MBEDTLS_ERR_X509_INVALID_FORMAT). An empty
  cadata turns verification off. A context never given one trusts
  CircuitPython's bundle of public CAs: here none, as no private CA (a
  test broker's) is in that bundle.
- `check_hostname` is kept and changes nothing: the name is checked when
  `wrap_socket` is given `server_hostname`.
- `wrap_socket(sock, *, server_side=False, server_hostname=None)` takes
  an unconnected socketpool socket of type SOCK_STREAM; the SSLSocket's
  `connect(address)` makes the TCP connection, then the handshake. A
  certificate that does not verify raises OSError -0x2700
  (MBEDTLS_ERR_X509_CERT_VERIFY_FAILED), "X509 - Certificate verification
  failed, ...; " and why (MicroPython's `tls` raises ValueError). A failed
  handshake leaves the SSLSocket closed, and its `close()` then returns
  at once: the TCP socket under it stays open until closed itself.
- `recv_into`, `send`, `settimeout`, `setblocking`, `setsockopt` go to the
  socket underneath; its errors (116 ETIMEDOUT, 11 EAGAIN) come through.

The TLS is MicroPython's (mbedtls). After the handshake the emulated
socketpool Socket reads and writes through the TLS socket
(`Socket._secure`), so what it counts (the MQTT answers the broker owes)
is the plaintext; it still polls the TCP socket. The handshake takes no
time on the world's clock; one the broker does not complete within
HANDSHAKE_S real seconds fails as a timed-out read does (OSError 116, the
clock moved by the socket's timeout).
"""

import binascii

import tls

from host_tools.emulators.circuitpython.cp_world import world

HANDSHAKE_S = 10  # real seconds a handshake may take
_EBADF = 9
_ETIMEDOUT = 116
_UNIX_TIMEOUTS = (11, 110)  # what MicroPython's unix port raises for a timed-out read
_SOCK_STREAM = 1
# The errors mbedtls's x509_crt_parse gives CircuitPython for a cadata it cannot take
_X509_INVALID_FORMAT = (-0x2180, "X509 - The CRT/CRL/CSR format is invalid, e.g. different type expected")
_X509_UNKNOWN_FORMAT = (-0x2780, "X509 - Format not recognized as DER or PEM")  # BEGIN without END
_PEM_EMPTY = (-0x1100, "PEM - PEM string is not as expected")
_PEM_BASE64 = (-0x112C, "PEM - PEM string is not as expected : BASE64 - Invalid character in input")
_X509_CERT_VERIFY_FAILED = -0x2700
_BEGIN = "-----BEGIN CERTIFICATE-----"
_END = "-----END CERTIFICATE-----"
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


def _der(cadata):
    """The CA certificate of PEM `cadata` as DER, or the OSError mbedtls
    gives CircuitPython for it."""
    text = cadata
    if isinstance(cadata, bytes):
        try:
            text = cadata.decode()
        except UnicodeError:  # DER, say: not PEM text
            text = ""
    if _BEGIN not in text:
        raise OSError(*_X509_INVALID_FORMAT)
    body = text.split(_BEGIN, 1)[1]
    if _END not in body:
        raise OSError(*_X509_UNKNOWN_FORMAT)
    body = "".join(body.split(_END, 1)[0].split())
    if not body:
        raise OSError(*_PEM_EMPTY)
    if len(body) % 4 or any(c not in _B64 for c in body):
        raise OSError(*_PEM_BASE64)
    try:
        return binascii.a2b_base64(body)
    except ValueError:
        raise OSError(*_PEM_BASE64) from None


def create_default_context():
    return SSLContext()


class SSLContext:
    def __init__(self):
        self._cadata = None  # None: the bundle of public CAs
        self.check_hostname = False

    def load_verify_locations(self, cafile=None, capath=None, cadata=None):
        if cafile is not None:
            raise NotImplementedError("cafile")
        if capath is not None:
            raise NotImplementedError("capath")
        if not isinstance(cadata, (str, bytes)):
            raise TypeError("can't convert '%s' object to str implicitly" % type(cadata).__name__)
        self._cadata = cadata

    def set_default_verify_paths(self):
        self._cadata = None

    def wrap_socket(self, sock, *, server_side=False, server_hostname=None):
        if getattr(sock, "type", None) != _SOCK_STREAM:
            raise RuntimeError("Invalid socket for TLS")
        if server_side and server_hostname is not None:
            raise ValueError("Server side context cannot have hostname")
        if server_side:
            raise NotImplementedError("server_side (not emulated)")
        ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
        if self._cadata is None:
            ctx.verify_mode = tls.CERT_REQUIRED  # no CA here: nothing verifies
        elif not self._cadata:
            ctx.verify_mode = tls.CERT_NONE
        else:
            der = _der(self._cadata)
            ctx.verify_mode = tls.CERT_REQUIRED
            try:
                ctx.load_verify_locations(der)
            except (ValueError, OSError):
                raise OSError(*_X509_INVALID_FORMAT) from None
        return SSLSocket(ctx, sock, server_hostname)


class _Plaintext:
    """MicroPython's TLS socket as the socketpool Socket uses it: a read
    without waiting takes in every whole record there is (the Socket polls
    the TCP socket, which does not see what mbedtls has already taken from
    it), None if there is none."""

    def __init__(self, tls_sock):
        self._tls = tls_sock
        self._blocking = True

    def setblocking(self, flag):
        self._blocking = flag
        self._tls.setblocking(flag)

    def read(self, n):
        data = self._tls.read(n)
        if self._blocking or not data:
            return data
        got = bytearray(data)
        while True:
            more = self._tls.read(n)
            if not more:  # None: nothing more now; b"": closed, which the next read says
                return bytes(got)
            got.extend(more)

    def write(self, data):
        return self._tls.write(data)

    recv = read
    send = write

    def close(self):
        self._tls.close()


class SSLSocket:
    def __init__(self, tls_context, sock, server_hostname):
        self._tls = tls_context
        self._sock = sock
        self._hostname = server_hostname
        self._closed = False

    def connect(self, address):
        sock = self._sock
        sock.connect(address)
        real = sock._real
        real.settimeout(HANDSHAKE_S)
        try:
            wrapped = self._tls.wrap_socket(real, server_hostname=self._hostname)
        except ValueError as e:  # MicroPython's tls: the certificate did not verify
            self._closed = True
            why = "; ".join(line.strip() for line in str(e).split("\n") if line.strip())
            raise OSError(_X509_CERT_VERIFY_FAILED, "X509 - Certificate verification failed, "
                          "e.g. CRL, CA or signature check failed" + ("; " + why if why else "")) from None
        except OSError as e:
            self._closed = True
            if e.args and e.args[0] in _UNIX_TIMEOUTS:
                world().advance(int((sock._timeout or 0) * 1000))
                raise OSError(_ETIMEDOUT) from None
            raise
        sock._secure(_Plaintext(wrapped))

    def _live(self):
        if self._closed:
            raise OSError(_EBADF)
        return self._sock

    def send(self, data):
        return self._live().send(data)

    def recv_into(self, buffer, bufsize=0):
        return self._live().recv_into(buffer, bufsize)

    def settimeout(self, value):
        self._sock.settimeout(value)

    def setblocking(self, flag):
        self._sock.setblocking(flag)

    def setsockopt(self, level, optname, value):
        self._sock.setsockopt(level, optname, value)

    def close(self):
        if self._closed:
            return
        self._closed = True
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
