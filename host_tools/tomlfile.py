"""TOML text to a dict, for the profiles, site files and maps people write.

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
