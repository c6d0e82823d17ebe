"""Flashing MicroPython or CircuitPython onto a board: a firmware .bin
through esptool's Python API, or a CircuitPython .uf2 onto the board's UF2
bootloader drive.

    from host_tools.field import boards, flash
    board = boards.load("esp32-devkitc")
    image = flash.check_image("firmware.bin", board)   # before touching the board
    plan = flash.make_plan(board, image, "/dev/ttyUSB0", erase=True)
    result = flash.run(plan, console)                  # result.node_id: "esp32-a1b2c3"

    board = boards.load("adafruit-feather-esp32s3")
    image = flash.check_uf2("circuitpython.uf2", board)
    plan = flash.make_uf2_plan(board, image, flash.find_uf2_drive(board))
    flash.run_uf2(plan, console)                       # the file written on the drive

`check_image`, `check_uf2` and the plans are pure: they read the file and
decide what will happen. `run` carries the plan out step by step; it reaches
the board only through `esptool_api()`, esptool's `cmds` module (detect_chip,
run_stub, attach_flash, erase_flash, write_flash, verify_flash, reset_chip)
and the loader object detect_chip returns (CHIP_NAME, change_baud, read_mac).
`run_uf2` checks the drive's INFO_UF2.TXT and copies the file onto it.

Every error a user can fix is a FlashError of one line naming the file or
the port: docs/flashing.md lists them.
"""

import errno
import grp
import hashlib
import os
import struct
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from host_tools.field import boards, transport

# A MicroPython or CircuitPython firmware .bin is ESP-IDF's flash layout from
# the image offset on: the second-stage bootloader, the partition table at
# 0x8000 (ESP-IDF's default, which both keep), the app where the table says.
PARTITION_TABLE_OFFSET = 0x8000
PARTITION_TABLE_SIZE = 0xC00
_PARTITION = struct.Struct("<2sBBII16sI")  # magic, type, subtype, offset, size, label, flags
_PARTITION_MAGIC = b"\xaa\x50"
_PARTITION_MD5_MAGIC = b"\xeb\xeb"
_APP_PARTITION = 0
_APP_DESC_MAGIC = 0xABCD5432  # esp_app_desc_t, at the start of the app's first DROM segment

ROM_BAUD = 115200  # the ROM bootloader's rate: connect at this, then switch
DEFAULT_BAUD = 460800
CONNECT_ATTEMPTS = 7  # esptool's default
DOWNLOAD_MODE = "hold BOOT, press and release EN/RST, release BOOT"


class FlashError(ValueError):
    """An image, a port, a drive or a board that cannot be flashed: one line."""


def _downloads(board):
    """Where the board's firmware comes from."""
    if board.runtime == "circuitpython":
        return "circuitpython.org/board/%s" % board.board_id
    return "micropython.org/download"


def esptool_api():
    """The seam: esptool's command functions. Tests stand a fake here, since
    the ESP32 ROM bootloader cannot run on the desk."""
    import esptool.cmds

    return esptool.cmds


def chip_name(chip):
    """esptool's name for a profile's chip: "esp32s3" -> "ESP32-S3"."""
    from esptool.targets import CHIP_DEFS

    return CHIP_DEFS[chip].CHIP_NAME


def _chip_of_image_id(chip_id):
    from esptool.targets import ROM_LIST

    for rom in ROM_LIST:
        if getattr(rom, "IMAGE_CHIP_ID", None) == chip_id:
            return rom.CHIP_NAME
    return "unknown chip (id %d)" % chip_id


# ---- the image

@dataclass(frozen=True)
class Image:
    path: str
    data: bytes
    chip: str          # esptool's name: "ESP32", "ESP32-S3", ...
    app_offset: int    # in flash
    app: str | None    # "micropython v1.24.1", from the app's description

    @property
    def size(self):
        return len(self.data)

    def describe(self):
        return "%s: %s image, %s bytes: bootloader, partition table at 0x%x, app%s at 0x%x" % (
            self.path, self.chip, format(self.size, ","), PARTITION_TABLE_OFFSET,
            " (%s)" % self.app if self.app else "", self.app_offset)


