"""Settings and input makers shared by the fuzz tests (tests/test_fuzz_*.py).

Each parser gets FUZZ_EXAMPLES random inputs: 2000 in the normal suite,
20000 under `make fuzz` (`FUZZ_EXAMPLES=20000`). A parser must accept an
input or raise its documented error; anything else fails the test.

Structured inputs (JSON values, mutated good documents) are built by
`random.Random` from a seed Hypothesis draws: drawing them through
Hypothesis strategies costs milliseconds an example, ten times the parsing.
A failure names its seed, which rebuilds the input.
"""

import contextlib
import math
import os
import random
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "2000"))

fuzz = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])

rngs = st.integers(0, 2 ** 64).map(random.Random)

# Values that break parsers: wrong types, the edges of ints and floats,
# NaN and the infinities (CPython's json writes and reads them), strings
# with quotes, escapes, NUL and non-ASCII, and names the documents use.
SCALARS = [None, True, False, 0, -1, 1, 7, 255, 65536, 2 ** 31, 2 ** 63, 2 ** 70, -(2 ** 70), 0.5, -0.0,
           1e-300, 1e308, -1e308, math.nan, math.inf, -math.inf, "", "a", "é", '"', "\\", "\x00", "\ud800",
           "0x1000", "street", "bay", "env", "bay-01", "water", "esp32", "cmd/status", "LAN8720", "env:X",
           "1e308"]
KEYS = ["t", "s", "truth", "format", "version", "id", "type", "sensor", "note", "x", ""]


def scalar(rng):
    r = rng.random()
    if r < 0.6:
        return rng.choice(SCALARS)
    if r < 0.8:
        return rng.randint(-(10 ** 6), 10 ** 6)
    if r < 0.9:
        return rng.uniform(-1e6, 1e6)
    return "".join(rng.choice("ab09 -_:/.\"\\\n\té€") for _ in range(rng.randint(0, 8)))


def value(rng, depth=3):
    """Any JSON value (NaN and the infinities included), nested up to `depth`."""
    r = rng.random()
    if depth == 0 or r < 0.6:
        return scalar(rng)
    n = rng.randint(0, 4)
    if r < 0.8:
        return [value(rng, depth - 1) for _ in range(n)]
    return {rng.choice(KEYS) if rng.random() < 0.5 else str(scalar(rng)): value(rng, depth - 1)
            for _ in range(n)}


def mutate(rng, doc, depth=2):
    """A copy of `doc` with a few random changes: a field set to any value,
    removed, or added; nested objects and lists changed likewise."""
    if isinstance(doc, list):
        doc = list(doc)
        if doc and rng.random() < 0.8:
            i = rng.randrange(len(doc))
            doc[i] = mutate(rng, doc[i], depth - 1) if depth and rng.random() < 0.5 else value(rng)
        elif rng.random() < 0.5:
            doc.append(value(rng))
        return doc
    if not isinstance(doc, dict):
        return value(rng)
    doc = dict(doc)
    for _ in range(rng.randint(1, 3)):
        key = rng.choice(sorted(doc) + KEYS) if doc else rng.choice(KEYS)
        r = rng.random()
        if r < 0.2:
            doc.pop(key, None)
        elif r < 0.5 and depth and isinstance(doc.get(key), (dict, list)):
            doc[key] = mutate(rng, doc[key], depth - 1)
        else:
            doc[key] = value(rng)
    return doc


@contextlib.contextmanager
def scratch_dir(tmp_path_factory, name):
    """A folder for the files a fuzz test writes for every example, removed
    afterwards: in memory (/dev/shm) where there is one, as opening a file
    on a busy disk can cost more than the parsing; else under pytest's
    tmp_path."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        path = Path(tempfile.mkdtemp(prefix="citynode-fuzz-%s-" % name, dir=shm))
    else:
        path = tmp_path_factory.mktemp(name)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
