"""TOML text to a dict, for the profiles, site files and maps people write,
and a string quoted for the TOML files written (a CircuitPython board's
settings.toml).

`tomllib` answers a deeply nested document (`a = [[[[...`) with a
RecursionError; here that is a TOMLDecodeError like any other bad TOML, so
a caller has one error to turn into its one line.
"""

import tomllib

TOMLDecodeError = tomllib.TOMLDecodeError


def loads(text):
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise TOMLDecodeError("nested too deeply") from None


_ESCAPES = {'"': '\\"', "\\": "\\\\"}


def quote(text):
    """`text` as a TOML basic string: `"` and `\\` escaped, control characters
    as \\uXXXX, everything else as it is (UTF-8). CircuitPython's reader of
    settings.toml (os.getenv) takes the same escapes."""
    return '"%s"' % "".join(_ESCAPES.get(c) or ("\\u%04x" % ord(c) if ord(c) < 0x20 or ord(c) == 0x7F else c)
                            for c in text)
