"""`python -m services.cli` runs the `cmsrag` command."""

import sys

from services.cli import main

sys.exit(main())
