"""`python -m spurlab.cli ...`: the same as the `spurlab` command."""

import sys

from . import main

sys.exit(main())
