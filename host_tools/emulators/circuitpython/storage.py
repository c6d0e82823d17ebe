"""CircuitPython's `storage`: `remount("/", readonly)` (only in boot.py;
it says whether code or the USB host may write CIRCUITPY) and
`getmount("/").readonly`, as the world keeps them (`usb_host_writes`)."""

from host_tools.emulators.circuitpython.cp_world import world


class _VfsFat:
    label = "CIRCUITPY"

    @property
    def readonly(self):
        return world().kept.get("readonly", True)


def getmount(mount_path):
    if mount_path != "/":
        raise OSError(22)
    return _VfsFat()


def remount(mount_path, readonly=False, disable_concurrent_write_protection=False):
    w = world()
    if not w.in_boot:
        raise RuntimeError("Cannot remount '/' when visible via USB.")
    w.kept["readonly"] = bool(readonly)
