"""CircuitPython's `supervisor.ticks_ms()` on the world's clock: it wraps at
2**29 and starts 65 s before its first wrap, as its documentation says."""

from host_tools.emulators.circuitpython.cp_world import TICKS_START_MS, world


def ticks_ms():
    w = world()
    return (TICKS_START_MS + w.now_ms - w.boot_ms) & ((1 << 29) - 1)
