"""``python -m bots`` runs the command line."""

import sys

from bots.cli import main

sys.exit(main())
