"""Test helpers for the core tests; MicroPython-compatible like the tests."""

import binascii
import os

from citynode.sense.ranging import half_speed_q16, speed_mm_s

Q16_20C = half_speed_q16(speed_mm_s(2000))


def echo_for_mm(mm, q16=Q16_20C):
    """The echo time (µs) the core turns back into `mm`."""
    return (mm * 65536 + q16 // 2) // q16


def fresh_path(kind):
    """A new, unused path under /tmp (MicroPython has no tempfile)."""
    return "/tmp/citynode-%s-%s" % (kind, binascii.hexlify(os.urandom(6)).decode())


def exists(path):
    try:
        os.stat(path)
    except OSError:
        return False
    return True


def remove_files(path):
    """Remove `path` and its `.tmp` copy, where they are: call it in a
    `finally`, so a failing test leaves nothing behind either."""
    for p in (path, path + ".tmp"):
        if exists(p):
            os.remove(p)


def remove_tree(path):
    """Remove folder `path` and everything under it, if it is there."""
    try:
        names = os.listdir(path)
    except OSError:
        return
    for name in names:
        p = path + "/" + name
        if os.stat(p)[0] & 0x4000:  # a folder (S_IFDIR; MicroPython has no stat module)
            remove_tree(p)
        else:
            os.remove(p)
    os.rmdir(path)


class TempFolder:
    """`with TempFolder(kind) as d:` a new, unused folder path under /tmp
    (not made), removed with everything in it at the end, failing or not."""

    def __init__(self, kind):
        self.path = fresh_path(kind)

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        remove_tree(self.path)


class Collect:
    """A publish callback that keeps every message."""

    def __init__(self):
        self.messages = []

    def __call__(self, t, topic, payload):
        self.messages.append((t, topic, payload))

    def events(self, kind=None):
        return [p for t, topic, p in self.messages
                if topic == "event" and (kind is None or p["kind"] == kind)]
