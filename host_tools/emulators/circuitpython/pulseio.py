"""CircuitPython's `pulseio.PulseIn`: pulse lengths in µs recorded in the
background while running (not paused); the world records a ranger's echo
here when its trigger falls. With `idle_state=False` the first pulse after
`resume()` is the high one (CircuitPython's documentation)."""

from host_tools.emulators.circuitpython.cp_world import world


class PulseIn:
    def __init__(self, pin, maxlen=2, idle_state=False):
        self.maxlen = maxlen
        self.idle_state = idle_state
        self.paused = False
        self._pulses = []
        world().pulse_ins[pin.name] = self

    def record(self, us):
        if not self.paused and len(self._pulses) < self.maxlen:
            self._pulses.append(min(us, 65535))

    def pause(self):
        self.paused = True

    def resume(self, trigger_duration=0):
        self.paused = False

    def clear(self):
        self._pulses = []

    def popleft(self):
        if not self._pulses:
            raise IndexError("pop from empty list")
        return self._pulses.pop(0)

    def __len__(self):
        return len(self._pulses)

    def __getitem__(self, i):
        return self._pulses[i]

    def deinit(self):
        self.paused = True
