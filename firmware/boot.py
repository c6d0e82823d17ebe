# Runs first at every power-up and reset, before main.py.
#
# Kept minimal: a failure here skips main.py. On a real ESP32 this is where
# the hardware watchdog would be started (machine.WDT(timeout=...), fed by the
# main loop); the unix port and the virtual board have no machine.WDT, so
# nothing hardware-specific is touched here.
print("citynode boot")
