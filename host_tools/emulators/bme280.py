"""A BME280 behind an emulated I2C bus: its register map, calibration words
and raw ADC values, so the real driver code reads it as it would the part.

Registers (Bosch BME280 datasheet, section 5): calibration 0x88-0xA1 and
0xE1-0xE7, chip id 0xD0 (0x60), soft reset 0xE0 (0xB6), ctrl_hum 0xF2,
status 0xF3, ctrl_meas 0xF4, config 0xF5, pressure 0xF7-0xF9 and
temperature 0xFA-0xFC (20-bit, top-aligned), humidity 0xFD-0xFE (16-bit).
MicroPython-compatible.
"""

import struct

CHIP_ID = 0x60
ADDRESS = 0x77

# The compensation example of Bosch's BMP280 datasheet (section 3.12), whose
# temperature and pressure formulas the BME280 shares: with these words and
# raw values the datasheet gives T = 25.08 °C and p = 100653.27 Pa.
DATASHEET_TP_CALIBRATION = (27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000)
DATASHEET_ADC_T = 519888
DATASHEET_ADC_P = 415148

# Humidity words of a typical part (H1..H6); the datasheet gives no example.
TYPICAL_H_CALIBRATION = (75, 362, 0, 313, 50, 30)


class BME280Device:
    """The part's registers. Set `adc_t`, `adc_p`, `adc_h` (raw readings)
    and the calibration; `measuring_reads` makes the status report a
    conversion in progress for that many reads after a forced measurement;
    `chip_id` may be changed to emulate a wrong part."""

    def __init__(self, tp=DATASHEET_TP_CALIBRATION, h=TYPICAL_H_CALIBRATION):
        self.regs = bytearray(256)
        self.chip_id = CHIP_ID
        self.adc_t = DATASHEET_ADC_T
        self.adc_p = DATASHEET_ADC_P
        self.adc_h = 0x8000
        self.measuring_reads = 0
        self.resets = 0
        self.forced = 0
        self._busy = 0
        self.set_calibration(tp, h)

    def set_calibration(self, tp, h):
        self.regs[0x88:0x88 + 24] = struct.pack("<HhhHhhhhhhhh", *tp)
        h1, h2, h3, h4, h5, h6 = h
        self.regs[0xA1] = h1
        e4 = (h4 >> 4) & 0xFF
        e5 = (h4 & 0x0F) | ((h5 & 0x0F) << 4)
        e6 = (h5 >> 4) & 0xFF
        self.regs[0xE1:0xE8] = struct.pack("<hBBBBb", h2, h3, e4, e5, e6, h6)

    def read(self, reg, n):
        out = bytearray(n)
        for i in range(n):
            out[i] = self._byte(reg + i)
        return bytes(out)

    def write(self, reg, data):
        for i in range(len(data)):
            self._store(reg + i, data[i])

    def _byte(self, reg):
        if reg == 0xD0:
            return self.chip_id
        if reg == 0xF3:
            if self._busy:
                self._busy -= 1
                return 0x08
            return 0
        if 0xF7 <= reg <= 0xFE:
            return self._data()[reg - 0xF7]
        return self.regs[reg & 0xFF]

    def _store(self, reg, value):
        if reg == 0xE0:
            if value == 0xB6:
                self.resets += 1
                for r in (0xF2, 0xF4, 0xF5):
                    self.regs[r] = 0
            return
        self.regs[reg & 0xFF] = value
        if reg == 0xF4 and value & 0x03 == 0x01:
            self.forced += 1
            self._busy = self.measuring_reads

    def _data(self):
        p, t, h = self.adc_p, self.adc_t, self.adc_h
        return bytes(((p >> 12) & 0xFF, (p >> 4) & 0xFF, (p & 0x0F) << 4,
                      (t >> 12) & 0xFF, (t >> 4) & 0xFF, (t & 0x0F) << 4,
                      (h >> 8) & 0xFF, h & 0xFF))
