"""citynode.storage: whole files or none, on littlefs and on FAT.
MicroPython-compatible: plain functions and asserts."""

import os

from citynode import storage
from tests.core.helpers import exists, fresh_path, remove_files


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def test_write_atomic_replaces_the_whole_file_and_leaves_no_temporary():
    p = fresh_path("storage")
    try:
        storage.write_atomic(p, "first")
        storage.write_atomic(p, b"second\x00")
        assert _read(p) == b"second\x00"
        assert not exists(p + ".tmp")
    finally:
        remove_files(p)


class _Fat:
    """The os calls storage makes, as on a FAT flash: no rename over a file."""

    def rename(self, src, dst):
        if exists(dst):
            raise OSError(17)  # EEXIST
        os.rename(src, dst)

    def remove(self, path):
        os.remove(path)


def test_on_a_file_system_that_will_not_rename_over_a_file_the_old_one_goes_first():
    p = fresh_path("storage")
    real = storage.os
    storage.os = _Fat()
    try:
        storage.write_atomic(p, "old")
        storage.write_atomic(p, "new")
        assert _read(p) == b"new" and not exists(p + ".tmp")
    finally:
        storage.os = real
        remove_files(p)