def _esp_image(path, data, at, board, what):
    """esptool's parse of the ESP image at file offset `at`, refused unless
    it is whole and for the board's chip."""
    from esptool.bin_image import LoadFirmwareImage
    from esptool.loader import ESPLoader
    from esptool.targets import CHIP_DEFS
    from esptool.util import FatalError

    where = "%s: %s (file offset 0x%x)" % (path, what, at)
    part = data[at:]
    if not part:
        raise FlashError("%s is missing: the file ends at 0x%x, cut short" % (where, len(data)))
    if part[0] != ESPLoader.ESP_IMAGE_MAGIC:
        raise FlashError("%s is not an ESP image: it starts with 0x%02x, an ESP image with 0x%02x" % (
            where, part[0], ESPLoader.ESP_IMAGE_MAGIC))
    try:
        image = LoadFirmwareImage(board.chip, part)
    except FatalError as e:
        raise FlashError("%s is damaged: %s" % (where, e)) from None
    except struct.error:
        raise FlashError("%s is cut short: its header is incomplete" % where) from None
    except RuntimeError:
        raise FlashError("%s is damaged: its extended header is invalid" % where) from None
    want = CHIP_DEFS[board.chip]
    if image.chip_id != want.IMAGE_CHIP_ID:
        raise FlashError("%s is for the %s, but board %s has an %s: use a %s build for the %s" % (
            where, _chip_of_image_id(image.chip_id), board.name, want.CHIP_NAME, board.runtime_name,
            want.CHIP_NAME))
    if image.checksum != image.calculate_checksum() or (
            image.append_digest and image.stored_digest != image.calc_digest):
        raise FlashError("%s fails its checksum: the file is damaged, download it again" % where)
    return image


def _runs_from_flash(image):
    """An app has segments mapped from flash; a bootloader only RAM ones."""
    return any(image.is_flash_addr(s.addr) for s in image.segments)


def _app_partition(path, data, at, board):
    """(offset, label) of the first app in the partition table at file offset `at`."""
    table = data[at:at + PARTITION_TABLE_SIZE]
    apps = []
    for i in range(0, len(table) - _PARTITION.size + 1, _PARTITION.size):
        entry = table[i:i + _PARTITION.size]
        if entry[:2] == _PARTITION_MD5_MAGIC:
            if hashlib.md5(table[:i]).digest() != entry[16:]:
                raise FlashError("%s: the partition table (file offset 0x%x) fails its MD5: the file is "
                                 "damaged, download it again" % (path, at))
            break
        if entry[:2] != _PARTITION_MAGIC:
            break
        _, kind, _, offset, _, label, _ = _PARTITION.unpack(entry)
        if kind == _APP_PARTITION:
            apps.append((offset, label.rstrip(b"\0").decode("ascii", "replace")))
    if not apps:
        raise FlashError("%s: no partition table with an app at file offset 0x%x (flash 0x%x): not a "
                         "complete %s firmware" % (path, at, PARTITION_TABLE_OFFSET, board.runtime_name))
    return apps[0]


def _app_description(image):
    """(project, version) from the app's esp_app_desc_t, or None."""
    for seg in image.segments:
        if "DROM" in seg.get_memory_type(image):
            desc = seg.data
            if len(desc) >= 80 and struct.unpack_from("<I", desc)[0] == _APP_DESC_MAGIC:
                version, project = (desc[o:o + 32].split(b"\0")[0].decode("ascii", "replace")
                                    for o in (16, 48))
                return project, version
            return None
    return None


def _read_firmware(path, board):
    """(path, bytes) of firmware file `path` for `board`: something to flash."""
    if board.virtual:
        raise FlashError("board %s is the virtual board (citynode sim): it has no flash to write; copy files "
                         "to it with mpremote" % board.name)
    path = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise FlashError("%s: cannot read: %s" % (path, e.strerror)) from None
    if not data:
        raise FlashError("%s: empty file, not a %s firmware" % (path, board.runtime_name))
    return path, data


