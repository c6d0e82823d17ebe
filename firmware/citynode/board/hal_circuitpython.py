"""The hardware layer of a CircuitPython board (an Adafruit Feather or QT Py
ESP32-S3): the drivers on the `board` pins a board profile names, read when
the core says they are due, with CircuitPython's watchdog, Wi-Fi, an SNTP
exchange over `socketpool`, and deep sleep through `alarm`.

    hal = CircuitPythonHal(cfg)       # cfg: a checked config.json, hal.kind "circuitpython"

It keeps the contract of citynode.board.hal_esp32 (docs/hal.md), whose
scheduling, clock and link checks it shares; what differs is each
CircuitPython module in place of MicroPython's `machine`, `network` and
`ntptime` (docs/circuitpython.md):

- Pins: `board.<NAME>`. I2C: `busio.I2C(scl, sda)`, handed to Adafruit's
  BME280 driver as it is; the QMC5883L driver's register calls go through
  `_Registers`. A trigger/echo ranger: `digitalio` for the trigger and
  `pulseio.PulseIn` for the echo (the pulse is timed by the peripheral; the
  wait for it polls every millisecond). An A02YYUW: `busio.UART`.
- Watchdog: `microcontroller.watchdog` in RESET mode, fed by `service()`
  and by every wait here.
- Network: `wifi.radio.connect()` blocks (at most `NET_WAIT_MS` at boot,
  `REJOIN_S` later, the watchdog fed before and after; while the network
  stays away the attempts back off from every `NET_CHECK_MS` to every
  `REJOIN_MAX_MS`, as each one holds up the readings); the MQTT client
  finds `socketpool` itself (citynode.link.mqtt).
- Time: `time.time()` counts seconds from 1970 on the RTC, which runs
  through deep sleep; milliseconds come from `time.monotonic_ns()` on top of
  the RTC's second at boot. NTP is one SNTP exchange (RFC 4330) on UDP 123,
  and `rtc.RTC().datetime` is set from it.
- Deep sleep: the state goes to `alarm.sleep_memory` (a flash file when
  larger, if the filesystem is writable); `alarm.exit_and_deep_sleep_until_alarms`
  with a `TimeAlarm`; the reason for a start is `microcontroller.cpu.reset_reason`.
"""

import time

from citynode import ticks
from citynode.board.hal_esp32 import NET_CHECK_MS, BoardHal
from citynode.storage import write_atomic

REJOIN_S = 5  # after boot: how long one attempt to rejoin Wi-Fi may block
REJOIN_MAX_MS = 60000  # failed rejoins back off (doubling from NET_CHECK_MS) to one a minute
NTP_PORT = 123
NTP_1900 = 2208988800  # seconds from 1900 (NTP's epoch) to 1970
_STATE_LEN = 2  # sleep memory: two length bytes, then the state
_IN_FLASH = 0xFFFF  # the length that says "in STATE_PATH"
STATE_PATH = "/state.json"
_RESETS = (("POWER_ON", "power"), ("SOFTWARE", "soft"), ("RESET_PIN", "hard"), ("WATCHDOG", "watchdog"),
           ("DEEP_SLEEP_ALARM", "deepsleep"))


def settings_into(cfg):
    """Put the secrets CircuitPython keeps in /settings.toml into a loaded
    config.json (provisioning leaves them out of it): Wi-Fi under
    CircuitPython's own keys, the broker's password under citynode's.
    What config.json already has stays."""
    import os

    net = cfg.get("network")
    if type(net) is dict and net.get("kind") == "wifi":
        for key, name in (("ssid", "CIRCUITPY_WIFI_SSID"), ("password", "CIRCUITPY_WIFI_PASSWORD")):
            v = os.getenv(name)
            if v is not None and key not in net:
                net[key] = v
    broker = cfg.get("broker")
    v = os.getenv("CITYNODE_BROKER_PASSWORD")
    if type(broker) is dict and v is not None and "password" not in broker:
        broker["password"] = v


class _Trigger:
    """A ranger's trigger on `digitalio`, Pin-like for the driver: a rising
    edge clears and restarts the echo's PulseIn, so the echo that follows the
    falling edge is the first pulse it records."""

    def __init__(self, dio, echo):
        self._dio = dio
        self._echo = echo

    def value(self, v=None):
        if v is None:
            return 1 if self._dio.value else 0
        if v and not self._dio.value:
            self._echo.clear()
            self._echo.resume()
        self._dio.value = bool(v)
        return None


