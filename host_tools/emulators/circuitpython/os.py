"""CircuitPython's `os`: MicroPython's, plus `getenv(key, default)` read
from /settings.toml (here: settings.toml in the working folder) in the
subset CircuitPython documents: `KEY = "string"` (with \\-escapes) or
`KEY = integer`, one per line, comments with #."""

from uos import *  # noqa: F403 - CircuitPython's os has MicroPython's calls

_SETTINGS = "settings.toml"


def _value(text):
    text = text.strip()
    if text.startswith('"'):
        out = []
        i = 1
        while i < len(text) and text[i] != '"':
            c = text[i]
            if c == "\\":
                i += 1
                c = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}.get(text[i])
                if c is None:
                    if text[i] == "u":
                        c = chr(int(text[i + 1:i + 5], 16))
                        i += 4
                    else:
                        raise ValueError("bad escape")
            out.append(c)
            i += 1
        return "".join(out)
    return int(text.split("#")[0].strip())


def getenv(key, default=None):
    try:
        with open(_SETTINGS) as f:
            lines = f.read().split("\n")
    except OSError:
        return default
    for line in lines:
        name, eq, rest = line.partition("=")
        if eq and name.strip() == key:
            try:
                return _value(rest)
            except (ValueError, IndexError):
                return default
    return default