def check_image(path, board):
    """The MicroPython or CircuitPython firmware .bin in file `path`, checked
    for `board` before any port is opened: an ESP bootloader image for the
    board's chip at file offset 0 (written at the board's image offset), the
    partition table at 0x8000 and the app it names, whole and for the same
    chip; an app that says it is the other runtime is refused."""
    path, data = _read_firmware(path, board)
    runtime = board.runtime_name
    boot = _esp_image(path, data, 0, board, "the bootloader")
    if _runs_from_flash(boot):
        raise FlashError("%s: an app image (it runs from flash), not a complete %s firmware starting with "
                         "the bootloader: use the .bin from %s" % (path, runtime, _downloads(board)))
    table_at = PARTITION_TABLE_OFFSET - board.flash_offset
    if len(data) <= table_at:
        raise FlashError("%s: %d bytes, only a bootloader: a complete %s firmware also holds the partition "
                         "table and the app" % (path, len(data), runtime))
    app_offset, label = _app_partition(path, data, table_at, board)
    app_at = app_offset - board.flash_offset
    app = _esp_image(path, data, app_at, board, "the app '%s'" % label)
    if not _runs_from_flash(app):
        raise FlashError("%s: the app '%s' (file offset 0x%x) has no code in flash: not a %s app" % (
            path, label, app_at, runtime))
    desc = _app_description(app)
    if desc and desc[0] in boards.RUNTIMES and desc[0] != board.runtime:
        raise FlashError("%s: the app '%s' (file offset 0x%x) is %s %s, but board %s runs %s: use the .bin "
                         "from %s" % (path, label, app_at, desc[0], desc[1], board.name, runtime,
                                      _downloads(board)))
    shown = " ".join(desc).strip() if desc else ""
    return Image(path=path, data=data, chip=chip_name(board.chip), app_offset=app_offset, app=shown or None)


# ---- the plan

@dataclass(frozen=True)
class Plan:
    board: boards.Board
    image: Image
    port: str
    offset: int
    erase: bool
    verify: bool
    baud: int
    connect_attempts: int
    steps: tuple  # (action, what it does), carried out in this order by run()


def make_plan(board, image, port, erase=False, verify=True, baud=DEFAULT_BAUD,
              connect_attempts=CONNECT_ATTEMPTS):
    """What `run` will do, in order, without doing it."""
    if baud <= 0:
        raise FlashError("`baud` must be a positive number of bits per second, not %d" % baud)
    if connect_attempts < 0:
        raise FlashError("`connect_attempts` must be 0 (keep trying) or more, not %d" % connect_attempts)
    offset = board.flash_offset
    tries = "until it answers" if connect_attempts == 0 else "%d tries" % connect_attempts
    steps = [("connect", "connect to %s (%s), expect an %s (board %s)" % (
                 port, tries, image.chip, board.name)),
             ("prepare", "run esptool's flasher stub at %d baud, attach the flash" % baud)]
    if erase:
        steps.append(("erase", "erase the whole flash"))
    steps.append(("write", "write %s, %s bytes, at 0x%x" % (image.path, format(image.size, ","), offset)))
    if verify:
        steps.append(("verify", "verify the flash at 0x%x against %s" % (offset, image.path)))
    steps += [("mac", "read the MAC: the node id"),
              ("reset", "hard-reset the board: %s starts" % board.runtime_name)]
    return Plan(board=board, image=image, port=port, offset=offset, erase=erase, verify=verify, baud=baud,
                connect_attempts=connect_attempts, steps=tuple(steps))


# ---- carrying it out

@dataclass(frozen=True)
class Result:
    chip: str
    mac: str        # "a4:cf:12:a1:b2:c3"
    node_id: str    # "esp32-a1b2c3"


def node_id(chip, mac):
    """The default node id: the profile's chip and the MAC's last three bytes
    (the first three are Espressif's vendor prefix), a valid MQTT topic level."""
    return "%s-%s" % (chip, "".join("%02x" % b for b in mac[3:]))


def _connect(api, plan, esp):
    return api.detect_chip(port=plan.port, baud=min(ROM_BAUD, plan.baud), connect_mode="default-reset",
                           connect_attempts=plan.connect_attempts)


def _prepare(api, plan, esp):
    esp = api.run_stub(esp)
    if plan.baud > ROM_BAUD:
        esp.change_baud(plan.baud)
    api.attach_flash(esp)
    return esp


_ACTIONS = {
    "connect": _connect,
    "prepare": _prepare,
    "erase": lambda api, plan, esp: api.erase_flash(esp),
    "write": lambda api, plan, esp: api.write_flash(esp, [(plan.offset, plan.image.data)]),
    "verify": lambda api, plan, esp: api.verify_flash(esp, [(plan.offset, plan.image.data)]),
    "mac": lambda api, plan, esp: esp.read_mac(),
    "reset": lambda api, plan, esp: api.reset_chip(esp, "hard-reset"),
}


def _announce(console, n, steps, text):
    console.print("[bold]%d/%d[/] %s" % (n, len(steps), text), highlight=False)


