"""Errors raised by the engine; each carries a one-line message fit to show a user."""

from __future__ import annotations

from airoboros_bot.config.errors import AiroborosError

CONVERT_HINT = "convert the model with `airoboros-bot convert`"


class EngineError(AiroborosError):
    """Root of the engine's errors; `user_message` is one line saying what is wrong.

    It defaults to the error's message, which says precisely what is missing or invalid.
    """


class ModelError(EngineError):
    """The model directory is missing, incomplete or cannot be loaded."""
