"""The board's hardware layer: the drivers on an ESP32's pins, read when
the core says they are due, with the watchdog, the network and NTP.

    hal = BoardHal(cfg)               # cfg: a checked config.json, hal.kind "esp32"
    core = Core(cfg["sensors"], hal.clock(), publish)
    for sid, t, sample in hal.stream(core, wait):
        core.feed(sid, t, sample)

The hardware-layer contract (docs/hal.md) with deep sleep (`DEEP_SLEEP`):
`first_due()`, `save_state()`, `load_state()` and `sleep(ms)` for the
duty-cycled profile.

Time. The core's ticks are the RTC's milliseconds less every step NTP has
made it take, wrapped at 2**30: the RTC keeps counting through deep sleep,
so ticks kept across a sleep stay valid, and setting the clock moves no
tick (the core would take a jump for a silence). The RTC is set from NTP at
boot, again every `NTP_EVERY_S`, and every `NTP_RETRY_MS` while it has never
been set (no network at boot); until then ticks still run and payloads
carry the RTC's own idea of the epoch (2000-01-01 after a power cut). Each
step NTP makes re-anchors the clock (`clock()`, the one the core stamps
payloads with) in place, so the next payload carries the right time. The
steps are kept through deep sleep with the state. Waiting uses the board's
`time.ticks_ms` (citynode.ticks).

Bounds. The watchdog is started first, with `hal.wdt_s`; `service()`
feeds it and every wait in here is cut into slices that do too, so the
node resets only if its loop really stops. Joining Wi-Fi waits at most
`NET_WAIT_MS` at boot; later the link is only checked (and rejoined)
every `NET_CHECK_MS` without waiting. A part that does not answer at boot
is retried at each reading and gives `{"fault": "no_answer"}` meanwhile.

`machine`, `network`, `ntptime` and `time_ns` (the RTC) are the board's
unless given: the desk passes emulated ones (host_tools.emulators.board).
"""

import time

from citynode import ticks
from citynode.sense.ranging import RANGERS
from citynode.sensors import get as type_module
from citynode.storage import write_atomic

NET_WAIT_MS = 15000  # at boot: longest wait for Wi-Fi or Ethernet
NET_CHECK_MS = 10000  # then: how often the link is checked
NTP_EVERY_S = 6 * 3600
NTP_RETRY_MS = 60000  # while the clock was never set
_SLICE_MS = 100  # longest sleep between two watchdog feeds in a wait here
_MAX_WAIT_MS = 3600 * 1000  # a due time further away than this is a clock jump: read now
_UART_BAUD = 9600  # A02YYUW
RTC_BYTES = 2048  # RTC memory kept through deep sleep (MicroPython's esp32 port)
STATE_PATH = "/state.json"  # the deep-sleep state when it is larger
_IN_FLASH = b"@flash"
UNIX_2000 = 946684800  # seconds from 1970 to 2000, the epoch of older ESP32 builds


def _epoch_offset():
    """Seconds to add to `time.time()` for a UNIX epoch time."""
    return UNIX_2000 if time.gmtime(0)[0] == 2000 else 0


class _Part:
    """A driver made on first use, and made again after it failed to start:
    a sensor missing at boot gives faults, not a node in safe mode."""

    def __init__(self, make):
        self._make = make
        self.driver = None

    def sample(self):
        if self.driver is None:
            try:
                self.driver = self._make()
            except OSError:
                return {"fault": "no_answer"}
        return self.driver.sample()