def run(plan, console):
    """Carry out `plan` through esptool, showing its steps, its output and a
    progress bar on the rich `console`; a Result, or a FlashError."""
    from esptool.util import FatalError

    from host_tools.field.esptool_log import showing_esptool

    api = esptool_api()
    want = chip_name(plan.board.chip)
    esp = mac = None
    with showing_esptool(console), ExitStack() as port_open:
        try:
            for n, (action, text) in enumerate(plan.steps, 1):
                _announce(console, n, plan.steps, text)
                out = _ACTIONS[action](api, plan, esp)
                if action == "connect":
                    esp = port_open.enter_context(out)  # the loader closes the port on leaving
                    if want != esp.CHIP_NAME:
                        raise FlashError(_wrong_chip(plan, esp.CHIP_NAME))
                elif action == "prepare":
                    esp = out
                elif action == "mac":
                    mac = out
        except (FatalError, OSError) as e:
            raise FlashError(explain(e, plan.port, action)) from None
    return Result(chip=esp.CHIP_NAME, mac=":".join("%02x" % b for b in mac),
                  node_id=node_id(plan.board.chip, mac))


def _wrong_chip(plan, found):
    matching = [b.name for b in boards.all_boards()
                if not b.virtual and b.runtime == plan.board.runtime and chip_name(b.chip) == found]
    hint = "use `board` %s" % " or ".join(matching) if matching else "no bundled profile has that chip"
    return "%s has an %s, but board %s is an %s: nothing written; %s" % (
        plan.port, found, plan.board.name, chip_name(plan.board.chip), hint)


