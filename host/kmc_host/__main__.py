"""`python -m kmc_host ...`: the `kmc` command (kmc_host.cli)."""

import sys

from .cli import main

sys.exit(main())
