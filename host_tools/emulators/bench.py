"""A bench of emulated parts wired to the real drivers, for replaying a
recording that carries bus-level values (recording version 2, the header's
`bus`): each raw sample is loaded into its part's registers and read back
through the driver the node runs, which returns the core's sample.

MicroPython-compatible: the simulated hardware layer uses it on both
runtimes.
"""

from citynode.drivers.bme280 import BME280
from citynode.drivers.qmc5883l import QMC5883L
from host_tools.emulators import bme280, qmc5883l
from host_tools.emulators.i2c import I2CBus


class Bench:
    """`parts` is the recording header's `bus`: sensor id → part entry."""

    def __init__(self, parts):
        self._read = {}
        for sid in parts:
            entry = parts[sid]
            if entry["part"] == "bme280":
                self._read[sid] = self._bme280(entry)
            elif entry["part"] == "qmc5883l":
                self._read[sid] = self._qmc5883l(entry)

    def __contains__(self, sid):
        return sid in self._read

    def sample(self, sid, rec):
        """The driver's sample for recorded bus values `rec` of sensor `sid`
        (a fault line passes through as it is)."""
        if "fault" in rec:
            return rec
        return self._read[sid](rec)

    @staticmethod
    def _bme280(entry):
        c = entry["calibration"]
        dev = bme280.BME280Device(tuple(c[:12]), tuple(c[12:]))
        bus = I2CBus()
        bus.attach(bme280.ADDRESS, dev)
        driver = BME280(bus)

        def read(rec):
            dev.adc_t, dev.adc_p, dev.adc_h = rec["bme280"]
            return driver.sample()
        return read

    @staticmethod
    def _qmc5883l(entry):
        dev = qmc5883l.QMC5883LDevice()
        bus = I2CBus()
        bus.attach(qmc5883l.ADDRESS, dev)
        driver = QMC5883L(bus, range_gauss=entry.get("range_gauss", 2))

        def read(rec):
            dev.regs[0:7] = bytes(rec["qmc5883l"])
            return driver.sample()
        return read
