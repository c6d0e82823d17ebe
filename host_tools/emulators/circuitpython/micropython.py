"""CircuitPython's `micropython`: `const`, which Adafruit's libraries
import. Under launch.py MicroPython's built-in module is found first and
this file is not read; under CPython (launch_cpython.py) it is the module."""


def const(expr):
    return expr