class _Echo:
    """A ranger's echo on `pulseio.PulseIn`. The level cannot be read while
    PulseIn holds the pin: `value()` says low."""

    def __init__(self, pulses):
        self.pulses = pulses

    def value(self):
        return 0


def _pulse_us(echo, level, timeout_us):
    """The first high pulse PulseIn recorded since the trigger, in µs; -2
    when none came within `timeout_us` (machine.time_pulse_us's answer)."""
    pulses = echo.pulses
    waited = 0
    while not len(pulses):
        if waited * 1000 >= timeout_us:
            pulses.pause()
            return -2
        time.sleep(0.001)
        waited += 1
    pulses.pause()
    return pulses[0]


class _Registers:
    """The `machine.I2C` register calls the QMC5883L driver makes, on a
    CircuitPython `busio.I2C` (which must be locked around each transfer)."""

    def __init__(self, i2c):
        self._i2c = i2c
        self._reg = bytearray(1)

    def _locked(self):
        while not self._i2c.try_lock():
            pass

    def readfrom_mem_into(self, address, reg, buf):
        self._reg[0] = reg
        self._locked()
        try:
            self._i2c.writeto_then_readfrom(address, self._reg, buf)
        finally:
            self._i2c.unlock()

    def writeto_mem(self, address, reg, data):
        self._locked()
        try:
            self._i2c.writeto(address, bytes((reg,)) + bytes(data))
        finally:
            self._i2c.unlock()


class _Uart:
    """The `machine.UART` calls the A02YYUW driver makes, on `busio.UART`."""

    def __init__(self, uart):
        self._uart = uart

    def any(self):
        return self._uart.in_waiting

    def readinto(self, buf, nbytes=None):
        return self._uart.readinto(buf if nbytes is None else memoryview(buf)[:nbytes])


class _Radio:
    """`wifi.radio` with the calls the shared link check makes."""

    def __init__(self, radio):
        self.radio = radio

    def isconnected(self):
        return self.radio.connected


class _Sntp:
    """One SNTP exchange over `socketpool` (RFC 4330: a 48-byte request,
    mode 3; the server's transmit time at bytes 40-47) that sets the RTC and
    the layer's millisecond base; `settime()` raises OSError on failure."""

    def __init__(self, hal):
        self._hal = hal
        self.host = "pool.ntp.org"
        self.timeout = 1

    def settime(self):
        import rtc
        import socketpool
        import wifi

        pool = socketpool.SocketPool(wifi.radio)
        addr = pool.getaddrinfo(self.host, NTP_PORT)[0][4]
        s = pool.socket(pool.AF_INET, pool.SOCK_DGRAM)
        try:
            s.settimeout(self.timeout)
            packet = bytearray(48)
            packet[0] = 0x1B  # version 3, mode 3 (client)
            s.sendto(packet, addr)
            n = s.recv_into(packet)
        finally:
            s.close()
        if n < 48 or packet[0] & 0x07 != 4:
            raise OSError("not an NTP answer")
        secs = int.from_bytes(packet[40:44], "big") - NTP_1900
        frac_ms = (int.from_bytes(packet[44:48], "big") * 1000) >> 32
        rtc.RTC().datetime = time.localtime(secs)
        self._hal.set_rtc_ms(secs * 1000 + frac_ms)


