"""Signals for the host tools (CPython only)."""

import signal


def ctrl_c_stops():
    """Make Ctrl-C (SIGINT) raise KeyboardInterrupt in this process, as it
    does by default, also when it was started by a shell that ignores
    SIGINT for background jobs (Python then keeps it ignored): the tools
    that run until Ctrl-C stop on it however they were started."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
