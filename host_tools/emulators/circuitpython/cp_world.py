"""The world around an emulated CircuitPython board: one virtual clock, the
parts on its pins (fed from a recording), its Wi-Fi, NTP server and the
memory that outlives a reset. The emulated CircuitPython modules in this
folder (`time`, `supervisor`, `board`, `busio`, `digitalio`, `pulseio`,
`wifi`, `socketpool`, `ssl`, `rtc`, `alarm`, `microcontroller`,
`watchdog`, `storage`, `os`) all talk to the one `world()`.

Run the firmware with launch.py under MicroPython's unix port (this
folder first on MICROPYPATH) or launch_cpython.py under CPython, with
`CITYNODE_CP_WORLD` naming a JSON file:

    {"recording": "storm.jsonl",          # bus-level values (version 2) drive the parts
     "parts": {"street": {"trig": "D5", "echo": "D6"},   # a trigger/echo ranger
               "env": {"scl": "SCL", "sda": "SDA"}},      # a BME280 on I2C
     "wifi": {"ssid": "city-iot", "password": "…", "rssi": -61, "join_ms": 1200},
     "rtc_behind_s": 0,                   # the RTC's lag until NTP sets it
     "end_ms": 5760000,                   # the world ends (the interpreter exits) then
     "speed": 20,                         # virtual ms per real ms (default: unpaced)
     "state": "world-state.json"}         # what outlives a reset (made by the world)

Time. The clock is virtual: it moves only when the firmware sleeps
(`time.sleep`, a blocking `wifi.radio.connect`, a socket wait that times
out), so a run is the same on a busy machine. The network has no latency
in that clock: before the clock moves, every answer the broker owes (a
CONNACK, SUBACK, PUBACK or PINGRESP for what the node sent) is taken in
(`socketpool`). Recording time `t0 + v` is virtual time `v` (t0: the
recording's first record); the true UTC time is the recording's start
plus its `t`.

Resets. `alarm.exit_and_deep_sleep_until_alarms`, `microcontroller.reset()`
and a hungry watchdog save the world's state (the clock, sleep memory,
`microcontroller.nvm`, why the board restarts) to `state` and end the
interpreter with `Reset`; the test runs it again, as the board would.

The real modules are reached by MicroPython's `u` names (`usocket`,
`uselect`, `uos`, `utime`, with MicroPython's calls on them); under CPython
launch_cpython.py (cp_cpython) gives CPython's under those names.
"""

import json

import uos
import utime

from host_tools.emulators.bme280 import ADDRESS as BME280_ADDRESS
from host_tools.emulators.bme280 import BME280Device

HOST = "/host"  # where the launcher mounts the host's files (launch.py)

# microcontroller.ResetReason names, as CircuitPython's documentation lists them
POWER_ON, BROWNOUT, SOFTWARE, DEEP_SLEEP_ALARM, RESET_PIN, WATCHDOG, UNKNOWN = (
    "POWER_ON", "BROWNOUT", "SOFTWARE", "DEEP_SLEEP_ALARM", "RESET_PIN", "WATCHDOG", "UNKNOWN")
SLEEP_MEMORY_BYTES = 8192  # alarm.sleep_memory on the ESP32-S3 (RTC slow memory)
NVM_BYTES = 8192  # microcontroller.nvm on Espressif ports
TICKS_START_MS = (1 << 29) - 65000  # supervisor.ticks_ms wraps 65 s after power-up (its docs)


class Reset(SystemExit):
    """The board resets: the interpreter ends, the state is saved."""


