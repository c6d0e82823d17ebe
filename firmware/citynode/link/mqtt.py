"""MQTT 3.1.1 client for the node: TCP or TLS, QoS 0 and 1, last will and
birth message, keepalive with dead-peer detection, reconnection with
jittered exponential backoff.

One body of code for MicroPython (the ESP32), CircuitPython (sockets from
`socketpool`, given as `socket_pool`) and CPython (the desk). Every
network wait has a deadline, so a main loop that calls `maintain()` (or
`poll()`) is not held up for longer than `op_timeout_ms`. The guarantees
and their limits (name lookup, TLS handshake) are in docs/mqtt.md.

    c = MQTTClient("node-7", "broker.example", will_topic="citynode/s1/node-7/status")
    c.on_message = lambda topic, payload, retained, dup: print(topic, payload)
    c.subscribe("citynode/s1/node-7/cmd", 1)
    while True:
        c.maintain()                      # connects when the backoff allows, else polls
        c.publish("citynode/s1/node-7/water", b"...", qos=1)
"""

from random import getrandbits

try:
    import select
    import socket
except ImportError:  # CircuitPython: sockets come from a socketpool.SocketPool (`socket_pool`)
    select = socket = None

from citynode.ticks import add as ticks_add
from citynode.ticks import diff as ticks_diff
from citynode.ticks import now_ms as ticks_ms


class MQTTError(OSError):
    """A protocol failure: CONNECT refused, SUBSCRIBE refused, a malformed or
    unexpected packet, a timeout, the peer gone, the queue full."""


class _Closed(MQTTError):
    """The broker closed the connection."""


# The fields of an in-flight QoS 1 entry (a list, the smallest object here).
_PID = 0
_TOPIC = 1
_PAYLOAD = 2
_RETAIN = 3
_SENT = 4  # sent before: any later transmission carries DUP
_SENT_AT = 5  # tick of the last transmission, None before the first

# A socket read without waiting that found nothing (EAGAIN, ETIMEDOUT as
# MicroPython's and CircuitPython's socketpool number them, and lwIP's).
_NOTHING_YET = (11, 110, 116)
_SCRATCH = 64  # bytes: small packet bodies are read into it, skipped payloads through it
_ASSEMBLE_MAX = 1024  # bytes: a PUBLISH up to this size is assembled and written at once


def _utf8(s):
    """An MQTT string: two length bytes, then the bytes (CONNECT, SUBSCRIBE)."""
    if isinstance(s, str):
        s = s.encode()
    return bytes((len(s) >> 8, len(s) & 0xFF)) + s


def _fixed_header(buf, first, n):
    """Write the fixed header (type and flags, remaining length `n`) into
    `buf`; returns its length (2 to 5 bytes)."""
    buf[0] = first
    i = 1
    while True:
        b = n & 0x7F
        n >>= 7
        buf[i] = b | 0x80 if n else b
        i += 1
        if not n:
            return i


def _pem(der):
    """A DER certificate as PEM text: base64 in lines of 64 characters
    (48 bytes each) between the BEGIN and END lines."""
    from binascii import b2a_base64

    lines = [b2a_base64(der[i:i + 48]) for i in range(0, len(der), 48)]  # each ends in a newline
    return "-----BEGIN CERTIFICATE-----\n%s-----END CERTIFICATE-----\n" % b"".join(lines).decode()


def _as_bytes(x):
    """A str encoded; bytes, bytearray or memoryview as they are (not copied)."""
    return x.encode() if isinstance(x, str) else x


