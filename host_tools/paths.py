"""Where the project's folders are, for the host tools (CPython only)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
RECORDINGS = ROOT / "recordings"
BOARDS = ROOT / "boards"
