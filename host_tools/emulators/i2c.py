"""An emulated I2C bus with the subset of MicroPython's `machine.I2C` API the
drivers use, so a driver runs unchanged against emulated parts.

    bus = I2CBus()
    bus.attach(0x0D, device)
    bus.readfrom_mem(0x0D, 0x06, 1)

A device is any object with `read(reg, n) -> bytes` and `write(reg, data)`.
The bus keeps a register pointer per address: a plain `writeto(addr, buf)`
sets it to buf[0] (and writes the rest of buf from there), and a later
`readfrom_into(addr, buf)` reads from it, as on a real part.

Errors are the ones `machine.I2C` raises: OSError(19) (ENODEV) for an address
nobody answers. Fault injection: `bus.stuck = True` makes every call raise
OSError(110) (ETIMEDOUT, a bus held low) until cleared; `bus.fail_next(n)`
makes the next n calls raise OSError(5) (EIO).

MicroPython-compatible, like the drivers it serves.
"""

ENODEV = 19
EIO = 5
ETIMEDOUT = 110


class I2CBus:
    def __init__(self):
        self.devices = {}
        self._pointer = {}
        self.stuck = False
        self._fail = 0
        self.calls = 0  # every transaction attempted, failed ones included

    def attach(self, addr, device):
        """Put `device` on the bus at 7-bit address `addr`."""
        self.devices[addr] = device
        self._pointer[addr] = 0

    def detach(self, addr):
        """Take the device at `addr` off the bus (it stops answering)."""
        self.devices.pop(addr, None)
        self._pointer.pop(addr, None)

    def fail_next(self, n=1):
        """Make the next `n` calls raise OSError(EIO)."""
        self._fail = n

    def _begin(self, addr=None):
        self.calls += 1
        if self.stuck:
            raise OSError(ETIMEDOUT)
        if self._fail > 0:
            self._fail -= 1
            raise OSError(EIO)
        if addr is None:
            return None
        dev = self.devices.get(addr)
        if dev is None:
            raise OSError(ENODEV)
        return dev

    def scan(self):
        self._begin()
        return sorted(self.devices)

    def readfrom_mem(self, addr, reg, n, addrsize=8):
        dev = self._begin(addr)
        return bytes(dev.read(reg, n))

    def readfrom_mem_into(self, addr, reg, buf, addrsize=8):
        dev = self._begin(addr)
        data = dev.read(reg, len(buf))
        for i in range(len(buf)):
            buf[i] = data[i]

    def writeto_mem(self, addr, reg, buf, addrsize=8):
        dev = self._begin(addr)
        dev.write(reg, bytes(buf))

    def writeto(self, addr, buf, stop=True):
        """Returns the number of bytes the device acknowledged."""
        dev = self._begin(addr)
        n = len(buf)
        if n:
            reg = buf[0]
            if n > 1:
                dev.write(reg, bytes(buf[1:]))
                reg = (reg + n - 1) & 0xFF
            self._pointer[addr] = reg
        return n

    def readfrom_into(self, addr, buf, stop=True):
        dev = self._begin(addr)
        reg = self._pointer[addr]
        n = len(buf)
        data = dev.read(reg, n)
        for i in range(n):
            buf[i] = data[i]
        self._pointer[addr] = (reg + n) & 0xFF