class MQTTClient:
    BACKOFF_BASE_MS = 1000
    BACKOFF_CAP_MS = 60000

    def __init__(self, client_id, host, port=1883, user=None, password=None, keepalive=60,
                 ssl_ca=None, server_hostname=None, will_topic=None, clean=True,
                 op_timeout_ms=5000, max_pending=32, max_packet=4096, ack_timeout_ms=10000,
                 socket_pool=None):
        # Where sockets come from: the `socket` module, or (CircuitPython has
        # none) a socketpool.SocketPool(wifi.radio), whose sockets cannot be polled:
        # whether one is readable is learnt by reading one byte without
        # waiting, and that byte is kept for the next read (_peek).
        if socket_pool is None and socket is None:
            import socketpool
            import wifi

            socket_pool = socketpool.SocketPool(wifi.radio)
        self._pool = socket if socket_pool is None else socket_pool
        self._polls = socket_pool is None
        self._peek = bytearray(1)
        self._peeked = False
        self.client_id = client_id
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.keepalive = keepalive  # seconds; 0 turns keepalive off
        self.ssl_ca = ssl_ca  # CA certificate, DER bytes; None for plain TCP
        self.server_hostname = server_hostname  # name the certificate must carry; default host
        self.will_topic = will_topic  # "<prefix>/status": will "offline", birth "online"
        self.clean = clean
        self.op_timeout_ms = op_timeout_ms
        self.max_pending = min(max_pending, 60000)  # unacknowledged QoS 1 messages kept at most
        self.ack_timeout_ms = ack_timeout_ms  # a PUBACK this late: the connection is broken
        self.max_packet = max_packet  # larger incoming PUBLISH payloads are skipped (delivered as None)
        self.on_message = None  # on_message(topic, payload_bytes or None if too large, retained, dup)
        self.on_puback = None  # on_puback(packet id): a QoS 1 message the broker has acknowledged
        self.connected = False
        self.session_present = False
        self.last_error = None  # why the last connection failed or ended
        self.dropped = 0  # incoming messages dropped for size
        self.backoff_ms = 0  # the last delay chosen before a connection attempt
        self._sock = None  # what we read and write (a TLS socket under TLS)
        self._tsock = None  # what takes settimeout (the TCP socket under MicroPython TLS)
        self._raw = None
        self._poller = None
        self._ctx = None
        self._pid = 0
        self._inflight = []  # entries (fields _PID .. _SENT_AT) in publish order
        self._subs = []  # [topic, qos, acknowledged]: renewed after a reconnect without a session
        self._suback = None
        self._fails = 0
        self._next = ticks_ms()
        self._rx = self._tx = 0
        self._ping_out = False
        self._head = bytearray(256)  # packets out are assembled here (see _send_publish)
        self._scratch = bytearray(_SCRATCH)
        self._two = bytearray(2)  # a fixed header's first two bytes; a PUBACK's body
        self._readinto = None  # the socket's readinto (MicroPython) or recv_into (CPython)

    # ---- public API

    def connect(self):
        """Open the connection, send CONNECT, wait for CONNACK, subscribe
        again, then publish the birth message and resend unacknowledged QoS 1
        messages. Raises on failure (and schedules the next attempt)."""
        self._close()
        end = ticks_add(ticks_ms(), self.op_timeout_ms)
        try:
            self._open(end)
            self._send_packet(self._connect_packet(), end)
            pkt = self._read(end)
            if pkt is None or pkt[0] != 0x20 or len(pkt[1]) != 2:
                raise MQTTError("expected CONNACK")
            if pkt[1][1]:
                raise MQTTError("connection refused, return code %d" % pkt[1][1])
            self.session_present = bool(pkt[1][0] & 1)
            self.connected = True
            self._ping_out = False
            self.last_error = None
            self._after_connect(end)
        except Exception as e:
            self._close()
            self.last_error = e
            self._backoff()
            raise
        self._fails = 0

    def disconnect(self):
        """Publish "offline" (retained, QoS 0) to the status topic, send
        DISCONNECT, then read (acting on PUBACKs, dropping anything else)
        until the broker closes the connection, at most `op_timeout_ms`, and
        only then close. Closing a socket with unread bytes resets the
        connection, and a reset can destroy the DISCONNECT before the broker
        has read it: the broker would then publish the will. Unacknowledged
        QoS 1 messages stay queued. Returns True when the broker closed the
        connection (it had the DISCONNECT), else False."""
        closed = False
        if self.connected:
            end = ticks_add(ticks_ms(), self.op_timeout_ms)
            try:
                if self.will_topic:
                    self._send_publish(_as_bytes(self.will_topic), b"offline", 0, True, False, 0, end)
                self._send(b"\xe0\x00", end)
                while True:
                    self._handle(self._read(end))
            except _Closed:
                closed = True
            except (OSError, ValueError):
                pass
        self._close()
        self._next = ticks_ms()
        return closed

    def publish(self, topic, payload, qos=0, retain=False, dup=False):
        """QoS 0: sent now if connected, else dropped; returns None.
        QoS 1: queued until PUBACK (sent now if connected, else at the next
        connect); returns the packet id. `dup`: the message may have been
        sent before (by this node before a reset), so even its first
        transmission from here carries DUP. `payload` (str, bytes, or a
        bytearray or memoryview) is kept as it is, not copied, until its
        PUBACK: it must not change meanwhile."""
        topic = _as_bytes(topic)
        payload = _as_bytes(payload)
        if qos == 0:
            if self.connected:
                self._guard(self._send_publish, topic, payload, 0, retain, False, 0)
            return None
        if qos != 1:
            raise ValueError("qos must be 0 or 1")
        if len(self._inflight) >= self.max_pending:
            raise MQTTError("%d messages await PUBACK" % len(self._inflight))
        entry = [self._new_pid(), topic, payload, retain, bool(dup), None]
        self._inflight.append(entry)
        if self.connected:
            self._guard(self._send_entry, entry)
        return entry[_PID]

    def subscribe(self, topic, qos=1):
        """Subscribe (QoS 0 or 1) and wait for SUBACK; remembered and
        renewed after a reconnect without a session. Returns the granted QoS,
        or None when not connected (it is sent at the next connect). Raises
        MQTTError if the broker refuses the subscription."""
        if qos not in (0, 1):
            raise ValueError("qos must be 0 or 1")
        topic = _as_bytes(topic)
        self._subs = [s for s in self._subs if s[0] != topic] + [[topic, qos, False]]
        if not self.connected:
            return None
        granted = self._guard(self._subscribe, topic, qos)
        if granted == 0x80:
            raise MQTTError("subscription to %s refused" % topic.decode())
        return granted

    def poll(self):
        """Handle what has arrived (messages, PUBACKs, PINGRESPs), send
        PINGREQ when due, and close a connection whose broker has been
        silent for 1.25 x keepalive. Returns within op_timeout_ms plus the
        time spent in on_message; returns `connected`. Network failures
        close the connection (see `last_error`), they are not raised."""
        end = ticks_add(ticks_ms(), self.op_timeout_ms)
        while self.connected and ticks_diff(end, ticks_ms()) > 0:
            try:
                if not self._readable():
                    self._keepalive(end)
                    break
                msg = self._handle(self._read(end))
            except (OSError, ValueError) as e:
                self._lost(e)
                break
            if msg:
                end = self._callback(msg, end)
                try:
                    self._ack(msg, end)
                except (OSError, ValueError) as e:
                    self._lost(e)
        return self.connected

    def pending(self):
        """QoS 1 messages not yet acknowledged by the broker."""
        return len(self._inflight)

    def next_attempt_ms(self):
        """Milliseconds until the backoff allows the next connection attempt."""
        if self.connected:
            return 0
        return max(0, ticks_diff(self._next, ticks_ms()))

    def maintain(self):
        """Call often: polls while connected; otherwise tries to connect
        when the backoff allows. Never raises for network failures; returns
        `connected`."""
        if self.connected:
            return self.poll()
        if self.next_attempt_ms() > 0:
            return False
        try:
            self.connect()
        except (OSError, ValueError):
            return False
        return True

    # ---- connection

    def _open(self, end):
        # TLS on CircuitPython: its ssl wraps the socket before the connect,
        # and the wrapped socket's connect() is the TCP connect and the
        # handshake. Elsewhere the connected TCP socket is wrapped (the
        # handshake is in wrap_socket).
        wrap_first = self.ssl_ca is not None and not self._polls
        hostname = self.server_hostname or self.host
        raw = None
        err = MQTTError("no address for %s" % self.host)
        pool = self._pool
        for ai in pool.getaddrinfo(self.host, self.port, 0, pool.SOCK_STREAM):
            raw = sock = pool.socket(ai[0], pool.SOCK_STREAM, ai[2])
            try:
                if wrap_first:
                    sock = self._context().wrap_socket(raw, server_hostname=hostname)
                sock.settimeout(self._left(end) / 1000)
                sock.connect(ai[-1])
                break
            except OSError as e:
                sock.close()
                if sock is not raw:  # a failed handshake leaves CircuitPython's TCP socket open
                    raw.close()
                raw, err = None, e
        if raw is None:
            raise err
        # Small packets go out at once, not after the ACK of the one before
        # (where the runtime has the constants: not every MicroPython port does).
        nodelay = getattr(pool, "TCP_NODELAY", None)
        tcp = getattr(pool, "IPPROTO_TCP", None)
        if nodelay is not None and tcp is not None:
            raw.setsockopt(tcp, nodelay, 1)
        self._raw = self._sock = self._tsock = raw
        if self.ssl_ca is not None:
            if not wrap_first:
                raw.settimeout(self._left(end) / 1000)
                sock = self._context().wrap_socket(raw, server_hostname=hostname)
            self._sock = sock
            self._tsock = sock if hasattr(sock, "settimeout") else raw
        s = self._sock
        self._readinto = s.readinto if hasattr(s, "readinto") else s.recv_into
        self._peeked = False
        if self._polls:
            self._poller = select.poll()
            self._poller.register(self._sock, select.POLLIN)
        self._rx = self._tx = ticks_ms()

    def _context(self):
        """The TLS context, made once. MicroPython's and CPython's ssl take
        the CA as DER bytes; CircuitPython's (a socketpool's sockets) has
        no protocol or verify-mode constants, verifies whenever a CA is
        loaded, and takes one CA certificate as PEM text."""
        if self._ctx is None:
            import ssl

            if self._polls:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(cadata=self.ssl_ca)
            else:
                ctx = ssl.create_default_context()
                ctx.load_verify_locations(cadata=_pem(self.ssl_ca))
            self._ctx = ctx
        return self._ctx

    def _connect_packet(self):
        flags = 0x02 if self.clean else 0
        body = _utf8(self.client_id)
        if self.will_topic:
            flags |= 0x04 | 0x08 | 0x20  # will, will QoS 1, will retained
            body += _utf8(self.will_topic) + _utf8(b"offline")
        if self.user is not None:
            flags |= 0x80
            body += _utf8(self.user)
            if self.password is not None:
                flags |= 0x40
                body += _utf8(self.password)
        ka = self.keepalive
        head = _utf8(b"MQTT") + bytes((4, flags, ka >> 8, ka & 0xFF))
        return 0x10, head + body

    def _after_connect(self, end):
        # Subscriptions first: whoever answers the birth message with a
        # command finds the node already subscribed.
        for sub in list(self._subs):
            if self.session_present and sub[2]:
                continue  # a kept session keeps what the broker acknowledged
            if self._subscribe(sub[0], sub[1], end) == 0x80:
                self.last_error = MQTTError("subscription to %s refused" % sub[0].decode())
        if self.will_topic:
            topic = _as_bytes(self.will_topic)
            # An older birth still unacknowledged would only repeat this one.
            self._inflight = [e for e in self._inflight
                              if not (e[_TOPIC] == topic and e[_PAYLOAD] == b"online")]
            self._inflight.insert(0, [self._new_pid(), topic, b"online", True, False, None])
        for entry in list(self._inflight):
            self._send_entry(entry, end)

    def _close(self):
        for s in (self._sock, self._raw):
            if s is not None:
                try:  # noqa: SIM105 - MicroPython has no contextlib
                    s.close()
                except OSError:
                    pass
        self._sock = self._tsock = self._raw = self._poller = self._readinto = None
        self.connected = False

    def _lost(self, e):
        self._close()
        self.last_error = e
        self._fails = 0
        self._backoff()

    def _backoff(self):
        """Schedule the next attempt: base doubled per failure up to the cap,
        +/- up to 25 % of random jitter."""
        d = self.BACKOFF_BASE_MS
        for _ in range(self._fails):
            d *= 2
            if d >= self.BACKOFF_CAP_MS:
                d = self.BACKOFF_CAP_MS
                break
        d += d * (getrandbits(8) - 128) // 512
        self._fails += 1
        self.backoff_ms = d
        self._next = ticks_add(ticks_ms(), d)

    def _guard(self, fn, *args):
        """Run a network step with its own deadline; a failure closes the
        connection (and schedules the reconnection) instead of raising."""
        try:
            return fn(*(args + (ticks_add(ticks_ms(), self.op_timeout_ms),)))
        except (OSError, ValueError) as e:
            self._lost(e)
            return None

    # ---- packets out

    def _new_pid(self):
        while True:
            self._pid = self._pid % 65535 + 1
            if self._find(self._pid) < 0:
                return self._pid

    def _find(self, pid):
        for i in range(len(self._inflight)):
            if self._inflight[i][_PID] == pid:
                return i
        return -1

    def _send_entry(self, entry, end):
        dup = entry[_SENT]
        entry[_SENT] = True  # any later transmission is a retransmission
        entry[_SENT_AT] = ticks_ms()
        self._send_publish(entry[_TOPIC], entry[_PAYLOAD], 1, entry[_RETAIN], dup, entry[_PID], end)

    def _send_publish(self, topic, payload, qos, retain, dup, pid, end):
        """A PUBLISH assembled in the reused buffer (grown, up to
        `_ASSEMBLE_MAX` bytes, for a longer message than any before) and
        written at once; nothing is allocated per message. A larger one goes
        in two writes, the payload from where it is. (One write, not four:
        with Nagle's algorithm on, as on MicroPython's sockets, each small
        write after the first waits for the broker's delayed ACK.)"""
        t = len(topic)
        size = t + (2 if qos else 0) + len(payload)
        whole = size + 7 <= _ASSEMBLE_MAX
        need = (size if whole else t + 4) + 7
        head = self._head
        if len(head) < need:
            head = self._head = bytearray(need)
        first = 0x30 | (qos << 1) | (1 if retain else 0) | (8 if dup else 0)
        i = _fixed_header(head, first, 2 + size)
        head[i] = t >> 8
        head[i + 1] = t & 0xFF
        head[i + 2:i + 2 + t] = topic
        i += 2 + t
        if qos:
            head[i] = pid >> 8
            head[i + 1] = pid & 0xFF
            i += 2
        if whole:
            head[i:i + len(payload)] = payload
            self._send(head, end, i + len(payload))
        else:
            self._send(head, end, i)
            self._send(payload, end)

    def _send_packet(self, packet, end):
        """`packet` = (first byte, body), written at once (CONNECT and
        SUBSCRIBE: rare, small, awaited)."""
        first, body = packet
        head = self._head
        self._send(bytes(head[:_fixed_header(head, first, len(body))]) + body, end)

    def _subscribe(self, topic, qos, end):
        pid = self._new_pid()
        self._send_packet((0x82, bytes((pid >> 8, pid & 0xFF)) + _utf8(topic) + bytes((qos,))), end)
        self._suback = None
        while self._suback is None or self._suback[0] != pid:
            msg = self._handle(self._read(end))
            if msg:
                end = self._callback(msg, end)
                if not self.connected:
                    raise MQTTError("disconnected during SUBSCRIBE")
                self._ack(msg, end)
        granted = self._suback[1]
        for sub in self._subs:
            if sub[0] == topic:
                sub[2] = granted != 0x80
        if granted == 0x80:  # refused: not tried again
            self._subs = [s for s in self._subs if s[0] != topic]
        return granted

    def _keepalive(self, end):
        if not self.connected:
            return
        now = ticks_ms()
        oldest = self._inflight[0][_SENT_AT] if self._inflight else None
        if oldest is not None and ticks_diff(now, oldest) >= self.ack_timeout_ms:
            # The broker answers but has lost this message: only a new
            # connection makes MQTT 3.1.1 send it again (with DUP).
            raise MQTTError("no PUBACK for %d ms" % ticks_diff(now, oldest))
        if not self.keepalive:
            return
        ka = self.keepalive * 1000
        rx = ticks_diff(now, self._rx)
        # PINGREQ after ka/2 of silence leaves the broker ka*3/4 to answer;
        # polled every ka/4, a dead peer is closed within 1.5 x keepalive.
        if rx >= ka + ka // 4:
            raise MQTTError("broker silent for %d ms" % rx)
        if ticks_diff(now, self._tx) >= ka // 2 or (rx >= ka // 2 and not self._ping_out):
            self._send(b"\xc0\x00", end)
            self._ping_out = True

    # ---- packets in

    def _handle(self, pkt):
        """Act on one packet; returns a message to deliver, or None."""
        first, body, whole = pkt
        kind = first >> 4
        if kind == 3:
            qos = (first >> 1) & 3
            if qos > 1:
                raise MQTTError("QoS 2 PUBLISH received")
            n = ((body[0] << 8) | body[1]) if len(body) > 1 else len(body)
            i = 2 + n + (2 if qos else 0)
            if len(body) < i:
                raise MQTTError("malformed PUBLISH")
            pid = ((body[i - 2] << 8) | body[i - 1]) if qos else 0
            payload = bytes(body[i:]) if whole else None
            try:
                topic = str(body[2:2 + n], "utf-8")
            except UnicodeError:
                raise MQTTError("PUBLISH topic is not UTF-8") from None
            return (topic, payload, bool(first & 1), bool(first & 8), pid)
        if kind == 4 and len(body) == 2:  # PUBACK
            pid = (body[0] << 8) | body[1]
            i = self._find(pid)
            if i >= 0:
                self._inflight.pop(i)
                if self.on_puback:
                    self.on_puback(pid)
        elif kind == 9 and len(body) >= 3:  # SUBACK
            self._suback = ((body[0] << 8) | body[1], body[2])
        elif first != 0xD0:  # PINGRESP needs nothing: its arrival is the point
            raise MQTTError("unexpected packet 0x%02x" % first)
        return None

    def _callback(self, msg, end):
        """Hand a message to on_message; the time spent there is added to
        the deadline, which is returned."""
        t0 = ticks_ms()
        if self.on_message:
            self.on_message(msg[0], msg[1], msg[2], msg[3])
        return ticks_add(end, ticks_diff(ticks_ms(), t0))

    def _ack(self, msg, end):
        if msg[4] and self.connected:  # on_message may have disconnected
            head = self._head
            head[0] = 0x40
            head[1] = 2
            head[2] = msg[4] >> 8
            head[3] = msg[4] & 0xFF
            self._send(head, end, 4)

    def _read(self, end):
        """One packet as (first byte, body, whole). Small bodies (acks) are
        read into a reused buffer and valid until the next read; a larger
        one into a buffer of its own size. A PUBLISH larger than
        `max_packet` is read through and counted in `dropped`; its body is
        then only the topic and packet id (`whole` False), so the message
        is still delivered, with its payload None."""
        head = self._two
        self._recv_into(head, 2, end)  # every packet has a type and a length byte
        first = head[0]
        b = head[1]
        n = b & 0x7F
        shift = 7
        while b & 0x80:
            if shift > 21:
                raise MQTTError("malformed remaining length")
            self._recv_into(head, 1, end)
            b = head[0]
            n |= (b & 0x7F) << shift
            shift += 7
        if n <= self.max_packet:
            if n == 2:  # PUBACK, CONNACK: the most frequent by far
                body = self._two
            elif n <= _SCRATCH:
                body = memoryview(self._scratch)[:n]
            else:
                body = bytearray(n)
            self._recv_into(body, n, end)
            self._arrived()
            return first, body, True
        if first >> 4 != 3:
            raise MQTTError("packet of %d bytes" % n)
        self._recv_into(head, 2, end)
        k = 2 + ((head[0] << 8) | head[1]) + (2 if first & 6 else 0)
        if k > n:
            raise MQTTError("malformed PUBLISH")
        body = bytearray(k)
        body[0] = head[0]
        body[1] = head[1]
        self._recv_into(memoryview(body)[2:], k - 2, end)
        n -= k
        while n:
            step = min(n, _SCRATCH)
            self._recv_into(self._scratch, step, end)
            n -= step
        self._arrived()
        self.dropped += 1
        return first, memoryview(body), False

    def _arrived(self):
        self._rx = ticks_ms()
        self._ping_out = False

    # ---- bounded socket operations

    def _left(self, end):
        left = ticks_diff(end, ticks_ms())
        if left <= 0:
            raise MQTTError("timed out")
        return left

    def _recv_into(self, buf, n, end):
        """Fill the first `n` bytes of `buf` from the socket (a view only
        for a partial fill: most reads take the whole buffer at once)."""
        got = 0
        if self._peeked:  # the byte _readable took
            buf[0] = self._peek[0]
            self._peeked = False
            got = 1
        while got < n:
            self._tsock.settimeout(self._left(end) / 1000)
            k = self._readinto(buf if got == 0 and n == len(buf) else memoryview(buf)[got:n])
            if not k:
                raise _Closed("connection closed by the broker")
            got += k

    def _send(self, data, end, n=None):
        """Write `data` (its first `n` bytes, default all) to the socket."""
        if n is None:
            n = len(data)
        i = 0
        while i < n:
            self._tsock.settimeout(self._left(end) / 1000)
            i += self._sock.send(data if i == 0 and n == len(data) else memoryview(data)[i:n]) or 0
        self._tx = ticks_ms()

    def _readable(self):
        pending = getattr(self._sock, "pending", None)  # CPython TLS: bytes already decrypted
        if pending is not None and pending():
            return True
        if self._polls:
            return bool(self._poller.poll(0))
        if self._peeked:
            return True
        self._tsock.settimeout(0)
        try:
            k = self._readinto(self._peek)
        except OSError as e:
            if e.args and e.args[0] in _NOTHING_YET:
                return False
            raise
        if not k:
            raise _Closed("connection closed by the broker")
        self._peeked = True
        return True
