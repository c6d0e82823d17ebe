"""citynode's logic core: pure modules shared by the ESP32 and the desk.

Nothing in this package touches hardware, the network or files (except
`recording`, which the simulated hardware layer uses to read recordings).
It runs unchanged under MicroPython and CPython.
"""

VERSION = "0.1.0"
