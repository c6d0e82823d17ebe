"""Shared fixtures: the bundled recordings and the MicroPython interpreter."""

import os
import subprocess
from pathlib import Path

import pytest

from host_tools import mpy

ROOT = Path(__file__).resolve().parent.parent
RECORDINGS = ROOT / "recordings"
BUNDLED = ("parking-day", "flood-event", "dry-week", "street-faults")


def bundled(name):
    return RECORDINGS / (name + ".jsonl.gz")


def run_micropython(args, heap="256K", cwd=ROOT):
    """Run the real MicroPython interpreter with firmware/ and the repo on
    its path; returns the CompletedProcess."""
    env = dict(os.environ, MICROPYPATH="%s:%s:%s" % (ROOT / "firmware", ROOT, mpy.library_path()))
    return subprocess.run([mpy.micropython_binary(), "-X", "heapsize=" + heap] + list(args),
                          env=env, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="session")
def replays():
    """Replays of the bundled recordings, made once per run and shared:
    {(name, runtime): Result}."""
    from host_tools.desk import replay
    cache = {}

    def get(name, runtime="cpython"):
        key = (name, runtime)
        if key not in cache:
            cache[key] = replay.run(bundled(name), runtime)
        return cache[key]

    return get