class CircuitPythonHal(BoardHal):
    DEEP_SLEEP = True

    def __init__(self, cfg):
        import microcontroller
        import watchdog

        self._mono0 = time.monotonic_ns() // 1000000
        self._rtc0 = time.time() * 1000  # the RTC's ms at `_mono0` (to its second)
        self._epoch = 0  # CircuitPython's time.time() counts from 1970
        self._ntptime = _Sntp(self)
        wdt = microcontroller.watchdog
        wdt.timeout = cfg["hal"].get("wdt_s", 30)
        wdt.mode = watchdog.WatchDogMode.RESET
        wdt.feed()
        self.wdt = wdt
        self._rejoin_ms = NET_CHECK_MS
        self._start(cfg)

    # ---- parts

    def _ranger_pins(self, pins):
        """(trigger, echo, pulse_us): `digitalio` for the trigger, PulseIn for the echo."""
        import board
        import digitalio
        import pulseio

        dio = digitalio.DigitalInOut(getattr(board, pins["trig"]))
        dio.switch_to_output(value=False)
        pulses = pulseio.PulseIn(getattr(board, pins["echo"]), maxlen=4, idle_state=False)
        pulses.pause()
        return _Trigger(dio, pulses), _Echo(pulses), _pulse_us

    def _registers(self, i2c):
        return _Registers(i2c)

    def _bus_i2c(self, c):
        if self._i2c is None:
            import board
            import busio

            self._i2c = busio.I2C(getattr(board, c["scl"]), getattr(board, c["sda"]),
                                  frequency=c.get("freq", 100000))
        return self._i2c

    def _bus_uart(self, c):
        if self._uart is None:
            import board
            import busio

            self._uart = _Uart(busio.UART(getattr(board, c["tx"]), getattr(board, c["rx"]), baudrate=9600,
                                          timeout=0))
        return self._uart

    # ---- network and time

    def _join(self, wait_ms):
        """Join Wi-Fi: `wifi.radio.connect` blocks, for at most `wait_ms`
        at boot and REJOIN_S afterwards (`wait_ms` 0)."""
        import wifi

        if self.wlan is None:
            self.wlan = _Radio(wifi.radio)
        if self.wlan.isconnected():
            return True
        net = self.net
        self.wdt.feed()
        try:  # noqa: SIM105 - CircuitPython has no contextlib
            wifi.radio.connect(net["ssid"], net.get("password", ""),
                               timeout=(wait_ms // 1000) if wait_ms else REJOIN_S)
        except (ConnectionError, OSError):
            pass
        self.wdt.feed()
        up = self.wlan.isconnected()
        # Each attempt blocks the readings: while the network stays away, try less often.
        self._rejoin_ms = NET_CHECK_MS if up else min(2 * self._rejoin_ms, REJOIN_MAX_MS)
        self._next_check = ticks.add(ticks.now_ms(), self._rejoin_ms)
        return up

    def _rtc_ms(self):
        return self._rtc0 + time.monotonic_ns() // 1000000 - self._mono0

    def set_rtc_ms(self, ms):
        """The RTC was set to `ms` (UTC epoch milliseconds) just now."""
        self._mono0 = time.monotonic_ns() // 1000000
        self._rtc0 = ms

    def reset_cause(self):
        """"power", "soft", "hard", "watchdog", "deepsleep" or "unknown"."""
        import microcontroller

        why = microcontroller.cpu.reset_reason
        for attr, name in _RESETS:
            if getattr(microcontroller.ResetReason, attr, None) == why:
                return name
        return "unknown"

    def rssi(self):
        if self.wlan is None or not self.wlan.isconnected():
            return None
        info = self.wlan.radio.ap_info
        return None if info is None else info.rssi

    def writable(self):
        """Whether code may write the drive: boot.py's `storage.remount`
        decides, before USB is up (docs/circuitpython.md)."""
        import storage

        return not storage.getmount("/").readonly

    # ---- deep sleep

    def save_state(self, data):
        """Keep `data` through deep sleep after a line with NTP's steps: in
        `alarm.sleep_memory` when it fits, else in a flash file."""
        import alarm

        if data:
            data = b"%d\n" % self._step_ms + data
        mem = alarm.sleep_memory
        n = len(data)
        if n + _STATE_LEN <= len(mem) and n < _IN_FLASH:
            mem[0] = n >> 8
            mem[1] = n & 0xFF
            mem[_STATE_LEN:_STATE_LEN + n] = data
            return
        write_atomic(STATE_PATH, data)
        mem[0] = mem[1] = 0xFF

    def load_state(self):
        """What `save_state` kept, or None; NTP's steps apply again."""
        import alarm

        mem = alarm.sleep_memory
        n = mem[0] << 8 | mem[1]
        if n == _IN_FLASH:
            try:
                with open(STATE_PATH, "rb") as f:
                    data = f.read()
            except OSError:
                return None
        else:
            data = bytes(mem[_STATE_LEN:_STATE_LEN + n])
        if not data:
            return None
        line, _, data = data.partition(b"\n")
        try:
            self._step_ms += int(line)
        except ValueError:
            return None
        self._anchor()
        return data

    def sleep(self, ms):
        """Deep sleep for `ms`: the board restarts on waking (code.py runs again)."""
        import alarm

        wake = alarm.time.TimeAlarm(monotonic_time=time.monotonic() + ms / 1000)
        alarm.exit_and_deep_sleep_until_alarms(wake)

    def reboot(self):
        import microcontroller

        microcontroller.reset()
