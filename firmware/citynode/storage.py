"""Files on the node's flash that a power cut cannot leave half written.

Runs under MicroPython (littlefs or FAT on the board) and CPython (the
desk). A FAT file system will not rename over an existing file: the old
one is removed first, so a cut between the two leaves only the `.tmp`
file, which its owner takes back on opening (the outbox does).
"""

import os


def replace(src, dst):
    """Rename `src` over `dst` (removing `dst` first where the file system
    will not rename over a file)."""
    try:
        os.rename(src, dst)
    except OSError:
        try:  # noqa: SIM105 - MicroPython has no contextlib
            os.remove(dst)
        except OSError:
            pass
        os.rename(src, dst)


def write_atomic(path, data):
    """Write `data` (str or bytes) to `path` through `path + ".tmp"` and a
    rename: after a power cut `path` holds the old content or the new one,
    never a part. OSError if the flash refuses."""
    tmp = path + ".tmp"
    with open(tmp, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    replace(tmp, path)