class BoardHal:
    DEEP_SLEEP = True  # save_state, load_state, sleep: the duty-cycled profile (docs/hal.md)

    def __init__(self, cfg, machine=None, network=None, ntptime=None, time_ns=None):
        if machine is None:
            import machine
        self.machine = machine
        self._rtc_ns = time.time_ns if time_ns is None else time_ns
        self._epoch = _epoch_offset()  # seconds from 1970 to the RTC's epoch
        self._network = network
        self._ntptime = ntptime
        self.wdt = machine.WDT(timeout=cfg["hal"].get("wdt_s", 30) * 1000)
        self._start(cfg)

    def _start(self, cfg):
        """Once the RTC and the watchdog are there: the parts, then the link
        joined and the clock set (at boot, bounded)."""
        self._step_ms = 0  # how far NTP has set the RTC, all told: ticks leave it out
        self._clock = None
        self._i2c = self._uart = None
        self._add_parts(cfg["sensors"], cfg["hal"])
        self.ntp_host = cfg.get("ntp", "pool.ntp.org")
        self.net = cfg.get("network")
        self.wlan = None
        self.synced = False
        self._next_check = self._next_ntp = ticks.now_ms()
        if self.net is not None:
            self._join(NET_WAIT_MS)
            self._sync_time()

    # ---- parts

    def _add_parts(self, sensors, hal):
        """A part per sensor, and the order in which never-read sensors are
        read first: the air (and any other part that needs no air) before
        the rangers, whose first level then uses a measured speed of sound."""
        self.parts = {}
        self.order = []
        for s in sensors:
            self.parts[s["id"]] = _Part(self._maker(s, hal))
            if not type_module(s["type"]).RANGED:
                self.order.append(s["id"])
        self.order += [s["id"] for s in sensors if s["id"] not in self.order]

    def _maker(self, s, hal):
        """A function that makes sensor `s`'s driver on its pins or bus."""
        kind = type_module(s["type"])
        driver = s.get("driver", kind.DRIVER)
        if kind.RANGED:
            if driver == "a02yyuw":
                def make():
                    from citynode.drivers.a02yyuw import A02YYUW

                    return A02YYUW(self._bus_uart(hal["uart"]))
                return make
            pins = hal["pins"][s["id"]]
            pings = s.get("pings", 7)

            def make():
                from citynode.drivers.hcsr04 import HCSR04

                trig, echo, pulse_us = self._ranger_pins(pins)
                return HCSR04(trig, echo, pings=pings, timeout_us=RANGERS[driver][2], pulse_us=pulse_us)
            return make
        if driver == "qmc5883l":
            def make():
                from citynode.drivers.qmc5883l import QMC5883L

                return QMC5883L(self._registers(self._bus_i2c(hal["i2c"])))
            return make

        def make():
            from citynode.drivers.bme280 import BME280

            return BME280(self._bus_i2c(hal["i2c"]))
        return make

    def _ranger_pins(self, pins):
        """(trigger, echo, pulse_us) for a trigger/echo ranger on `pins`."""
        m = self.machine
        return (m.Pin(pins["trig"], m.Pin.OUT, value=0), m.Pin(pins["echo"], m.Pin.IN), m.time_pulse_us)

    def _registers(self, i2c):
        """The bus with `machine.I2C`'s register calls (it has them here)."""
        return i2c

    def _bus_i2c(self, c):
        if self._i2c is None:
            m = self.machine
            self._i2c = m.I2C(c["id"], scl=m.Pin(c["scl"]), sda=m.Pin(c["sda"]), freq=c.get("freq", 100000))
        return self._i2c

    def _bus_uart(self, c):
        if self._uart is None:
            self._uart = self.machine.UART(c["id"], baudrate=_UART_BAUD, tx=c["tx"], rx=c["rx"])
        return self._uart

    # ---- network and time

    def _join(self, wait_ms):
        """Bring the link up; wait at most `wait_ms` (feeding the watchdog)."""
        net = self.net
        if self._network is None:
            import network

            self._network = network
        nw = self._network
        if self.wlan is None:
            if net["kind"] == "wifi":
                self.wlan = nw.WLAN(nw.STA_IF)
                self.wlan.active(True)
            else:
                m = self.machine
                phy = getattr(nw, "PHY_" + net["phy"])
                self.wlan = nw.LAN(mdc=m.Pin(net["mdc"]), mdio=m.Pin(net["mdio"]), phy_type=phy,
                                   phy_addr=net["phy_addr"],
                                   power=m.Pin(net["power"]) if "power" in net else None)
                self.wlan.active(True)
        if self.wlan.isconnected():
            return True
        if net["kind"] == "wifi":
            try:  # noqa: SIM105 - MicroPython has no contextlib
                self.wlan.connect(net["ssid"], net.get("password", ""))
            except OSError:  # already connecting
                pass
        end = ticks.add(ticks.now_ms(), wait_ms)
        while not self.wlan.isconnected() and ticks.diff(end, ticks.now_ms()) > 0:
            self.wdt.feed()
            ticks.sleep_ms(_SLICE_MS)
        return self.wlan.isconnected()

    def _sync_time(self):
        """Set the RTC from NTP (one bounded UDP exchange); False if it
        failed. The step it made is left out of the ticks and re-anchors the
        clock. The next attempt: in NTP_EVERY_S, or NTP_RETRY_MS while the
        clock was never set."""
        self._next_ntp = ticks.add(ticks.now_ms(), NTP_EVERY_S * 1000 if self.synced else NTP_RETRY_MS)
        if self.wlan is None or not self.wlan.isconnected():
            return False
        if self._ntptime is None:
            import ntptime

            self._ntptime = ntptime
        self._ntptime.host = self.ntp_host
        self._ntptime.timeout = 1
        before = self._rtc_ms()
        t0 = ticks.now_ms()
        try:
            self._ntptime.settime()
        except (OSError, OverflowError):
            return False
        self._step_ms += self._rtc_ms() - before - ticks.diff(ticks.now_ms(), t0)
        self._anchor()
        self.synced = True
        self._next_ntp = ticks.add(ticks.now_ms(), NTP_EVERY_S * 1000)
        return True

    def _rtc_ms(self):
        return self._rtc_ns() // 1000000

    def _anchor(self):
        """Anchor the clock at the start of the RTC's current second."""
        if self._clock is not None:
            s = self._rtc_ms() // 1000
            self._clock.anchor(s + self._epoch, (s * 1000 - self._step_ms) & ticks.MASK)

    def reset_cause(self):
        """"power", "soft", "hard", "watchdog", "deepsleep" or "unknown"."""
        m = self.machine
        cause = m.reset_cause()
        for name, attr in (("power", "PWRON_RESET"), ("soft", "SOFT_RESET"), ("hard", "HARD_RESET"),
                           ("watchdog", "WDT_RESET"), ("deepsleep", "DEEPSLEEP_RESET")):
            if getattr(m, attr, None) == cause:
                return name
        return "unknown"

    def rssi(self):
        if self.wlan is None or self.net["kind"] != "wifi" or not self.wlan.isconnected():
            return None
        try:
            return self.wlan.status("rssi")
        except (OSError, ValueError):
            return None

    def writable(self):
        """MicroPython's filesystem is always the code's."""
        return True

    # ---- the interface

    def now(self):
        """The core's tick now: RTC milliseconds less NTP's steps, wrapped at 2**30."""
        return (self._rtc_ms() - self._step_ms) & ticks.MASK

    def clock(self):
        """The core's clock: epoch seconds for ticks, from the RTC, anchored
        at the start of the current second and again at every NTP step."""
        self._clock = ticks.Clock(0, 0)
        self._anchor()
        return self._clock

    def first_due(self, due_at):
        """(sensor, ms until it is due) of the first sensor to read: one
        never read first (in `order`), then the most overdue, then the
        soonest due."""
        now = self.now()
        sid = None
        best = 0
        for k in self.order:
            d = due_at[k]
            left = -_MAX_WAIT_MS if d is None else ticks.diff(d, now)
            if sid is None or left < best:
                sid, best = k, left
        if best > _MAX_WAIT_MS:  # the RTC jumped back (NTP): do not stall
            best = 0
        return sid, best

    def stream(self, sched, wait):
        """Forever: wait until the first sensor is due (by `sched.due_at`),
        read it, yield `(sensor, t, sample)`."""
        while True:
            sid, left = self.first_due(sched.due_at)
            if left > 0:
                wait(ticks.add(ticks.now_ms(), left))
            yield sid, self.now(), self.parts[sid].sample()

    def service(self):
        """Feed the watchdog; check the link (rejoin without waiting) and
        resync the clock when due."""
        self.wdt.feed()
        if self.net is None:
            return
        now = ticks.now_ms()
        if ticks.diff(now, self._next_check) >= 0:
            self._next_check = ticks.add(now, NET_CHECK_MS)
            if not self.wlan.isconnected():
                self._join(0)
        if ticks.diff(now, self._next_ntp) >= 0:
            self._sync_time()

    def save_state(self, data):
        """Keep `data` (bytes) through deep sleep, after a line with NTP's
        steps (the ticks in `data` leave them out): in RTC memory when it
        fits, else in a flash file (RTC memory then says so). Empty: forget it."""
        if data:
            data = b"%d\n" % self._step_ms + data
        rtc = self.machine.RTC()
        if len(data) <= RTC_BYTES:
            rtc.memory(data)
            return
        write_atomic(STATE_PATH, data)
        rtc.memory(_IN_FLASH)

    def load_state(self):
        """What `save_state` kept, or None; NTP's steps kept with it apply
        again (and re-anchor the clock)."""
        data = self.machine.RTC().memory()
        if data == _IN_FLASH:
            try:
                with open(STATE_PATH, "rb") as f:
                    data = f.read()
            except OSError:
                return None
        if not data:
            return None
        line, _, data = data.partition(b"\n")
        try:
            self._step_ms += int(line)  # with the steps this boot made
        except ValueError:
            return None
        self._anchor()
        return data

    def sleep(self, ms):
        """Deep sleep for `ms`: the board resets on waking (main.py runs again)."""
        self.machine.deepsleep(ms)

    def reboot(self):
        self.machine.reset()

    def close(self):
        """Nothing to release: the board's layer runs until a reset."""
