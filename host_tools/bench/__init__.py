"""`make bench`: speed and memory, measured and printed (never asserted by
stopwatch in the tests)."""
