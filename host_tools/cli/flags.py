"""Messages of the host tools' API name a parameter between backticks
(`baud`, `connect_attempts`); on the command line it is a flag (--baud,
--connect-attempts), and `flags` says so."""

import re

# Parameters whose flag is not their own name with '-' for '_'.
_FLAG = {"stale_s": "--stale", "duration_s": "--duration"}
_PARAM = re.compile(r"`([a-z][a-z_]*)`")


def flags(text):
    """`text` (an API message) with each `parameter` written as its flag."""
    return _PARAM.sub(lambda m: _FLAG.get(m.group(1), "--" + m.group(1).replace("_", "-")), str(text))
