"""CircuitPython's `storage`: `remount("/", readonly)` (only in boot.py; it
says whether the code or the USB host may write CIRCUITPY) and
`getmount("/").readonly`. Every start is CircuitPython's default (read-only
to the code) until boot.py remounts; launch.py's drive refuses the code's
writes while it is read-only, with OSError 30 (EROFS) as CircuitPython's
FAT filesystem does."""

from host_tools.emulators.circuitpython.cp_world import world

_READONLY = [True]  # this start's mount of "/", as the code sees it


class _VfsFat:
    label = "CIRCUITPY"

    @property
    def readonly(self):
        return _READONLY[0]


def getmount(mount_path):
    if mount_path != "/":
        raise OSError(22)
    return _VfsFat()


def remount(mount_path, readonly=False, disable_concurrent_write_protection=False):
    if not world().in_boot:
        raise RuntimeError("Cannot remount '/' when visible via USB.")
    if mount_path != "/":
        raise OSError(22)
    _READONLY[0] = bool(readonly)
