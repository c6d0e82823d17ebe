"""Run core test modules inside MicroPython: `micropython tests/mp_runner.py
tests.core.test_flood ...` with MICROPYPATH holding firmware/ and the repo.

The core tests are plain functions with asserts, written in the subset both
runtimes share, so pytest runs them on CPython and this runs them here.
Prints PASS/FAIL per test and a closing count; exits 1 on any failure.
"""

import gc
import sys


def run(module_name):
    mod = __import__(module_name, None, None, ["x"])
    passed = failed = 0
    for name in sorted(dir(mod)):
        if not name.startswith("test_"):
            continue
        gc.collect()  # each test starts on a collected heap, as a node does after boot
        try:
            getattr(mod, name)()
        except Exception as e:  # noqa: BLE001 - report every failure and go on
            failed += 1
            print("FAIL %s.%s: %s: %s" % (module_name, name, type(e).__name__, e))
        else:
            passed += 1
            print("PASS %s.%s" % (module_name, name))
    return passed, failed


def main(names):
    total_p = total_f = 0
    for n in names:
        p, f = run(n)
        total_p += p
        total_f += f
    print("micropython core tests: %d passed, %d failed" % (total_p, total_f))
    sys.exit(1 if total_f else 0)


main(sys.argv[1:])
