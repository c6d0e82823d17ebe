"""An ESP32 on the desk: the `machine`, `network` and `ntptime` modules the
board's hardware layer (citynode.board.hal_esp32) uses, over emulated parts.

    b = EmulatedBoard(i2c_pins={"sda": 21, "scl": 22})
    sonar = b.add_ranger(trig=5, echo=18, echoes=lambda i: 8746)
    env = b.add_bme280()
    hal = BoardHal(cfg, machine=b.machine, network=b.network, ntptime=b.ntptime)

What is emulated, and how far:
- Pins: a ranger's trigger and echo pins are its EchoSource's (the driver's
  pulses reach it; `time_pulse_us` times its echo); other pins are plain.
- I2C: `machine.I2C(id, scl=Pin, sda=Pin)` is the bus the parts sit on
  when the pins are the board's I2C pins, and an empty bus otherwise (a
  miswired bus: nothing answers, as on a board).
- UART: `machine.UART(id, tx=, rx=)` on the board's UART pins is an
  A02YYUW stream whose clock follows real time.
- WDT: records its timeout and every feed; `longest_gap_ms` is the longest
  time the firmware went without feeding it (a real one would have reset
  the board past `timeout`).
- RTC memory, `reset_cause()`, and `deepsleep(ms)` / `reset()`, which raise
  `DeepSleep` / `Reset` so the test decides what waking up means.
- network: a station interface that joins after `join_after` checks (and
  only the configured `ssid`), with an RSSI; Ethernet (`network.LAN`) is up
  at once. ntptime: `settime()` counts syncs and sets the RTC, or fails
  with ETIMEDOUT while `ntp_fails`.
- The RTC (`time_ns`, which the layer takes as `time.time_ns`): the host's
  clock, `rtc_behind_s` behind until NTP sets it (an RTC that lost its
  time starts at 2000-01-01).
The radio, the ROM and real timing cannot run here; everything above is
what the firmware can observe of them.

MicroPython-compatible.
"""

import time

from citynode import ticks
from host_tools.emulators.echo import EchoSource, time_pulse_us
from host_tools.emulators.i2c import I2CBus
from host_tools.emulators.uart import A02YYUWStream

# machine.reset_cause() values of MicroPython's esp32 port
PWRON_RESET, HARD_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET = 1, 2, 3, 4, 5


class DeepSleep(Exception):
    """`machine.deepsleep(ms)` was called: the board would now sleep and
    reset on waking."""

    def __init__(self, ms):
        super().__init__(ms)
        self.ms = ms


class Reset(Exception):
    """`machine.reset()` was called."""


class _Pin:
    def __init__(self, n, value=None):
        self.n = n
        self._v = value or 0

    def value(self, v=None):
        if v is None:
            return self._v
        self._v = 1 if v else 0
        return None


class _PinFactory:
    """`machine.Pin`: a ranger's pins are its EchoSource's, others plain."""

    OUT = 1
    IN = 0

    def __init__(self, board):
        self._b = board

    def __call__(self, n, mode=None, value=None):
        src = self._b.rangers.get(n)
        if src is not None:
            return src.trigger
        src = self._b.echo_pins.get(n)
        if src is not None:
            return src.echo
        return _Pin(n, value)


class _RealTimeUART:
    """An A02YYUW stream whose virtual clock follows the real one."""

    def __init__(self, stream):
        self.stream = stream
        self._last = ticks.now_ms()

    def _catch_up(self):
        now = ticks.now_ms()
        self.stream.advance(ticks.diff(now, self._last))
        self._last = now

    def any(self):
        self._catch_up()
        return self.stream.any()

    def readinto(self, buf, nbytes=None):
        self._catch_up()
        return self.stream.readinto(buf, nbytes)

    def read(self, nbytes=None):
        self._catch_up()
        return self.stream.read(nbytes)

    def write(self, buf):
        return self.stream.write(buf)


class _WDT:
    def __init__(self, board, timeout):
        self.timeout = timeout
        self.feeds = 0
        self.longest_gap_ms = 0
        self._last = ticks.now_ms()
        board.wdt = self

    def feed(self):
        now = ticks.now_ms()
        self.longest_gap_ms = max(self.longest_gap_ms, ticks.diff(now, self._last))
        self._last = now
        self.feeds += 1


class _RTC:
    def __init__(self, board):
        self._board = board

    def memory(self, data=None):
        if data is None:
            return bytes(self._board.rtc_memory)
        if len(data) > 2048:
            raise ValueError("RTC memory holds 2048 bytes")
        self._board.rtc_memory = bytes(data)
        return None


