"""The sensor types: one module each in this package, and this registry.

A type module says what the rest of citynode needs to know of a sensor
type (docs/sensor-types.md): the config checks, the recording reader, the
hardware layers, the settings commands, Home Assistant discovery and the
desk's tools read it from here.

    NAME      the type's name, as in a sensor entry's "type"
    PARAMS    every field an entry of this type may carry
    POSITIVE  the fields that must be above 0 (they divide or schedule)
    DRIVER    the default driver; DRIVERS: every driver that can serve it
    RANGED    True when read as distances (citynode.sense.ranging)
    TOPIC     what it publishes: "bay" (bay/<id>), "water" or "env"
    SAMPLE    the shape of its samples in a recording: "range", "mag", "air"
    TRUTH     the field of its ground truth in a recording, or None
    PART      the part whose raw bus values a recording may carry, or None

The logic core (citynode.sense.core) builds each type's detector and feeds it
itself, without loading these modules: built through them (each type
naming its detector, feeder and default period), the core alone held
37,312 bytes on the replay of the flood, past its 32 KB budget, against
29,760 as it is.

Types are imported when first asked for, so a node loads only its own; a
type module imports only what the types share from here. A type from
outside the package is added with `register`.
"""

import sys

# What several types share: the fields every entry and every bay may carry.
COMMON = ("id", "type", "driver", "fault_after_s")
BAY = ("period_s", "dwell_on_s", "dwell_off_s", "drift_tau_s", "calibrate_s")
BAY_POSITIVE = ("period_s", "drift_tau_s")

TYPES = ["bay_ultrasonic", "bay_magnetic", "water", "env"]
_OUTSIDE = {}


def register(module):
    """Add a type module from outside this package (`module.NAME`)."""
    if module.NAME not in TYPES:
        TYPES.append(module.NAME)
    _OUTSIDE[module.NAME] = module


def get(name):
    """The module of type `name`; ValueError if there is none."""
    m = _OUTSIDE.get(name)
    if m is not None:
        return m
    if type(name) is not str or name not in TYPES:
        raise ValueError("unknown type %s (one of %s)" % (name, ", ".join(sorted(TYPES))))
    full = "citynode.sensors." + name
    __import__(full)
    return sys.modules[full]


def is_bay(name):
    """True for a known type that publishes a parking bay's state."""
    return name in TYPES and get(name).TOPIC == "bay"