def _errno(exc):
    """The OS error number behind an esptool error (esptool wraps pyserial's
    SerialException, which keeps the number, in a FatalError)."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno is not None:
            return exc.errno
        exc = exc.__cause__ or exc.__context__
    return None


def _port_group(port):
    try:
        return grp.getgrgid(os.stat(port).st_gid).gr_name
    except (OSError, KeyError):
        return "dialout"


def explain(exc, port, action):
    """One line for what went wrong with the port or the board, saying what to do."""
    code = _errno(exc)
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return "no serial port %s: is the board plugged in? `citynode flash --list` shows the ports" % port
    if code in (errno.EACCES, errno.EPERM):
        group = _port_group(port)
        return ("permission denied on %s: join its group %s (sudo usermod -aG %s $USER), then log in again"
                % (port, group, group))
    if code in (errno.EBUSY, errno.EAGAIN):
        return "%s is in use by another program (a serial monitor, mpremote?): close it and retry" % port
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if action == "connect" and first.startswith("Failed to connect"):
        return ("no answer from the bootloader on %s (%s): put the board in download mode (%s) and retry" % (
            port, first.split(": ", 1)[-1], DOWNLOAD_MODE))
    return "%s failed on %s: %s" % (action, port, first)


# ---- a .uf2 onto the UF2 bootloader's drive
#
# Microsoft's UF2 specification (github.com/microsoft/uf2, README.md): a file
# of 512-byte blocks, each a header of eight little-endian words, up to 476
# bytes of data and a final magic word; the family ids are in its
# utils/uf2families.json. A bootloader's drive holds INFO_UF2.TXT, whose
# "Board-ID:" line names the board (Adafruit's tinyuf2 writes it).
UF2_BLOCK_SIZE = 512
UF2_MAX_PAYLOAD = 476
UF2_FLAG_FAMILY_ID = 0x2000
UF2_FAMILIES = {"esp32s3": 0xC47E5767}
UF2_INFO = "INFO_UF2.TXT"
_UF2_HEADER = struct.Struct("<8I")
_UF2_FIELDS = ("magicStart0", "magicStart1", "flags", "targetAddr", "payloadSize", "blockNo", "numBlocks",
               "familyID")
_UF2_MAGIC = {"magicStart0": 0x0A324655, "magicStart1": 0x9E5D5157, "magicEnd": 0x0AB16F30}
_UF2_CHUNK = 64 * UF2_BLOCK_SIZE  # bytes per write, and per step of the progress bar
UF2_BOOTLOADER = "press RESET, then again while the RGB LED is purple"


@dataclass(frozen=True)
class Uf2Image:
    path: str
    data: bytes
    chip: str       # esptool's name: "ESP32-S3"
    family: int
    blocks: int
    payload: int    # firmware bytes the blocks carry

    @property
    def size(self):
        return len(self.data)

    def describe(self):
        return "%s: UF2 for the %s (family 0x%08x), %s blocks, %s bytes of firmware" % (
            self.path, self.chip, self.family, format(self.blocks, ","), format(self.payload, ","))


def check_uf2(path, board):
    """The CircuitPython .uf2 in file `path`, checked for `board` before
    anything is written: whole 512-byte blocks, each with UF2's three magic
    words, the familyID flag and the board chip's family, at most 476 bytes
    of data, numbered 0 to N-1 in order with N blocks in all."""
    if board.runtime != "circuitpython" and not board.virtual:
        raise FlashError("%s: a .uf2 goes onto a CircuitPython board's UF2 drive, but board %s runs %s: use "
                         "the .bin from %s" % (path, board.name, board.runtime_name, _downloads(board)))
    path, data = _read_firmware(path, board)
    if len(data) % UF2_BLOCK_SIZE:
        raise FlashError("%s: %s bytes, not a whole number of %d-byte UF2 blocks: cut short, or not a UF2 "
                         "file" % (path, format(len(data), ","), UF2_BLOCK_SIZE))
    count = len(data) // UF2_BLOCK_SIZE
    family = UF2_FAMILIES[board.chip]
    payload = 0
    for n in range(count):
        at = n * UF2_BLOCK_SIZE
        block = dict(zip(_UF2_FIELDS, _UF2_HEADER.unpack_from(data, at), strict=True))
        block["magicEnd"] = struct.unpack_from("<I", data, at + UF2_BLOCK_SIZE - 4)[0]
        where = "%s: UF2 block %d (file offset 0x%x)" % (path, n, at)
        for field, magic in _UF2_MAGIC.items():
            if block[field] != magic:
                raise FlashError("%s: %s is 0x%08x, not 0x%08x: not a UF2 block" % (
                    where, field, block[field], magic))
        if not block["flags"] & UF2_FLAG_FAMILY_ID:
            raise FlashError("%s: flags 0x%08x lack familyID present (0x%04x): the bootloader skips such a "
                             "block" % (where, block["flags"], UF2_FLAG_FAMILY_ID))
        if block["familyID"] != family:
            raise FlashError("%s: familyID is 0x%08x, not the %s's 0x%08x: use the .uf2 from %s" % (
                where, block["familyID"], chip_name(board.chip), family, _downloads(board)))
        if block["payloadSize"] > UF2_MAX_PAYLOAD:
            raise FlashError("%s: payloadSize is %d, more than the %d bytes a block holds" % (
                where, block["payloadSize"], UF2_MAX_PAYLOAD))
        if block["blockNo"] != n:
            raise FlashError("%s: blockNo is %d, not %d: blocks missing or out of order" % (
                where, block["blockNo"], n))
        if block["numBlocks"] != count:
            raise FlashError("%s: numBlocks is %d, but the file holds %d blocks" % (
                where, block["numBlocks"], count))
        payload += block["payloadSize"]
    return Uf2Image(path=path, data=data, chip=chip_name(board.chip), family=family, blocks=count,
                    payload=payload)


def find_uf2_drive(board):
    """Where `board`'s UF2 drive is mounted, found by the volume label in its
    profile (transport.find_mounted: a mount point named by the label,
    /media/USER/FTHRS3BOOT or /Volumes/FTHRS3BOOT, or the mount of the
    device with that label)."""
    if board.uf2 is None:
        raise FlashError("board %s has no [uf2] volume in its profile to find its drive by: give the mounted "
                         "drive with `drive`" % board.name)
    label = board.uf2["volume"]
    found = transport.find_mounted(label)
    if len(found) == 1:
        return found[0]
    if not found:
        raise FlashError("no UF2 drive %s is mounted: put board %s in its UF2 bootloader (%s), wait for the "
                         "drive, or give it with `drive`" % (label, board.name, UF2_BOOTLOADER))
    raise FlashError("%d UF2 drives %s are mounted (%s): choose one with `drive`" % (
        len(found), label, ", ".join(found)))


@dataclass(frozen=True)
class Uf2Plan:
    board: boards.Board
    image: Uf2Image
    drive: str
    steps: tuple  # (action, what it does), carried out in this order by run_uf2()

    @property
    def target(self):
        return Path(self.drive, Path(self.image.path).name)


def make_uf2_plan(board, image, drive):
    """What `run_uf2` will do, in order, without doing it."""
    drive = str(drive)
    expect = " with Board-ID %s" % board.uf2["board_id"] if board.uf2 else ""
    size = format(image.size, ",")
    steps = (("check", "check that %s is a UF2 bootloader's drive (%s)%s, for board %s" % (
                 drive, UF2_INFO, expect, board.name)),
             ("copy", "copy %s, %s bytes, to %s as one file, flushed and synced: the board writes it to "
                      "flash and reboots into %s" % (Path(image.path).name, size, drive, board.runtime_name)))
    return Uf2Plan(board=board, image=image, drive=drive, steps=steps)


def _uf2_info(drive):
    """The text of the drive's INFO_UF2.TXT (in any case, FAT has no case)."""
    try:
        names = os.listdir(drive)
    except FileNotFoundError:
        raise FlashError("no drive %s: put the board in its UF2 bootloader (%s) and give the folder where "
                         "its drive is mounted" % (drive, UF2_BOOTLOADER)) from None
    except OSError as e:
        raise FlashError("%s: cannot open the drive: %s" % (drive, e.strerror)) from None
    for name in names:
        if name.upper() == UF2_INFO:
            try:
                return Path(drive, name).read_text(encoding="ascii", errors="replace")
            except OSError as e:
                raise FlashError("%s: cannot read: %s" % (Path(drive, name), e.strerror)) from None
    raise FlashError("%s has no %s, so it is not a UF2 bootloader's drive (CIRCUITPY holds the board's "
                     "files, not its bootloader): put the board in its UF2 bootloader (%s)" % (
                         drive, UF2_INFO, UF2_BOOTLOADER))


