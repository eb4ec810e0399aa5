"""Errors raised by the engine; each carries a one-line message fit to show a user."""

from __future__ import annotations

CONVERT_HINT = "convert the model with `airoboros-bot convert`"


class EngineError(Exception):
    """Root of the engine's errors; `user_message` is one line saying what is wrong.

    It defaults to the error's message, which says precisely what is missing or invalid.
    """

    def __init__(self, message: str, *, user_message: str | None = None) -> None:
        super().__init__(message)
        self.user_message: str = user_message or message


class ModelError(EngineError):
    """The model directory is missing, incomplete or cannot be loaded."""