class _Machine:
    """The subset of MicroPython's esp32 `machine` the firmware uses."""

    PWRON_RESET, HARD_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET = (
        PWRON_RESET, HARD_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET)

    def __init__(self, board):
        self._b = board
        self.Pin = _PinFactory(board)
        self.time_pulse_us = time_pulse_us

    def I2C(self, bus_id, scl=None, sda=None, freq=400000):
        pins = self._b.i2c_pins
        if bus_id == pins.get("id", 0) and getattr(scl, "n", None) == pins["scl"] and \
                getattr(sda, "n", None) == pins["sda"]:
            return self._b.i2c
        return I2CBus()

    def UART(self, uart_id, baudrate=9600, tx=None, rx=None):
        pins = self._b.uart_pins
        if pins is not None and (uart_id, tx, rx) == (pins["id"], pins["tx"], pins["rx"]):
            return _RealTimeUART(self._b.uart)
        return _RealTimeUART(A02YYUWStream())  # nothing on those pins: silence

    def WDT(self, id=0, timeout=5000):  # noqa: A002 - machine.WDT's own keyword
        return _WDT(self._b, timeout)

    def RTC(self):
        return _RTC(self._b)

    def reset_cause(self):
        return self._b.cause

    def deepsleep(self, ms=0):
        raise DeepSleep(ms)

    def reset(self):
        raise Reset()


class _WLAN:
    def __init__(self, board):
        self._b = board
        self._active = False
        self._ssid = None
        self._checks = 0

    def active(self, v=None):
        if v is not None:
            self._active = bool(v)
        return self._active

    def connect(self, ssid, password=""):
        self._b.joins.append(ssid)
        self._ssid = ssid
        self._checks = 0

    def isconnected(self):
        b = self._b
        if not self._active or self._ssid != b.ssid or b.link_down:
            return False
        self._checks += 1
        return self._checks > b.join_after

    def status(self, what=None):
        if what == "rssi":
            return self._b.rssi
        return 1010 if self.isconnected() else 1001

    def disconnect(self):
        self._ssid = None


class _LAN(_WLAN):
    def __init__(self, board, **kwargs):
        super().__init__(board)
        board.lan_args = kwargs
        self._ssid = board.ssid


class _Network:
    STA_IF = 0
    PHY_LAN8720 = 0
    PHY_IP101 = 1

    def __init__(self, board):
        self._b = board

    def WLAN(self, interface=0):
        return _WLAN(self._b)

    def LAN(self, **kwargs):
        return _LAN(self._b, **kwargs)


class _NTP:
    def __init__(self, board):
        self._b = board
        self.host = "pool.ntp.org"
        self.timeout = 1

    def settime(self):
        if self._b.ntp_fails:
            raise OSError(110)
        self._b.ntp_syncs.append(self.host)
        self._b.rtc_behind_ms = 0


class EmulatedBoard:
    def __init__(self, i2c_pins=None, uart_pins=None, ssid="city-iot", join_after=2, rssi=-61,
                 cause=PWRON_RESET, rtc_behind_s=0):
        self.i2c_pins = i2c_pins or {"id": 0, "sda": 21, "scl": 22}
        self.uart_pins = uart_pins
        self.i2c = I2CBus()
        self.uart = A02YYUWStream()
        self.rangers = {}  # trigger pin -> EchoSource
        self.echo_pins = {}  # echo pin -> EchoSource
        self.ssid = ssid
        self.join_after = join_after
        self.rssi = rssi
        self.link_down = False
        self.joins = []
        self.lan_args = None
        self.ntp_fails = False
        self.ntp_syncs = []
        self.rtc_behind_ms = rtc_behind_s * 1000
        self.cause = cause
        self.rtc_memory = b""
        self.wdt = None
        self.machine = _Machine(self)
        self.network = _Network(self)
        self.ntptime = _NTP(self)

    def time_ns(self):
        """The RTC now, in ns."""
        return time.time_ns() - self.rtc_behind_ms * 1000000

    def add_ranger(self, trig, echo, echoes):
        """An HC-SR04 on `trig`/`echo`; `echoes` as EchoSource takes them."""
        src = EchoSource(echoes, timed=False)  # the desk's sleeps are not the part's clock
        self.rangers[trig] = src
        self.echo_pins[echo] = src
        return src

    def attach(self, address, device):
        """Put an emulated I2C part on the board's bus."""
        self.i2c.attach(address, device)
        return device
