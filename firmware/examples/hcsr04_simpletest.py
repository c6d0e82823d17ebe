"""Bench check of an HC-SR04 (or a JSN-SR04T in mode 0) on an ESP32: prints
a burst of echo times and the distance they make, once a second.

    mpremote cp -r firmware/citynode :           # once: the driver on the board
    mpremote run firmware/examples/hcsr04_simpletest.py

Point the sensor at a wall and move it: the distance should follow within a
centimetre or so. 0 is a ping with no echo (nothing in range, or a wiring
fault). Stop with Ctrl-C.
"""

import time

from machine import Pin

from citynode.drivers.hcsr04 import HCSR04

# TRIG on GPIO5, ECHO on GPIO18 (free GPIOs on the ESP32-DevKitC; any other
# free GPIO works). The HC-SR04 drives ECHO at 5 V: put a divider (e.g. 1k
# in series, 2k to GND) between ECHO and GPIO18.
trigger = Pin(5, Pin.OUT, value=0)
echo = Pin(18, Pin.IN)

# 5 pings 60 ms apart: a burst takes about 0.3 s. The JSN-SR04T holds ECHO
# for up to 60 ms without an echo: give it gap_ms=100.
sonar = HCSR04(trigger, echo, pings=5, gap_ms=60)

while True:
    t0 = time.ticks_ms()
    echoes = sonar.burst()
    heard = sorted(e for e in echoes if e)
    if heard:
        # Median echo, at 343 m/s (20 °C): mm = µs * 343 / 2000. The node's
        # core corrects for the air temperature; this is only the bench view.
        mm = heard[len(heard) // 2] * 343 // 2000
        print("echo us:", echoes, " distance: %d mm" % mm)
    else:
        print("echo us:", echoes, " no echo")
    spent = time.ticks_diff(time.ticks_ms(), t0)
    if spent < 1000:
        time.sleep_ms(1000 - spent)
