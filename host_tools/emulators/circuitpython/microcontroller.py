"""CircuitPython's `microcontroller`: `Pin`, `cpu.reset_reason`,
`ResetReason`, `watchdog` (a WatchDogTimer), `nvm` and `reset()`, on the
world (cp_world)."""

from host_tools.emulators.circuitpython import cp_world
from host_tools.emulators.circuitpython.cp_world import world


class Pin:
    def __init__(self, name, gpio):
        self.name = name
        self.gpio = gpio

    def __repr__(self):
        return "board.%s" % self.name


class ResetReason:
    POWER_ON = cp_world.POWER_ON
    BROWNOUT = cp_world.BROWNOUT
    SOFTWARE = cp_world.SOFTWARE
    DEEP_SLEEP_ALARM = cp_world.DEEP_SLEEP_ALARM
    RESET_PIN = cp_world.RESET_PIN
    WATCHDOG = cp_world.WATCHDOG
    UNKNOWN = cp_world.UNKNOWN


class _Processor:
    @property
    def reset_reason(self):
        return world().reason


class _WatchDogTimer:
    """Starts when `mode` is set; a feed later than `timeout` s resets the
    board (the world checks at every wait)."""

    def __init__(self):
        self.timeout = 0
        self._mode = None

    @property
    def mode(self):
        return self._mode

    @mode.setter
    def mode(self, mode):
        if self.timeout <= 0:
            raise ValueError("watchdog timeout must be set first")
        self._mode = mode
        self.feed()

    def feed(self):
        w = world()
        if self._mode is not None:
            w.watchdog = (int(self.timeout * 1000), w.now_ms)

    def deinit(self):
        self._mode = None
        world().watchdog = None


class _NVM:
    def __len__(self):
        return len(world().nvm)

    def __getitem__(self, i):
        return world().nvm[i]

    def __setitem__(self, i, v):
        world().nvm[i] = v


cpu = _Processor()
watchdog = _WatchDogTimer()
nvm = _NVM()


def reset():
    world().reset(cp_world.SOFTWARE)
