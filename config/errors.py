"""The one root of every error a user is shown: `AiroborosError`, whose `user_message` is one
line fit to show. The engine's (`EngineError`) and the conversations' (`ChatError`) errors
subclass it; it lives in `config`, the one room both may import, so an adapter catches a single
class wherever an answer, a command or a game can fail."""

from __future__ import annotations


class AiroborosError(Exception):
    """An error with a one-line message meant for the user.

    ``user_message`` defaults to the error's message, which then says precisely what is wrong.
    """

    def __init__(self, message: str, *, user_message: str | None = None) -> None:
        super().__init__(message)
        self.user_message: str = user_message or message