def _days_from_civil(y, m, d):
    """Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def epoch_of(tm):
    """UTC epoch seconds of a (year, month, day, hour, minute, second, ...) tuple."""
    return _days_from_civil(tm[0], tm[1], tm[2]) * 86400 + tm[3] * 3600 + tm[4] * 60 + tm[5]


def _used(mem):
    """Memory as hex, without its trailing zero bytes."""
    n = len(mem)
    while n and not mem[n - 1]:
        n -= 1
    return bytes(mem[:n]).hex()


class _Recording:
    """The recording's records by sensor; `at(sid, t)` is the last one at or
    before recording time `t`."""

    def __init__(self, path):
        self.by = {}
        self._i = {}
        with open(path) as f:
            self.header = json.loads(f.readline())
            for line in f:
                rec = json.loads(line)
                sid = rec.get("s")
                if sid is not None:
                    self.by.setdefault(sid, []).append(rec)
        self.t0 = min(recs[0]["t"] for recs in self.by.values())

    def at(self, sid, t):
        recs = self.by[sid]
        i = self._i.get(sid, 0)
        while i + 1 < len(recs) and recs[i + 1]["t"] <= t:
            i += 1
        self._i[sid] = i
        return recs[i] if recs[i]["t"] <= t else None


class RecordedBME280(BME280Device):
    """A BME280 whose raw readings are the recording's (`bme280`: adc T, P, H)
    at the moment its registers are read."""

    def __init__(self, world, sid, calibration):
        super().__init__(tuple(calibration[:12]), tuple(calibration[12:]))
        self._world = world
        self._sid = sid

    def read(self, reg, n):
        rec = self._world.record(self._sid)
        if rec is not None and "bme280" in rec:
            self.adc_t, self.adc_p, self.adc_h = rec["bme280"]
        return super().read(reg, n)


class World:
    def __init__(self, path):
        with open(HOST + path) as f:
            self.cfg = json.load(f)
        self.state_path = HOST + self.cfg["state"]
        try:
            with open(self.state_path) as f:
                kept = json.load(f)
        except OSError:
            kept = {"now_ms": 0, "reason": POWER_ON, "sleep_memory": "", "nvm": "", "rtc_behind_ms":
                    self.cfg.get("rtc_behind_s", 0) * 1000, "boots": 0, "wdt_resets": 0, "deep_sleeps": []}
        self.kept = kept
        kept["boots"] += 1
        self.now_ms = kept["now_ms"]  # virtual time since the world began
        self.boot_ms = self.now_ms
        self.reason = kept["reason"]
        self.sleep_memory = bytearray(SLEEP_MEMORY_BYTES)
        self.nvm = bytearray(NVM_BYTES)
        for name, mem in (("sleep_memory", self.sleep_memory), ("nvm", self.nvm)):
            data = bytes.fromhex(kept[name])
            mem[:len(data)] = data
        if self.reason != DEEP_SLEEP_ALARM:
            self.sleep_memory[:] = bytes(SLEEP_MEMORY_BYTES)  # only deep sleep keeps it
        self.rec = _Recording(HOST + self.cfg["recording"]) if "recording" in self.cfg else None
        self.sockets = []  # open emulated TCP sockets (socketpool)
        self.watchdog = None  # (timeout_ms, last feed) once the firmware starts it
        self.pulse_ins = {}  # pin name -> PulseIn
        self.pings = {}  # sensor -> (record time, pings so far)
        self.wifi = self.cfg.get("wifi", {})
        self.in_boot = False  # True while boot.py runs: the only time storage.remount works

    # ---- time

    def advance(self, ms):
        """The firmware waits `ms`: owed network answers come in first."""
        for s in self.sockets:
            s.settle()
        speed = self.cfg.get("speed")
        if speed:  # paced: `speed` virtual ms per real ms
            utime.sleep_ms(ms // speed)
        self.now_ms += ms
        if self.now_ms >= self.cfg.get("end_ms", self.now_ms + 1):
            self.end()
        wd = self.watchdog
        if wd is not None and self.now_ms - wd[1] > wd[0]:
            self.kept["wdt_resets"] += 1
            self.reset(WATCHDOG)

    def rtc_ms(self):
        """The board's RTC: the true time less its lag."""
        return self.true_ms() - self.kept["rtc_behind_ms"]

    def true_ms(self):
        h = self.rec.header if self.rec else {"start": 0}
        t0 = self.rec.t0 if self.rec else 0
        return h["start"] * 1000 + t0 + self.now_ms

    def set_rtc_ms(self, ms):
        self.kept["rtc_behind_ms"] = self.true_ms() - ms

    # ---- parts

    def record(self, sid):
        """The recording's record of `sid` now."""
        return self.rec.at(sid, self.rec.t0 + self.now_ms)

    def trigger_fell(self, pin):
        """A trigger pin went low after a pulse: the ranger on it pings, and
        its echo pulse lands in the PulseIn on its echo pin."""
        for sid, part in self.cfg.get("parts", {}).items():
            if part.get("trig") != pin:
                continue
            rec = self.record(sid)
            if rec is None or "echo_us" not in rec:
                return
            t, n = self.pings.get(sid, (None, 0))
            n = n + 1 if t == rec["t"] else 0
            self.pings[sid] = (rec["t"], n)
            us = rec["echo_us"][n % len(rec["echo_us"])]
            pulses = self.pulse_ins.get(part["echo"])
            if us and pulses is not None:
                pulses.record(us)

    def i2c_devices(self, scl, sda):
        """{address: device} on the bus with these pins (empty if none is there)."""
        out = {}
        for sid, part in self.cfg.get("parts", {}).items():
            if part.get("scl") == scl and part.get("sda") == sda:
                out[BME280_ADDRESS] = RecordedBME280(self, sid, self.rec.header["bus"][sid]["calibration"])
        return out

    # ---- resets

    def reset(self, reason, sleep_ms=0):
        """Save what outlives the reset and end the interpreter."""
        self.kept["now_ms"] = self.now_ms + sleep_ms
        self.kept["reason"] = reason
        if reason == DEEP_SLEEP_ALARM:
            self.kept["deep_sleeps"].append(sleep_ms)
        self.kept["sleep_memory"] = _used(self.sleep_memory) if reason == DEEP_SLEEP_ALARM else ""
        self.kept["nvm"] = _used(self.nvm)
        self.save()
        for s in self.sockets:
            s.close()
        raise Reset(0)

    def end(self):
        """The run is over (`end_ms`, or code.py returned): answers owed
        taken in, the state saved, the interpreter ended."""
        for s in self.sockets:
            s.settle()
        self.reset("END")

    def save(self):
        with open(self.state_path, "w") as f:
            json.dump(self.kept, f)


_WORLD = []


def world():
    """The one World of this interpreter."""
    if not _WORLD:
        _WORLD.append(World(uos.getenv("CITYNODE_CP_WORLD")))
    return _WORLD[0]


def power_up(run):
    """The board starts, as CircuitPython starts it: boot.py, then code.py,
    from the drive (the working folder), each run by `run(name)` (the
    launcher's), then the world ends (code.py returned)."""
    w = world()
    for name in ("boot.py", "code.py"):
        try:
            uos.stat(name)
        except OSError:
            continue
        w.in_boot = name == "boot.py"
        run(name)
    w.end()
