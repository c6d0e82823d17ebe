"""citynode's firmware, by layer; everything runs unchanged under MicroPython
and CPython.

    sense/    the decisions: ranging, filters, the detectors (occupancy,
              flood, air), the core that feeds them, payloads; no
              hardware, network or file
    link/     the way out: mqtt, outbox, publisher, commands, discovery
    board/    the node's main loop, its hardware layers (hal_esp32, hal_sim),
              state, record mode, the recording reader and replay
    drivers/  the parts, over buses they are given
    sensors/  the sensor-type registry: one module per type
    config    the config checks; ticks (wrap-safe time), storage (atomic
              writes) and, here, topic_prefix and forget: shared by all
"""

import gc
import sys

VERSION = "0.1.0"


def topic_prefix(site, node):
    """Every topic of a node starts with this: `citynode/<site>/<node>/`."""
    return "citynode/%s/%s/" % (site, node)


def forget(*names):
    """Drop modules no longer needed (the config checks once done, say), so their code can be freed."""
    for name in names:
        sys.modules.pop(name, None)
        pkg, _, attr = name.rpartition(".")
        parent = sys.modules.get(pkg)
        if parent is not None and attr in parent.__dict__:  # importing set it on the package
            delattr(parent, attr)
    gc.collect()
