"""Register- and byte-level emulators of the sensor parts, for tests and the
virtual board. MicroPython-compatible."""
