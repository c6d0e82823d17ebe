"""CircuitPython's `rtc.RTC`: `datetime` (a struct_time) reads and sets the
world's RTC; `time.time()` follows it."""

import time

from host_tools.emulators.circuitpython.cp_world import epoch_of, world


class RTC:
    calibration = 0

    @property
    def datetime(self):
        return time.localtime()

    @datetime.setter
    def datetime(self, t):
        world().set_rtc_ms(epoch_of(t) * 1000)
