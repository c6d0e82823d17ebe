# Runs first at every power-up and reset, before main.py.
#
# Kept minimal: a failure here skips main.py. The watchdog is started by the
# board's hardware layer (citynode.board.hal_esp32) as soon as main.py has read the
# config, and fed by the main loop from then on.
print("citynode boot")
