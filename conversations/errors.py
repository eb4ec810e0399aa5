"""One root error for everything a user can get wrong or run into."""

from __future__ import annotations


class ChatError(Exception):
    """An error with a one-line message meant for the user."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


class EmptyPrompt(ChatError):
    """The question was empty."""

    def __init__(self) -> None:
        super().__init__("Empty prompt: type a question first.")


class PromptTooLong(ChatError):
    """The prompt cannot fit the model's context window."""
