"""BME280 temperature, pressure and humidity through Adafruit's driver
(`adafruit_bme280`), on CircuitPython natively and on MicroPython and
CPython through a small `busio`-compatible shim over a `machine.I2C`.

Adafruit's driver imports `busio`, `digitalio` (for type names only) and
`micropython.const`; on MicroPython and on the desk, `install_shims()`
provides the missing ones before the driver is imported. Its readings are
the core's env sample: `{"temp_c", "pressure_pa", "humidity_pct"}` in SI
units, or `{"fault": name}`: `no_answer` (the bus or the part did not
answer), `out_of_range` (a value no working part reports),
`bad_calibration` (trimming words that make the formulas divide by zero),
`stuck` (the same reading too many times running).
"""

import sys

from citynode.drivers import DriverError
from citynode.sense.filters import Stuck

ADDRESS = 0x77
STUCK_AFTER = 60  # identical readings in a row: a working part's noise moves its last digits
MODE_NORMAL = 0x03

# What a working BME280 can report (datasheet operating range).
TEMP_RANGE_C = (-40.0, 85.0)
PRESSURE_RANGE_PA = (30000.0, 110000.0)


class BusioI2C:
    """The `busio.I2C` calls Adafruit's `I2CDevice` makes, over a
    `machine.I2C`-like bus (`writeto`, `readfrom_into`, `scan`)."""

    def __init__(self, i2c):
        self._i2c = i2c

    def try_lock(self):
        return True

    def unlock(self):
        pass

    def scan(self):
        return self._i2c.scan()

    def writeto(self, address, buffer, *, start=0, end=None):
        self._i2c.writeto(address, memoryview(buffer)[start:end])

    def readfrom_into(self, address, buffer, *, start=0, end=None):
        self._i2c.readfrom_into(address, memoryview(buffer)[start:end])

    def writeto_then_readfrom(self, address, out_buffer, in_buffer, *, out_start=0, out_end=None,
                              in_start=0, in_end=None):
        self.writeto(address, out_buffer, start=out_start, end=out_end)
        self.readfrom_into(address, in_buffer, start=in_start, end=in_end)


class _Busio:
    I2C = BusioI2C
    SPI = object


class _Digitalio:
    DigitalInOut = object


class _Micropython:
    @staticmethod
    def const(x):
        return x


class _CircuitpythonTyping:
    ReadableBuffer = WriteableBuffer = object


def install_shims():
    """Make `busio`, `digitalio` and `micropython.const` importable where
    the runtime lacks them (CircuitPython has the first two, MicroPython the
    last), and on CPython the buffer type names Adafruit's annotations use."""
    for name, stand_in in (("busio", _Busio), ("digitalio", _Digitalio), ("micropython", _Micropython),
                           ("circuitpython_typing", _CircuitpythonTyping)):
        if name in sys.modules:
            continue
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - Blinka's busio raises more than ImportError off a board
            sys.modules[name] = stand_in


def env_sample(temp_c, pressure_pa, humidity_pct):
    """The core's env sample for a reading, to the part's useful resolution."""
    return {"temp_c": round(temp_c, 2), "pressure_pa": round(pressure_pa, 1),
            "humidity_pct": round(humidity_pct, 1)}


class BME280:
    """A BME280 on `i2c`: a CircuitPython `busio.I2C`, or anything with the
    `machine.I2C` calls (wrapped in `BusioI2C`). Raises DriverError
    (`no_answer`, an OSError) if no BME280 answers at `address`.
    `stuck_after` identical readings in a row are a fault (0: never)."""

    def __init__(self, i2c, address=ADDRESS, stuck_after=STUCK_AFTER):
        install_shims()
        from adafruit_bme280.basic import Adafruit_BME280_I2C

        bus = i2c if hasattr(i2c, "try_lock") else BusioI2C(i2c)
        try:
            self._part = Adafruit_BME280_I2C(bus, address)
            # Normal mode: the part converts on its own every 125 ms. In
            # forced mode Adafruit's driver polls the status with no bound,
            # and a part stuck "measuring" would starve the watchdog.
            self._part.mode = MODE_NORMAL
        except (RuntimeError, ValueError) as e:
            raise DriverError("no_answer", "no BME280 at 0x%02x: %s" % (address, e)) from None
        self.stuck = Stuck(stuck_after)
        self.stats = {"reads": 0, "faults": 0}

    def read(self):
        """(°C, Pa, %RH) as floats; OSError if the bus fails."""
        p = self._part
        return p.temperature, p.pressure * 100.0, p.humidity

    def sample(self):
        """The core's env sample, or a fault that says why not."""
        self.stats["reads"] += 1
        try:
            t, pa, rh = self.read()
        except OSError:
            return self._fault("no_answer")
        except ArithmeticError:  # calibration words that make no sense
            return self._fault("bad_calibration")
        t_ok = TEMP_RANGE_C[0] <= t <= TEMP_RANGE_C[1]
        if not t_ok or not PRESSURE_RANGE_PA[0] <= pa <= PRESSURE_RANGE_PA[1]:
            return self._fault("out_of_range")
        if self.stuck.seen((t, pa, rh)):
            return self._fault("stuck")
        return env_sample(t, pa, rh)

    def _fault(self, name):
        self.stats["faults"] += 1
        return {"fault": name}
