"""One logic core, two runtimes: every bundled recording gives the same
messages, in the same order, under CPython and under the real MicroPython
interpreter with the default ESP32-sized heap and mpy-cross-compiled core."""

import pytest

from tests.conftest import BUNDLED


@pytest.mark.parametrize("name", BUNDLED)
def test_both_runtimes_publish_identical_messages(replays, name):
    cp = replays(name, "cpython")
    mp = replays(name, "micropython")
    assert mp.stats == cp.stats
    assert len(mp.messages) == len(cp.messages)
    for i, (a, b) in enumerate(zip(cp.messages, mp.messages, strict=True)):
        assert (a[0], a[1], a[2]) == (b[0], b[1], b[2]), "message %d differs" % i
    assert len(cp.events) > 0
