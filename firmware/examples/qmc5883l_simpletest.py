"""Bench check of a QMC5883L on an ESP32: prints the field once a second.

    mpremote cp -r firmware/citynode :           # once: the driver on the board
    mpremote run firmware/examples/qmc5883l_simpletest.py

Bring a magnet or a steel tool near the part: the counts should move by
hundreds or thousands, and jitter by a few counts even when nothing moves.
Stop with Ctrl-C.
"""

import time

from machine import I2C, Pin

from citynode.drivers import DriverError
from citynode.drivers.qmc5883l import QMC5883L

# I2C bus 0 on GPIO22 (SCL) and GPIO21 (SDA): the ESP32-DevKitC defaults.
# Wired elsewhere? Change the pin numbers here (any free GPIO works on the
# ESP32); drop freq to 100000 for long wires.
i2c = I2C(0, scl=Pin(22), sda=Pin(21), freq=400000)
print("I2C devices:", [hex(a) for a in i2c.scan()])

mag = QMC5883L(i2c)  # ±2 G: 120 counts per µT
print("QMC5883L found, %d counts per uT" % mag.lsb_per_ut)

while True:
    try:
        x, y, z = mag.read_raw()
    except DriverError as e:
        print("fault:", e.fault, "-", e)
    else:
        k = mag.lsb_per_ut
        print("field uT: x=%8.2f y=%8.2f z=%8.2f   counts: %6d %6d %6d" % (x / k, y / k, z / k, x, y, z))
    time.sleep(1)
