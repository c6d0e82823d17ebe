"""Turn a recording of SI values into one of bus-level values (version 2):
what a bench board's parts would have put on the wire for the same
readings, so a replay can run the real drivers end to end.

- env (BME280): raw [adc_T, adc_P, adc_H] for a part with the calibration
  words of Bosch's datasheet example, chosen so that the driver's reading,
  as the core quantizes it (0.01 °C, 0.1 %RH, 1 Pa), equals the recorded one;
- bay_magnetic (QMC5883L): the seven bytes of registers 0x00-0x06 (the
  counts, little-endian, and a status with data ready).

Other lines are copied as they are.
"""

import gzip
import json
import struct

from citynode.board.recording import Reader
from citynode.drivers.bme280 import BME280, env_sample
from host_tools.emulators import bme280 as bme280_emu
from host_tools.emulators.i2c import I2CBus

CALIBRATION = list(bme280_emu.DATASHEET_TP_CALIBRATION) + list(bme280_emu.TYPICAL_H_CALIBRATION)
_ADC_T_MAX = (1 << 20) - 1
_ADC_H_MAX = (1 << 16) - 1


def _quantized(sample):
    """The integers the core makes of an env sample (core.Core._feed_env)."""
    return (int(round(sample["temp_c"] * 100)), int(round(sample["humidity_pct"] * 10)),
            int(round(sample["pressure_pa"])))


def _search(value_at, target, lo, hi, guess, rising=True):
    """The adc in [lo, hi] where the monotonic `value_at(adc)` first reaches
    `target` (falls to it when not `rising`); the bracket grows from `guess`
    (the last answer: readings change slowly), so most searches are short."""
    def below(a):
        v = value_at(a)
        return v < target if rising else v > target
    step = 8
    a, b = max(lo, guess - step), min(hi, guess + step)
    while a > lo and not below(a):
        step *= 4
        a = max(lo, guess - step)
    while b < hi and below(b):
        step *= 4
        b = min(hi, guess + step)
    while a < b:
        mid = (a + b) // 2
        if below(mid):
            a = mid + 1
        else:
            b = mid
    return a


def _middle(value_at, target, hi, guess, rising=True):
    """The middle of the run of adc values that read as `target`: far from
    the rounding edges, so a runtime whose floats differ in the last bits
    (MicroPython parses float literals slightly differently) reads the same."""
    first = _search(value_at, target, 0, hi, guess, rising)
    after = _search(value_at, target + 1 if rising else target - 1, 0, hi, first, rising)
    return (first + after - 1) // 2


class BME280Inverse:
    """Finds raw ADC values that a BME280 with `CALIBRATION` turns into a
    given reading, by asking the real driver (the inverse of Adafruit's
    compensation, without writing that compensation a second time)."""

    def __init__(self):
        self.dev = bme280_emu.BME280Device(tuple(CALIBRATION[:12]), tuple(CALIBRATION[12:]))
        bus = I2CBus()
        bus.attach(bme280_emu.ADDRESS, self.dev)
        self.driver = BME280(bus)
        self._last = (bme280_emu.DATASHEET_ADC_T, bme280_emu.DATASHEET_ADC_P, 1 << 15)

    def _read(self, adc_t, adc_p, adc_h):
        d = self.dev
        d.adc_t, d.adc_p, d.adc_h = adc_t, adc_p, adc_h
        return env_sample(*self.driver.read())

    def _q(self, index, adc_t, adc_p, adc_h):
        return _quantized(self._read(adc_t, adc_p, adc_h))[index]

    def adc(self, sample):
        """[adc_T, adc_P, adc_H] whose reading quantizes like `sample`."""
        want = _quantized(sample)
        g_t, g_p, g_h = self._last
        a_t = _middle(lambda a: self._q(0, a, g_p, g_h), want[0], _ADC_T_MAX, g_t)
        # pressure falls as adc_P rises
        a_p = _middle(lambda a: self._q(2, a_t, a, g_h), want[2], _ADC_T_MAX, g_p, rising=False)
        a_h = _middle(lambda a: self._q(1, a_t, a_p, a), want[1], _ADC_H_MAX, g_h)
        self._last = (a_t, a_p, a_h)
        got = _quantized(self._read(a_t, a_p, a_h))
        if got != want:
            raise ValueError("no raw BME280 value reads as %r (closest %r)" % (want, got))
        return [a_t, a_p, a_h]


def qmc5883l_registers(counts):
    """Registers 0x00-0x06 of a QMC5883L holding `counts`, data ready."""
    return list(struct.pack("<hhh", *counts)) + [0x01]


def _open(path, mode):
    return gzip.open(path, mode + "b") if str(path).endswith(".gz") else open(path, mode + "b")


def to_raw(src, dst):
    """Write the bus-level twin of recording `src` to `dst`; returns the
    number of lines converted."""
    inverse = BME280Inverse()
    converted = 0
    with _open(src, "r") as f, Reader(str(src), stream=f) as reader, _open(dst, "w") as out:
        header = dict(reader.header, version=2)
        bus = {}
        for s in header["sensors"]:
            if s["type"] == "env":
                bus[s["id"]] = {"part": "bme280", "calibration": CALIBRATION}
            elif s["type"] == "bay_magnetic":
                bus[s["id"]] = {"part": "qmc5883l", "range_gauss": 8 if s.get("lsb_per_ut") == 30 else 2}
        header["bus"] = bus
        out.write(json.dumps(header, separators=(",", ":")).encode() + b"\n")
        for rec in reader:
            part = bus.get(rec.get("s"), {}).get("part")
            if part == "bme280" and "fault" not in rec:
                rec = {"t": rec["t"], "s": rec["s"], "bme280": inverse.adc(rec)}
                converted += 1
            elif part == "qmc5883l" and "fault" not in rec:
                rec = {"t": rec["t"], "s": rec["s"], "qmc5883l": qmc5883l_registers(rec["mag"])}
                converted += 1
            out.write(json.dumps(rec, separators=(",", ":")).encode() + b"\n")
    return converted
