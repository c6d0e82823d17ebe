"""Bench check of a DFRobot A02YYUW (or a JSN-SR04T in UART automatic
mode) on an ESP32: prints the distance once a second.

    mpremote cp -r firmware/citynode :           # once: the driver on the board
    mpremote run firmware/examples/a02yyuw_simpletest.py

Point the sensor at a wall and move it: the distance should follow within a
centimetre or so. "-" is a reading where the part saw nothing in range. Stop
with Ctrl-C.
"""

import time

from machine import UART

from citynode.drivers import DriverError
from citynode.drivers.a02yyuw import A02YYUW

# UART2 on GPIO16 (RX, to the sensor's TX) and GPIO17 (TX, to the sensor's
# RX): the ESP32-DevKitC defaults. The part talks at 9600 baud, 8N1. Its RX
# held high (ESP32 TX idle) or left floating selects the processed, steadier
# output; pulled low, the real-time one. On WROVER modules GPIO16/17 belong
# to the PSRAM: pick two other free GPIOs there.
uart = UART(2, 9600, rx=16, tx=17)

sonar = A02YYUW(uart)

while True:
    t0 = time.ticks_ms()
    try:
        mm = sonar.read_mm()
    except DriverError as e:
        print("fault:", e.fault, " stats:", sonar.stats)
    else:
        print("distance: %s mm" % ("-" if mm is None else mm), " stats:", sonar.stats)
    spent = time.ticks_diff(time.ticks_ms(), t0)
    if spent < 1000:
        time.sleep_ms(1000 - spent)
