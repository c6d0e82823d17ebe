"""CircuitPython's `busio.I2C` over the world's parts on those pins: every
transfer needs the lock (`try_lock`), as on a board; nothing answers on
pins without parts (OSError ENODEV, as a missing part gives)."""

from host_tools.emulators.circuitpython.cp_world import world
from host_tools.emulators.i2c import I2CBus


class I2C:
    def __init__(self, scl, sda, frequency=100000, timeout=255):
        self.frequency = frequency
        self._bus = I2CBus()
        for address, device in world().i2c_devices(scl.name, sda.name).items():
            self._bus.attach(address, device)
        self._locked = False

    def try_lock(self):
        if self._locked:
            return False
        self._locked = True
        return True

    def unlock(self):
        self._locked = False

    def _need_lock(self):
        if not self._locked:
            raise RuntimeError("Function requires lock")

    def scan(self):
        self._need_lock()
        return self._bus.scan()

    def writeto(self, address, buffer, start=0, end=None):
        self._need_lock()
        self._bus.writeto(address, memoryview(buffer)[start:end])

    def readfrom_into(self, address, buffer, start=0, end=None):
        self._need_lock()
        self._bus.readfrom_into(address, memoryview(buffer)[start:end])

    def writeto_then_readfrom(self, address, out_buffer, in_buffer, out_start=0, out_end=None, in_start=0,
                              in_end=None):
        self.writeto(address, out_buffer, start=out_start, end=out_end)
        self.readfrom_into(address, in_buffer, start=in_start, end=in_end)

    def deinit(self):
        pass


class SPI:
    """No SPI part is emulated: the name is here for the libraries that import it."""

    def __init__(self, clock, MOSI=None, MISO=None, half_duplex=False):  # noqa: N803 - CircuitPython's names
        raise ValueError("no SPI part on %r in this world" % (clock,))
