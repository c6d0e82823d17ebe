"""The air (BME280): temperature, humidity and pressure, checked for
plausibility (citynode.sense.air.AirCheck); a good reading sets the speed of
sound for every ultrasonic sensor of the node."""

from citynode.sensors import COMMON

NAME = "env"
PARAMS = COMMON + ("period_s",)
POSITIVE = ("period_s",)
DRIVER = "bme280"
DRIVERS = ("bme280",)
RANGED = False
TOPIC = "env"
SAMPLE = "air"
TRUTH = None
PART = "bme280"

