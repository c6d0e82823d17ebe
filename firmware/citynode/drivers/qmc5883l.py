"""QMC5883L 3-axis magnetometer (QST) on I2C: raw counts in, the core's samples out.

    i2c = machine.I2C(0, scl=Pin(22), sda=Pin(21), freq=400000)
    mag = QMC5883L(i2c)            # ±2 G, 10 Hz, 512x oversampling, continuous
    mag.sample()                   # {"mag": [x, y, z]} or {"fault": "not_ready"}

The part runs in continuous mode; a read polls the status register for DRDY
a bounded number of times (never an unbounded wait: the node's watchdog
must always be fed), then reads X, Y, Z in one burst, which clears DRDY.
Everything on the hot path (`read_raw`, `sample`) is integer and reuses
preallocated buffers; `field_ut` converts to µT in floats, for people.

Faults, as the names `sample()` reports:
    no_answer  the bus failed (OSError from machine.I2C) or the part is absent
    not_ready  no new sample after the bounded wait (the driver then checks the
               part still holds its configuration and restores it if not)
    overflow   an axis saturated (status OVL): the reading is not a number
    stuck      `stuck_after` (20) bit-identical readings in a row: a working
               magnetometer always shows a few counts of noise

Runs unchanged under MicroPython and CPython.
"""

import struct

from citynode.drivers import DriverError, const, sleep_ms
from citynode.sense.filters import Stuck

_ADDRESS = const(0x0D)
_CHIP_ID = const(0xFF)

_REG_DATA = const(0x00)  # X, Y, Z: int16 little-endian
_REG_STATUS = const(0x06)
_REG_CTRL1 = const(0x09)  # OSR 7:6, RNG 5:4, ODR 3:2, MODE 1:0
_REG_CTRL2 = const(0x0A)
_REG_SET_RESET = const(0x0B)
_REG_CHIP_ID = const(0x0D)

_DRDY = const(0x01)
_OVL = const(0x02)
_MODE_CONTINUOUS = const(0x01)
_SOFT_RST = const(0x80)
_SET_RESET_PERIOD = const(0x01)  # the datasheet's recommended value

_READY_POLLS = const(5)  # status reads before giving up: at most 4 waits of _POLL_MS
_POLL_MS = const(2)

# Index in each tuple = the control 1 bit field value.
_RANGES_G = (2, 8)  # RNG
_LSB_PER_UT = (120, 30)  # 12000 and 3000 LSB/G, 1 G = 100 µT
_ODRS_HZ = (10, 50, 100, 200)  # ODR
_OSRS = (512, 256, 128, 64)  # OSR

def _field(name, value, allowed):
    if value not in allowed:
        raise ValueError("QMC5883L %s must be one of %s, not %r" % (name, allowed, value))
    return allowed.index(value)


class QMC5883L:
    def __init__(self, i2c, address=_ADDRESS, range_gauss=2, odr_hz=10, oversampling=512, stuck_after=20):
        rng = _field("range_gauss", range_gauss, _RANGES_G)
        self._ctrl1 = (
            (_field("oversampling", oversampling, _OSRS) << 6)
            | (rng << 4)
            | (_field("odr_hz", odr_hz, _ODRS_HZ) << 2)
            | _MODE_CONTINUOUS
        )
        self.lsb_per_ut = _LSB_PER_UT[rng]
        self.range_gauss = range_gauss
        self.address = address
        self.stuck = Stuck(stuck_after)  # 0 or None: no stuck-at detection
        self.stats = {"reads": 0, "faults": 0}
        self._i2c = i2c
        self._one = bytearray(1)
        self._buf = bytearray(6)
        self._check_id()
        self.reset()

    def _check_id(self):
        what = None
        try:
            self._i2c.readfrom_mem_into(self.address, _REG_CHIP_ID, self._one)
        except OSError as e:
            what = "I2C error %s" % _errno_of(e)
        if what is None and self._one[0] != _CHIP_ID:
            what = "chip id 0x%02X" % self._one[0]
        if what is not None:
            raise DriverError("no_answer", "QMC5883L not found at 0x%02X (%s)" % (self.address, what))

    def reset(self):
        """Soft-reset the part and configure it (continuous mode); what
        `__init__` does after finding the part."""
        self._write(_REG_CTRL2, _SOFT_RST)
        sleep_ms(1)  # power-on time after a reset: 350 µs
        self._configure()

    def _configure(self):
        self._write(_REG_SET_RESET, _SET_RESET_PERIOD)
        self._write(_REG_CTRL1, self._ctrl1)

    # --- bus access: every OSError becomes a DriverError ("no_answer") ----

    def _read_into(self, reg, buf):
        err = None
        try:
            self._i2c.readfrom_mem_into(self.address, reg, buf)
        except OSError as e:
            err = _errno_of(e)
        if err is not None:
            raise DriverError("no_answer", "QMC5883L I2C error %s" % err)

    def _write(self, reg, value):
        self._one[0] = value
        err = None
        try:
            self._i2c.writeto_mem(self.address, reg, self._one)
        except OSError as e:
            err = _errno_of(e)
        if err is not None:
            raise DriverError("no_answer", "QMC5883L I2C error %s" % err)

    # --- readings -----------------------------------------------------------

    def read_raw(self):
        """(x, y, z) in counts (ints). Raises DriverError, whose `fault`
        names what went wrong; counts every read and fault in `stats`."""
        self.stats["reads"] += 1
        try:
            return self._read()
        except DriverError:
            self.stats["faults"] += 1
            raise

    def _read(self):
        st = self._one
        for i in range(_READY_POLLS):
            self._read_into(_REG_STATUS, st)
            if st[0] & _DRDY:
                break
            if i < _READY_POLLS - 1:
                sleep_ms(_POLL_MS)
        else:
            self._restore_config()
            raise DriverError("not_ready", "data not ready")
        status = st[0]
        buf = self._buf
        self._read_into(_REG_DATA, buf)  # one burst; clears DRDY
        if status & _OVL:
            raise DriverError("overflow", "overflow")
        xyz = struct.unpack("<hhh", buf)
        if self.stuck.seen(xyz):
            raise DriverError("stuck", "stuck: %d identical readings" % self.stuck.run)
        return xyz

    def _restore_config(self):
        # A part that browned out comes back in standby and never sets DRDY:
        # put the configuration back so the next read can succeed.
        self._read_into(_REG_CTRL1, self._one)
        if self._one[0] != self._ctrl1:
            self._configure()

    def sample(self):
        """The core's sample: {"mag": [x, y, z]} in counts, or {"fault": name}."""
        try:
            x, y, z = self.read_raw()
        except DriverError as e:
            return {"fault": e.fault}
        return {"mag": [x, y, z]}

    def field_ut(self):
        """(x, y, z) in µT, floats: for people and the example, not the hot path."""
        x, y, z = self.read_raw()
        k = self.lsb_per_ut
        return (x / k, y / k, z / k)


def _errno_of(e):
    # OSError(19).errno is None on CPython but the code is in args[0] on both.
    return e.args[0] if e.args else "?"
