"""The environment of a subprocess under test: ours without any ``AIROBOROS_*`` setting of the
developer's shell or `.env`, plus the settings the test gives."""

from __future__ import annotations

import os

PREFIX = "AIROBOROS_"


def clean_env(**settings: object) -> dict[str, str]:
    """This process's environment with only ``settings`` as AIROBOROS settings; names are
    given without the prefix (``clean_env(REDIS_URL=url)`` sets ``AIROBOROS_REDIS_URL``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    env.update({PREFIX + name: str(value) for name, value in settings.items()})
    return env
