"""``python -m airoboros_bot.bots`` runs the command line (as ``python -m airoboros_bot``)."""

import sys

from airoboros_bot.bots.cli import main

sys.exit(main())
