"""CircuitPython's `socketpool`: `SocketPool(radio)` with `getaddrinfo`,
`socket()` and the constants; sockets with CircuitPython's calls
(`recv_into(buf, nbytes)`, `send`, `settimeout`, `sendto`,
`recvfrom_into`) and errors (a timed-out read raises OSError 116
ETIMEDOUT, a read without waiting that finds nothing OSError 11 EAGAIN),
and no `fileno` (nothing to poll).

TCP is real: a MicroPython socket to the address asked for (the tests'
Mosquitto). On the world's clock the network has no latency: each socket
counts the MQTT answers the broker owes for what was sent (CONNECT,
SUBSCRIBE, PUBLISH at QoS 1, PINGREQ) and `settle()`, called before the
clock moves, takes them in (waiting at most SETTLE_S of real time). A
timed-out read moves the clock by its timeout. Under TLS (the emulated
`ssl`) the socket talks through MicroPython's TLS socket and counts the
plaintext. UDP to port 123 is the world's NTP server: the answer carries
the true time.
"""

import uselect
import usocket

from host_tools.emulators.circuitpython.cp_world import world

SETTLE_S = 10  # real seconds a settle waits for the broker's answers
_EAGAIN = 11
_ETIMEDOUT = 116
_ENOTCONN = 128
_NTP_1900 = 2208988800
# MQTT packet types: what asks for an answer, and the answers
_ASKS = (1, 8, 12)  # CONNECT, SUBSCRIBE, PINGREQ (and PUBLISH with QoS 1)
_ANSWERS = (2, 4, 9, 13)  # CONNACK, PUBACK, SUBACK, PINGRESP


class _Frames:
    """Counts whole MQTT packets in a byte stream, by type."""

    def __init__(self):
        self._buf = bytearray()

    def feed(self, data):
        """The first bytes of the complete packets that `data` ends."""
        self._buf.extend(data)
        firsts = []
        while True:
            buf = self._buf
            n = mult = 0
            i = 1
            while True:
                if i >= len(buf):
                    return firsts
                n += (buf[i] & 0x7F) << mult
                mult += 7
                i += 1
                if not buf[i - 1] & 0x80:
                    break
            if len(buf) < i + n:
                return firsts
            firsts.append(buf[0])
            self._buf = buf[i + n:]


class Socket:
    def __init__(self, pool, family, type):  # noqa: A002 - CircuitPython's names
        self._pool = pool
        self.type = type  # what CircuitPython's ssl checks before it wraps a socket
        self._udp = type == pool.SOCK_DGRAM
        self._timeout = None
        self._in = bytearray()
        self._closed = False
        self._real = None
        self._owed = 0
        self._sent = _Frames()
        self._got = _Frames()
        self._answer = None  # UDP: the NTP server's answer, once asked

    # ---- TCP

    def connect(self, address):
        host, port = address
        real = usocket.socket(usocket.AF_INET, usocket.SOCK_STREAM)
        try:
            real.connect(usocket.getaddrinfo(host, port)[0][-1])
        except OSError:
            real.close()
            raise
        self._real = real
        self._poller = uselect.poll()
        self._poller.register(real, uselect.POLLIN)
        world().sockets.append(self)

    def _secure(self, real):
        """TLS (the emulated `ssl`, after the handshake): from now on the
        broker is reached through `real`, the TLS socket over the TCP one,
        so what is counted is still the plaintext. The poller stays on the
        TCP socket (polling a TLS one costs a millisecond each time), so a
        read without waiting of `real` must take in every whole record there
        is, and gives None when there is none."""
        self._real = real

    def settimeout(self, value):
        self._timeout = value

    def setblocking(self, flag):
        self._timeout = None if flag else 0

    def setsockopt(self, level, optname, value):
        pass

    def send(self, data):
        if self._real is None:
            raise OSError(_ENOTCONN)
        self._real.setblocking(True)
        n = self._real.write(bytes(data))
        for first in self._sent.feed(memoryview(data)[:n]):
            kind = first >> 4
            if kind in _ASKS or (kind == 3 and (first >> 1) & 3 == 1):
                self._owed += 1
        return n

    def _pull(self, wait_s):
        """Take in what the broker sent, waiting at most `wait_s` for it."""
        if self._closed or self._real is None:
            return
        if not self._poller.poll(int(wait_s * 1000)):
            return
        self._real.setblocking(False)
        data = self._real.read(4096)
        if data is None:  # TLS: no whole record yet
            return
        if not data:
            self._closed = True
            return
        self._in.extend(data)
        for first in self._got.feed(data):
            if first >> 4 in _ANSWERS and self._owed:
                self._owed -= 1

    def settle(self):
        """Take in every answer the broker owes (the network's zero latency)."""
        end = SETTLE_S * 10
        while self._owed and not self._closed and end > 0:
            self._pull(0.1)
            end -= 1

    def recv_into(self, buffer, bufsize=0):
        if self._udp:
            return self._recv_ntp(buffer)
        want = bufsize or len(buffer)
        if not self._in:
            if self._timeout is None:
                while not self._in and not self._closed:
                    self._pull(1)
            else:
                self._pull(min(self._timeout, SETTLE_S))
            if not self._in and not self._closed:
                if not self._timeout:
                    raise OSError(_EAGAIN)
                world().advance(int(self._timeout * 1000))
                raise OSError(_ETIMEDOUT)
        k = min(want, len(self._in))
        buffer[:k] = self._in[:k]
        self._in = self._in[k:]
        return k

    def close(self):
        if self._real is not None:
            self._real.close()
            self._real = None
            w = world()
            if self in w.sockets:
                w.sockets.remove(self)
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- UDP: the world's NTP server

    def sendto(self, data, address):
        if address[1] == 123 and len(data) >= 48 and data[0] & 0x07 == 3:
            ms = world().true_ms()
            s = ms // 1000 + _NTP_1900
            frac = ((ms % 1000) << 32) // 1000
            ans = bytearray(48)
            ans[0] = 0x1C  # version 3, mode 4 (server)
            ans[1] = 2  # stratum
            ans[40:44] = s.to_bytes(4, "big")
            ans[44:48] = frac.to_bytes(4, "big")
            self._answer = ans
        return len(data)

    def _recv_ntp(self, buffer):
        if self._answer is None:
            world().advance(int((self._timeout or 1) * 1000))
            raise OSError(_ETIMEDOUT)
        k = min(len(buffer), 48)
        buffer[:k] = self._answer[:k]
        self._answer = None
        return k

    def recvfrom_into(self, buffer):
        return self._recv_ntp(buffer), ("162.159.200.1", 123)


class SocketPool:
    AF_INET = 2
    SOCK_STREAM = 1
    SOCK_DGRAM = 2
    IPPROTO_IP = 0
    IPPROTO_TCP = 6
    TCP_NODELAY = 1

    def __init__(self, radio):
        self._radio = radio

    def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002
        if not self._radio.connected:
            raise OSError(-2)  # gaierror: no network
        return [(self.AF_INET, self.SOCK_STREAM, self.IPPROTO_TCP, "", (host, port))]

    def socket(self, family=AF_INET, type=SOCK_STREAM, proto=IPPROTO_IP):  # noqa: A002
        if not self._radio.connected:
            raise OSError(_ENOTCONN)
        return Socket(self, family, type)
