"""Errors of the conversations: something a user can get wrong or run into."""

from __future__ import annotations

from airoboros_bot.config.errors import AiroborosError


class ChatError(AiroborosError):
    """An error of a question, a conversation or a game; its message is meant for the user."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)


class EmptyPrompt(ChatError):
    """The question was empty."""

    def __init__(self) -> None:
        super().__init__("Empty prompt: type a question first.")


class PromptTooLong(ChatError):
    """The prompt cannot fit the model's context window."""
