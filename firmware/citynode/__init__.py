"""citynode's logic core: pure modules shared by the ESP32 and the desk.

The decision modules (ticks, ranging, filters, occupancy, flood, payloads,
core, config) touch no hardware, network or file; `drivers` talk to the
parts over buses they are given, `mqtt` to the broker, `outbox` to the
node's flash, and `recording`/`hal_sim`/`replay` read recordings on the
desk. Everything runs unchanged under MicroPython and CPython.
"""

VERSION = "0.1.0"


def topic_prefix(site, node):
    """Every topic of a node starts with this: `citynode/<site>/<node>/`."""
    return "citynode/%s/%s/" % (site, node)
