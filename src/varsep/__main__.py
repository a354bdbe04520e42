"""`python -m varsep` runs the command line."""

import sys

from varsep.cli import main

sys.exit(main())
