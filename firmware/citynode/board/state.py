"""The logic core's state as JSON, to survive deep sleep.

    data = snapshot(core, fresh)          # before machine.deepsleep(); `fresh`: a
                                          # core just built from the same config
    core = Core(sensors, clock, publish)  # after waking: built from the config
    restore(core, data)                   # and brought back where it was

`snapshot` walks the objects' attributes (`__dict__`) and keeps what is
data: numbers, strings, None, lists, tuples, dicts, and objects holding
such (the detectors and their filters), skipping functions and methods,
the shared `events` list, the clock and the sensor types, and leaving out what equals the
same place in `base` (a core freshly built from the config: what comes
from the config need not be kept, which keeps the state within an
ESP32's 2 KB of RTC memory). `restore` writes the values back
into a core freshly built from the same config: plain values replace,
objects and dicts are restored into the ones already there (so a dict of
methods the snapshot skipped stays whole), a list becomes a tuple where
the fresh object holds a tuple.

Ticks in the state stay valid across the sleep only where the hardware
layer's ticks run through it (citynode.board.hal_esp32 takes them from the RTC).
"""

SKIP = ("events", "clock", "_publish", "types")


def _dump(v, base=None):
    """`v` as JSON-able data, or _DROP for something that is not data (or,
    for an object's attributes, the same as in `base`)."""
    t = type(v)
    if v is None or t is int or t is float or t is str or t is bool:
        return v
    if t is list or t is tuple:
        out = []
        for x in v:
            d = _dump(x)
            if d is _DROP:
                return _DROP
            out.append(d)
        return out
    if t is dict:
        out = {}
        for k in v:
            d = _dump(v[k], base.get(k) if type(base) is dict else None)
            if d is not _DROP:
                out[k] = d
        return out
    if callable(v) or not hasattr(v, "__dict__"):
        return _DROP
    return {"__obj__": _attrs(v, base)}


_DROP = object()


def _attrs(obj, base):
    out = {}
    d = obj.__dict__
    b = base.__dict__ if base is not None and hasattr(base, "__dict__") else {}
    for k in d:
        if k in SKIP:
            continue
        v = _dump(d[k], b.get(k))
        if v is _DROP or (k in b and type(v) is not dict and v == _dump(b[k])):
            continue
        out[k] = v
    return out


def snapshot(core, base=None):
    """The core's state: a dict for json.dumps; without what equals `base`."""
    return _attrs(core, base)


def _load(current, data):
    """The value to put where `current` is, from snapshot `data`."""
    if type(data) is dict and "__obj__" in data:
        _restore_obj(current, data["__obj__"])
        return current
    if type(data) is dict and type(current) is dict:
        for k in data:
            current[k] = _load(current.get(k), data[k])
        return current
    if type(data) is list and type(current) is tuple:
        return tuple(data)
    return data


def _restore_obj(obj, attrs):
    d = obj.__dict__
    for k in attrs:
        setattr(obj, k, _load(d.get(k), attrs[k]))


def restore(core, data):
    """Bring `core` (built from the same config) back to snapshot `data`."""
    _restore_obj(core, data)
