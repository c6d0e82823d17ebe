"""CircuitPython's `alarm.time.TimeAlarm`."""


class TimeAlarm:
    def __init__(self, monotonic_time=None, epoch_time=None):
        if (monotonic_time is None) == (epoch_time is None):
            raise ValueError("Supply one of monotonic_time or epoch_time")
        if monotonic_time is None:
            import time

            monotonic_time = time.monotonic() + epoch_time - time.time()
        self.monotonic_time = monotonic_time
