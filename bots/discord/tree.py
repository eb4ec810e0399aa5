"""The bot's command tree: the access rules checked before every command, and every failure
answered to the user alone (an `AiroborosError` with its message, anything else with
a short apology and a logged traceback)."""

from __future__ import annotations

import logging

import discord
from discord import app_commands

from airoboros_bot.bots.discord.access import AccessRules
from airoboros_bot.bots.discord.places import interaction_refusal
from airoboros_bot.bots.discord.replies import reply_ephemeral
from airoboros_bot.config.errors import AiroborosError

log = logging.getLogger(__name__)


class BotTree(app_commands.CommandTree):
    """Applies the access rules to every command and answers every failure ephemerally."""

    access = AccessRules()  # the bot sets its settings' rules

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        reason = interaction_refusal(interaction, self.access)
        if reason:
            log.info(
                "refused %s for user %s: %s", _command_name(interaction), _uid(interaction), reason
            )
            await reply_ephemeral(interaction, reason)
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
            if isinstance(original, AiroborosError):
                message = original.user_message
            else:
                log.error("command %s failed", _command_name(interaction), exc_info=error)
                message = "Something went wrong on my side (it is logged): try again."
        await reply_ephemeral(interaction, message)


def _command_name(interaction: discord.Interaction) -> str:
    command = interaction.command
    return f"/{command.qualified_name}" if command else "an interaction"


def _uid(interaction: discord.Interaction) -> int:
    return interaction.user.id if interaction.user else 0
