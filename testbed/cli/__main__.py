"""`python -m testbed.cli` runs the testbed command."""

import sys

from testbed.cli import main

sys.exit(main())
