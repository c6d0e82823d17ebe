"""Water over a street, from a downward ultrasonic sensor
(citynode.sense.flood.WaterLevel): the level, its rate, alerts; the detector
schedules its own readings (fast while the water moves)."""

from citynode.sense.ranging import RANGERS
from citynode.sensors import COMMON

NAME = "water"
PARAMS = COMMON + ("pings", "tolerance_mm", "mount_mm", "thresholds_mm", "hysteresis_mm", "noise_mm",
                   "max_rise_mm_min", "max_level_mm", "rising_mm_min", "fast_s", "slow_s", "rate_window_s",
                   "obstruction_s", "obstructed_fault_s", "dry_tau_s", "dry_zero_mm")
POSITIVE = ("fast_s", "slow_s", "rate_window_s", "dry_tau_s", "pings", "mount_mm")
DRIVER = "hc-sr04"
DRIVERS = tuple(RANGERS)
RANGED = True
TOPIC = "water"
SAMPLE = "range"
TRUTH = "level_mm"
PART = None

