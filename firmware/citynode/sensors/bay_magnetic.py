"""A parking bay over an in-ground magnetometer (citynode.sense.occupancy.MagneticBay):
the car's steel bends the earth's field; raw counts of three axes."""

from citynode.sensors import BAY, BAY_POSITIVE, COMMON

NAME = "bay_magnetic"
PARAMS = COMMON + BAY + ("lsb_per_ut", "enter_ut", "exit_ut", "smooth_s", "noise_tau_s", "settle_ut",
                         "weak_ut")
POSITIVE = BAY_POSITIVE + ("lsb_per_ut",)
DRIVER = "qmc5883l"
DRIVERS = ("qmc5883l",)
RANGED = False
TOPIC = "bay"
SAMPLE = "mag"
TRUTH = "occupied"
PART = "qmc5883l"

