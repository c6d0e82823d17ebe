"""CircuitPython's `digitalio.DigitalInOut`; a trigger pin's falling edge
makes the ranger on it ping (cp_world.World.trigger_fell); an input pin the
world holds (its `held` list: a button pressed) reads low."""

from host_tools.emulators.circuitpython.cp_world import world


class Direction:
    INPUT = "INPUT"
    OUTPUT = "OUTPUT"


class Pull:
    UP = "UP"
    DOWN = "DOWN"


class DriveMode:
    PUSH_PULL = "PUSH_PULL"
    OPEN_DRAIN = "OPEN_DRAIN"


class DigitalInOut:
    def __init__(self, pin):
        self._pin = pin
        self.direction = Direction.INPUT
        self.pull = None
        self._value = False

    def switch_to_output(self, value=False, drive_mode=DriveMode.PUSH_PULL):
        self.direction = Direction.OUTPUT
        self._value = bool(value)

    def switch_to_input(self, pull=None):
        self.direction = Direction.INPUT
        self.pull = pull

    @property
    def value(self):
        """An output: what was set. An input: low while the world holds its
        pin (a button to ground: `"held": ["BUTTON"]`), else its pull's level."""
        if self.direction == Direction.OUTPUT:
            return self._value
        return self._pin.name not in world().cfg.get("held", ()) and self.pull == Pull.UP

    @value.setter
    def value(self, v):
        if self.direction != Direction.OUTPUT:
            raise AttributeError("Cannot set value when direction is input.")
        fell = self._value and not v
        self._value = bool(v)
        if fell:
            world().trigger_fell(self._pin.name)

    def deinit(self):
        pass
