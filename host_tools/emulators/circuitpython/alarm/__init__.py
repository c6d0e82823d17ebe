"""CircuitPython's `alarm`: `sleep_memory` (kept through deep sleep only),
`exit_and_deep_sleep_until_alarms` (the board sleeps until the first
TimeAlarm, then restarts with reset reason DEEP_SLEEP_ALARM: the world
saves its state and the interpreter ends), `wake_alarm`."""

from host_tools.emulators.circuitpython import cp_world
from host_tools.emulators.circuitpython.cp_world import world

from . import time  # noqa: F401 - alarm.time.TimeAlarm


class _SleepMemory:
    def __len__(self):
        return len(world().sleep_memory)

    def __getitem__(self, i):
        return world().sleep_memory[i]

    def __setitem__(self, i, v):
        world().sleep_memory[i] = v


sleep_memory = _SleepMemory()
wake_alarm = None


def exit_and_deep_sleep_until_alarms(*alarms, preserve_dios=()):
    import time as clock

    first = min(a.monotonic_time for a in alarms)
    world().reset(cp_world.DEEP_SLEEP_ALARM, max(0, int((first - clock.monotonic()) * 1000)))
