"""`python -m host_tools.cli ...`: the same as `citynode ...`."""

import sys

from host_tools.cli import main

sys.exit(main())
