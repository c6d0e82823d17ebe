"""Register-level emulator of the QST QMC5883L 3-axis magnetometer (I2C 0x0D).

Register map (QMC5883L datasheet, section 9):

    0x00-0x05  X, Y, Z output, int16 little-endian (read only)
    0x06       status: DRDY bit 0, OVL bit 1, DOR bit 2 (read only)
    0x07-0x08  temperature, int16 little-endian, relative (read only)
    0x09       control 1: OSR bits 7:6, RNG bits 5:4, ODR bits 3:2, MODE bits 1:0
    0x0A       control 2: SOFT_RST bit 7, ROL_PNT bit 6, INT_ENB bit 0
    0x0B       SET/RESET period (the datasheet recommends 0x01)
    0x0D       chip id, 0xFF (read only)

The emulator is driven by the test rather than by a clock: the test holds a
field (`set_field_ut`, `set_field_counts`) and every "conversion" (on setting
a field while in continuous mode, on `convert()`, and on entering continuous
mode) loads the data registers from it and sets DRDY. DRDY and DOR clear when
a data register is read; DOR is set when a conversion overwrites a sample
nobody read; OVL is set while an axis is out of the int16 range (the output
then saturates at -32768 / 32767). In standby the data and status read 0.

Fault knobs: `stuck_value = (x, y, z)` (the data registers always hold these
counts, while DRDY still comes and goes), `no_drdy = True` (DRDY never set),
and an absent part is simply one not attached to the bus.

MicroPython-compatible.
"""

import struct

ADDRESS = 0x0D
CHIP_ID = 0xFF

REG_DATA = 0x00
REG_STATUS = 0x06
REG_TEMP = 0x07
REG_CTRL1 = 0x09
REG_CTRL2 = 0x0A
REG_SET_RESET = 0x0B
REG_CHIP_ID = 0x0D

DRDY = 0x01
OVL = 0x02
DOR = 0x04

MODE_MASK = 0x03
MODE_STANDBY = 0x00
MODE_CONTINUOUS = 0x01
SOFT_RST = 0x80
ROL_PNT = 0x40

LSB_PER_UT = {2: 120, 8: 30}  # 12000 and 3000 LSB/G; 1 G = 100 µT
_RNG_GAUSS = (2, 8)  # RNG bits 00 and 01; 10 and 11 are reserved (read as ±8 G here)

_WRITABLE = (REG_CTRL1, REG_CTRL2, REG_SET_RESET)
_NREGS = 0x0E


def _clamp16(v):
    if v > 32767:
        return 32767, True
    if v < -32768:
        return -32768, True
    return v, False