def _check_drive(plan):
    """The drive is a UF2 bootloader's, and the one of the board in the
    profile when both its INFO_UF2.TXT and the profile name a Board-ID."""
    info = _uf2_info(plan.drive)
    said = [line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("Board-ID:")]
    want = plan.board.uf2 and plan.board.uf2["board_id"]
    if said and want and said[0] != want:
        raise FlashError("%s: %s says Board-ID %s, but board %s has %s: nothing written; check the "
                         "board, or choose its profile with `board`" % (plan.drive, UF2_INFO, said[0],
                                                                        plan.board.name, want))


def _copy(plan, progress):
    """The image into one file on the drive, written in order, flushed and
    synced, so the bootloader has every block before it reboots."""
    data, done = plan.image.data, 0
    try:
        with open(plan.target, "wb") as f:
            for at in range(0, len(data), _UF2_CHUNK):
                done += f.write(data[at:at + _UF2_CHUNK])
                progress(done, len(data))
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        gone = " (the board may have rebooted already: see whether its CIRCUITPY drive appears)" \
            if done == len(data) else ""
        raise FlashError("copying to %s failed after %s of %s bytes: %s%s" % (
            plan.target, format(done, ","), format(len(data), ","), e.strerror or e, gone)) from None


def run_uf2(plan, console):
    """Carry out `plan`: check the drive, then copy the .uf2 onto it with a
    progress bar; the path written, or a FlashError before anything is."""
    from host_tools.progress import Progress

    for n, (action, text) in enumerate(plan.steps, 1):
        _announce(console, n, plan.steps, text)
        if action == "check":
            _check_drive(plan)
        else:
            with Progress("copying %s" % plan.target.name) as bar:
                _copy(plan, bar.update)
    return plan.target


# ---- ports

def usb_serial_ports():
    """The USB serial ports (a board is on one of them), by device name."""
    from serial.tools import list_ports

    return sorted((p for p in list_ports.comports() if p.vid is not None), key=lambda p: p.device)


def describe_port(p):
    """One line per port, like `mpremote devs`: device, serial number, VID:PID, maker, product."""
    return "%s %s %04x:%04x %s %s" % (p.device, p.serial_number or "-", p.vid, p.pid or 0,
                                      p.manufacturer or "-", p.product or p.description or "-")


def pick_port(ports):
    """The port to use when --port is not given: the only USB serial port."""
    if len(ports) == 1:
        return ports[0].device
    if not ports:
        raise FlashError("no USB serial port found: plug the board in (with a data cable) or give `port`")
    raise FlashError("%d USB serial ports (%s): choose one with `port`" % (
        len(ports), ", ".join(p.device for p in ports)))


# ---- `citynode flash`
