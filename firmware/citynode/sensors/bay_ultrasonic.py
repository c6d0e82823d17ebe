"""A parking bay under an ultrasonic sensor on the ceiling or a pole
(citynode.sense.occupancy.UltrasonicBay): a burst of pings, reduced to one
distance, against the empty bay's."""

from citynode.sense.ranging import RANGERS
from citynode.sensors import BAY, BAY_POSITIVE, COMMON

NAME = "bay_ultrasonic"
PARAMS = COMMON + BAY + ("pings", "tolerance_mm", "empty_mm", "enter_mm", "exit_mm")
POSITIVE = BAY_POSITIVE + ("pings",)
DRIVER = "hc-sr04"
DRIVERS = tuple(RANGERS)
RANGED = True
TOPIC = "bay"
SAMPLE = "range"
TRUTH = "occupied"
PART = None

