# CircuitPython runs this first at every power-up and reset (not on a reload
# after a file is saved), before code.py and before the USB drive is shown to
# the computer: the only moment the board's code may take its own filesystem
# to write it (storage.remount).
#
# `finish_update` must stay self-contained (only `os`, nothing imported from
# the drive, which may be half updated): `citynode provision` loads this one
# function from this file and runs it on the drive too (host_tools.field.
# transport), and the tests run it under MicroPython.


def finish_update(root="/", fs=None):
    """Finish or drop an update that `citynode provision` left on the drive
    under `root` (the drive's root folder, ending in "/", or "" for the
    current folder); `fs`: what has os's stat, listdir, mkdir, rmdir,
    rename and remove (os itself by default).

    Provisioning writes every new file under .citynode-update/ first, then
    .citynode-update/journal (through a temporary name and a rename), which
    lists the moves ("put PATH": .citynode-update/PATH becomes PATH) and the
    removals ("del PATH") between the line "citynode-update 1" and the line
    "end"; then it carries them out, removes the journal, then the folder.
    Here, a complete journal is carried out again (what was moved already is
    not staged any more, so each step is done once), then dropped; without
    one, the staged files are dropped: the drive holds the whole old set of
    files or the whole new one. Returns None (no update left), "finished"
    or "dropped"."""
    if fs is None:
        import os as fs
    stage = root + ".citynode-update"
    try:
        fs.stat(stage)
    except OSError:
        return None
    steps = None
    try:
        with open(stage + "/journal") as f:
            lines = f.read().split("\n")
        if lines[0] == "citynode-update 1" and "end" in lines:
            steps = lines[1:lines.index("end")]
    except (OSError, ValueError):  # no journal, or not text: not complete
        pass

    def drop(path):
        if fs.stat(path)[0] & 0x4000:
            for name in fs.listdir(path):
                drop(path + "/" + name)
            fs.rmdir(path)
        else:
            fs.remove(path)

    for line in steps or ():
        op, path = line[:4], line[4:]
        if op == "del ":
            try:  # noqa: SIM105 - MicroPython has no contextlib
                fs.remove(root + path)
            except OSError:
                pass  # gone already
        elif op == "put ":
            staged = stage + "/" + path
            try:
                fs.stat(staged)
            except OSError:
                continue  # moved already
            folder = root
            for part in path.split("/")[:-1]:
                folder += part
                try:  # noqa: SIM105
                    fs.mkdir(folder)
                except OSError:
                    pass  # there already
                folder += "/"
            try:  # noqa: SIM105 - FAT renames over no file: the old one goes first
                fs.remove(root + path)
            except OSError:
                pass  # none yet
            fs.rename(staged, root + path)
    if steps is not None:
        fs.remove(stage + "/journal")
    drop(stage)
    return "dropped" if steps is None else "finished"


def usb_asks_for_the_drive():
    """True while the board's BOOT button (`board.BUTTON`, to ground) is
    held. On the ESP32-S3 BOOT is also a strapping pin: held through RESET
    it starts the ROM bootloader, and pressed while the status LED is
    purple, the UF2 bootloader; pressed after those (when the LED blinks
    yellow) it reaches this check."""
    import board
    import digitalio

    pin = getattr(board, "BUTTON", None)
    if pin is None:
        return False
    button = digitalio.DigitalInOut(pin)
    button.switch_to_input(pull=digitalio.Pull.UP)
    held = not button.value
    button.deinit()
    return held


try:
    import storage
except ImportError:  # not CircuitPython (MicroPython, the tests): the filesystem is the code's
    _update = finish_update()
else:
    # CircuitPython's code may write its own filesystem only once boot.py has
    # remounted it, before USB is up. The node's policy: the drive is the
    # code's (its outbox and settings), read-only over USB, unless BOOT is
    # held now; then the drive stays writable over USB for this boot (for
    # `citynode provision` or editing) and the node keeps its outbox in RAM.
    # CircuitPython's safe mode (RESET pressed again while the LED blinks
    # yellow) skips this file: the drive is USB's and the node does not run.
    storage.remount("/", readonly=False)
    try:
        _update = finish_update()
    finally:
        _usb = usb_asks_for_the_drive()
        storage.remount("/", readonly=_usb)
    if _usb:
        print("citynode: BOOT held: the drive is writable over USB until the next reset; outbox in RAM")
if _update:
    print("citynode update: %s" % _update)
