"""``python -m airoboros_bot`` runs the command line (the same as ``airoboros-bot``)."""

import sys

from airoboros_bot.bots.cli import main

sys.exit(main())
