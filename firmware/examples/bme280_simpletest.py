"""Bench check of a BME280 on an ESP32, through Adafruit's driver: prints
temperature, pressure, humidity and the speed of sound the node would use,
once a second.

    LIB=$(.venv/bin/python -c "from host_tools import mpy; print(mpy.library_path())")
    mpremote mkdir :lib                                                    # once
    mpremote cp -r "$LIB/adafruit_bme280" "$LIB/adafruit_bus_device" :lib/  # once
    mpremote cp -r firmware/citynode :                                     # once
    mpremote run firmware/examples/bme280_simpletest.py

(Adafruit's packages adafruit_bme280 and adafruit_bus_device go to /lib on
the board; `make setup` installs the pinned versions into .venv.)
Breathe on the part: humidity and temperature should rise within seconds.
Stop with Ctrl-C.
"""

import time

from machine import I2C, Pin

from citynode.drivers.bme280 import BME280
from citynode.sense.ranging import speed_mm_s

# I2C bus 0 on GPIO22 (SCL) and GPIO21 (SDA): the ESP32-DevKitC defaults.
# Boards with SDO pulled low answer at 0x76 instead of 0x77.
i2c = I2C(0, scl=Pin(22), sda=Pin(21), freq=400000)
print("I2C devices:", [hex(a) for a in i2c.scan()])

sensor = BME280(i2c, address=0x77)
while True:
    s = sensor.sample()
    if "fault" in s:
        print("fault:", s["fault"])
    else:
        c = speed_mm_s(int(round(s["temp_c"] * 100)), int(round(s["humidity_pct"] * 10)),
                       int(round(s["pressure_pa"])))
        print("%6.2f C  %9.1f Pa  %5.1f %%RH   sound %d mm/s" % (
            s["temp_c"], s["pressure_pa"], s["humidity_pct"], c))
    time.sleep(1)
