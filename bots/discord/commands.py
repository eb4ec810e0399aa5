"""The bot's slash commands and message menu: the command tree (access check and error replies
for every command), their registration, and the commands on a conversation's settings
(`/mode`, `/reset`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from airoboros_bot.bots.discord.core import NO_MENTIONS, DiscordCore
from airoboros_bot.conversations.errors import ChatError
from airoboros_bot.engine.errors import EngineError

if TYPE_CHECKING:
    from airoboros_bot.bots.discord.client import AiroborosBot

log = logging.getLogger(__name__)


class BotTree(app_commands.CommandTree):
    """Applies the access rules to every command and answers every failure ephemerally."""

    client: DiscordCore

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        reason = self.client.refusal(interaction)
        if reason:
            log.info(
                "refused %s for user %s: %s", _command_name(interaction), _uid(interaction), reason
            )
            await self.client.reply_ephemeral(interaction, reason)
            return False
        return True

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError, /
    ) -> None:
        if isinstance(error, app_commands.CommandNotFound):
            log.warning("ignoring unknown command /%s (commands may still be syncing)", error.name)
            message = f"I don't know `/{error.name}` (my commands may be updating): see `/help`."
        elif isinstance(error, app_commands.TransformerError):
            log.warning("ignoring a command with a bad option value: %s", error)
            message = "That command came with an option value I can't read: try again."
        else:
            original = getattr(error, "original", error)
            if isinstance(original, ChatError | EngineError):
                message = original.user_message
            else:
                log.error("command %s failed", _command_name(interaction), exc_info=error)
                message = "Something went wrong on my side (it is logged): try again."
        await self.client.reply_ephemeral(interaction, message)


def _command_name(interaction: discord.Interaction) -> str:
    command = interaction.command
    return f"/{command.qualified_name}" if command else "an interaction"


def _uid(interaction: discord.Interaction) -> int:
    return interaction.user.id if interaction.user else 0


class ConversationCommands(DiscordCore):
    """`/mode` and `/reset`: the settings and turns of a channel's or thread's conversation."""

    async def mode_command(self, interaction: discord.Interaction, mode: str | None) -> None:
        """`/mode`: show or set history / no-history for this channel or thread."""
        place = self.checked_place(interaction)
        if mode is None:
            current = await self.service.get_mode(place.key)
            await self.reply_ephemeral(interaction, f"Mode here: **{current.value}**.")
            return
        chosen = await self.service.set_mode(place.key, mode)
        note = (
            "earlier questions and answers are sent with each new question"
            if chosen.value == "history"
            else "each question is answered on its own"
        )
        await interaction.response.send_message(
            f"Mode here is now **{chosen.value}**: {note}.", allowed_mentions=NO_MENTIONS
        )

    async def reset_command(self, interaction: discord.Interaction) -> None:
        """`/reset`: forget this channel's or thread's turns."""
        place = self.checked_place(interaction)
        dropped = await self.service.reset(place.key)
        await interaction.response.send_message(
            f"Conversation reset: {dropped} earlier turn(s) forgotten.",
            allowed_mentions=NO_MENTIONS,
        )


Handler = Callable[[discord.Interaction], Awaitable[None]]


def _add_plain(
    parent: app_commands.CommandTree | app_commands.Group,
    name: str,
    description: str,
    handler: Handler,
) -> None:
    """Register a command without options that hands the interaction to ``handler``."""

    async def command(interaction: discord.Interaction) -> None:
        await handler(interaction)

    parent.command(name=name, description=description)(command)


def register_commands(bot: AiroborosBot) -> None:
    """The slash commands and the message menu; each delegates to a method of ``bot``."""
    tree = bot.tree

    @tree.command(name="ask", description="Ask the assistant; the answer streams in")
    @app_commands.describe(question="Your question", private="Only you see the answer")
    async def ask(interaction: discord.Interaction, question: str, private: bool = False) -> None:
        await bot.ask_command(interaction, question, private)

    context = app_commands.Group(name="context", description="Document conversations in threads")

    @context.command(name="new", description="Open a thread whose messages and files are context")
    @app_commands.describe(title="Name of the thread")
    async def context_new(
        interaction: discord.Interaction, title: app_commands.Range[str, 1, 100] | None = None
    ) -> None:
        await bot.context_new(interaction, title)

    _add_plain(context, "list", "The context blocks and how much window they use", bot.context_list)
    _add_plain(context, "clear", "Remove the context blocks", bot.context_clear)
    tree.add_command(context)

    @tree.context_menu(name="Add as context")
    async def add_as_context(interaction: discord.Interaction, message: discord.Message) -> None:
        await bot.add_as_context(interaction, message)

    @tree.command(name="mode", description="Show or set whether earlier turns are sent along")
    @app_commands.describe(mode="history: remember the conversation; no-history: each on its own")
    @app_commands.choices(
        mode=[
            app_commands.Choice(name="history", value="history"),
            app_commands.Choice(name="no-history", value="no-history"),
        ]
    )
    async def mode(
        interaction: discord.Interaction, mode: app_commands.Choice[str] | None = None
    ) -> None:
        await bot.mode_command(interaction, mode.value if mode else None)

    _add_plain(tree, "reset", "Forget this channel's or thread's conversation", bot.reset_command)
    _add_plain(tree, "stop", "Stop your answer being written here", bot.stop_command)
    _add_plain(tree, "help", "What I can do", bot.help_command)