class QMC5883LDevice:
    """The part's registers. Attach it with `bus.attach(ADDRESS, dev)`."""

    def __init__(self, temp_counts=0):
        self.stuck_value = None
        self.no_drdy = False
        self.noise_counts = 0  # >0: add deterministic ±noise to every conversion
        self.temp_counts = temp_counts
        self.writes = []  # every (reg, value) written, in order, for tests
        self.conversions = 0
        self._field = (0, 0, 0)
        self._field_in_ut = False
        self._pending = 0  # status reads still to go before a delayed conversion
        self._seed = 12345
        self.power_on_reset()

    # --- what the test controls -------------------------------------------

    def power_on_reset(self):
        """Every register to its default (standby), as at power-up or after
        SOFT_RST. The held field survives: it is the world, not the part."""
        self.regs = bytearray(_NREGS)
        self.regs[REG_CHIP_ID] = CHIP_ID
        self._pending = 0

    def set_field_ut(self, x, y, z, after_polls=0):
        """Hold a field in µT (ints or floats), converted to counts with the
        range selected when each conversion happens. In continuous mode a
        conversion follows at once, or after `after_polls` reads of the
        status register (the part converting while the driver waits)."""
        self._field = (x, y, z)
        self._field_in_ut = True
        self._schedule(after_polls)

    def set_field_counts(self, x, y, z, after_polls=0):
        """Hold a field as raw counts (whatever the range); as `set_field_ut`."""
        self._field = (int(x), int(y), int(z))
        self._field_in_ut = False
        self._schedule(after_polls)

    def convert(self):
        """One new sample of the held field, as after one output-data period.
        Does nothing in standby."""
        if not self.continuous:
            return
        self.conversions += 1
        stuck = self.stuck_value is not None
        counts = self.stuck_value if stuck else self.field_counts()
        ovl = False
        out = []
        for v in counts:
            if not stuck:
                v += self._noise()
            v, over = _clamp16(v)
            ovl = ovl or over
            out.append(v)
        struct.pack_into("<hhh", self.regs, REG_DATA, out[0], out[1], out[2])
        status = self.regs[REG_STATUS]
        if status & DRDY:
            status |= DOR  # the previous sample was never read
        if not self.no_drdy:
            status |= DRDY
        if ovl:
            status |= OVL
        else:
            status &= ~OVL & 0xFF
        self.regs[REG_STATUS] = status

    # --- what the test reads back -------------------------------------------

    @property
    def continuous(self):
        return self.regs[REG_CTRL1] & MODE_MASK == MODE_CONTINUOUS

    @property
    def range_gauss(self):
        return _RNG_GAUSS[min((self.regs[REG_CTRL1] >> 4) & 0x03, 1)]

    @property
    def lsb_per_ut(self):
        return LSB_PER_UT[self.range_gauss]

    def field_counts(self):
        """The held field in counts at the current range, before saturation."""
        if not self._field_in_ut:
            return self._field
        k = self.lsb_per_ut
        return tuple(int(round(v * k)) for v in self._field)

    def data(self):
        """The data registers as (x, y, z) counts."""
        return struct.unpack_from("<hhh", self.regs, REG_DATA)

    # --- the bus side -------------------------------------------------------

    def read(self, reg, n):
        """A burst read of `n` registers from `reg`, auto-incrementing (and
        rolling over from 0x06 to 0x00 when ROL_PNT is set)."""
        out = bytearray(n)
        data_read = False
        rollover = self.regs[REG_CTRL2] & ROL_PNT
        for i in range(n):
            if reg == REG_STATUS and self._pending:
                self._pending -= 1
                if not self._pending:
                    self.convert()
            out[i] = self._reg(reg)
            if reg < REG_STATUS:
                data_read = True
            reg += 1
            if rollover and reg > REG_STATUS:
                reg = REG_DATA
            elif reg >= _NREGS:
                reg = 0
        if data_read:
            # DRDY and DOR clear once the data registers are read.
            self.regs[REG_STATUS] &= ~(DRDY | DOR) & 0xFF
        return bytes(out)

    def write(self, reg, data):
        for b in data:
            self.writes.append((reg, b))
            self._write_reg(reg, b)
            reg = (reg + 1) % _NREGS

    # --- inside the part ----------------------------------------------------

    def _reg(self, reg):
        if reg <= REG_STATUS and not self.continuous:
            return 0
        if reg == REG_TEMP or reg == REG_TEMP + 1:
            t = self.temp_counts & 0xFFFF
            return t & 0xFF if reg == REG_TEMP else t >> 8
        if reg < _NREGS:
            return self.regs[reg]
        return 0

    def _write_reg(self, reg, b):
        if reg not in _WRITABLE:
            return  # read-only or reserved: the part ignores it
        if reg == REG_CTRL2 and b & SOFT_RST:
            self.power_on_reset()
            return
        was = self.continuous
        self.regs[reg] = b
        if reg == REG_CTRL1 and self.continuous and not was:
            self.convert()  # the part starts converting at once

    def _schedule(self, after_polls):
        if after_polls > 0:
            self._pending = after_polls
        else:
            self._pending = 0
            self.convert()

    def _noise(self):
        n = self.noise_counts
        if n <= 0:
            return 0
        self._seed = (self._seed * 1103515245 + 12345) & 0x7FFFFFFF
        return (self._seed >> 16) % (2 * n + 1) - n
