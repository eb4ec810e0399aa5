"""Commands on a channel's or thread's conversation: `/mode`, `/reset`, `/stop` and `/help`."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from airoboros_bot.bots.core.service import ChatService
from airoboros_bot.bots.discord import text
from airoboros_bot.bots.discord.places import command_place
from airoboros_bot.bots.discord.replies import NO_MENTIONS, reply_ephemeral
from airoboros_bot.bots.discord.running import RunningAnswers


class ConversationCommands(commands.Cog, name="conversation"):
    """The settings and turns of a conversation, stopping answers, and the help."""

    def __init__(self, service: ChatService, running: RunningAnswers, *, games: bool) -> None:
        self.service = service
        self.running = running
        self.games = games

    @app_commands.command(
        name="mode", description="Show or set whether earlier turns are sent along"
    )
    @app_commands.describe(mode="history: remember the conversation; no-history: each on its own")
    @app_commands.choices(
        mode=[
            app_commands.Choice(name="history", value="history"),
            app_commands.Choice(name="no-history", value="no-history"),
        ]
    )
    async def mode(
        self, interaction: discord.Interaction, mode: app_commands.Choice[str] | None = None
    ) -> None:
        """`/mode`: show or set history / no-history for this channel or thread."""
        place = command_place(interaction)
        if mode is None:
            current = await self.service.get_mode(place.key)
            await reply_ephemeral(interaction, f"Mode here: **{current.value}**.")
            return
        chosen = await self.service.set_mode(place.key, mode.value)
        note = (
            "earlier questions and answers are sent with each new question"
            if chosen.value == "history"
            else "each question is answered on its own"
        )
        await interaction.response.send_message(
            f"Mode here is now **{chosen.value}**: {note}.", allowed_mentions=NO_MENTIONS
        )

    @app_commands.command(
        name="reset", description="Forget this channel's or thread's conversation"
    )
    async def reset(self, interaction: discord.Interaction) -> None:
        """`/reset`: forget this channel's or thread's turns."""
        place = command_place(interaction)
        dropped = await self.service.reset(place.key)
        await interaction.response.send_message(
            f"Conversation reset: {dropped} earlier turn(s) forgotten.",
            allowed_mentions=NO_MENTIONS,
        )

    @app_commands.command(name="stop", description="Stop your answer being written here")
    async def stop(self, interaction: discord.Interaction) -> None:
        """`/stop`: stop the user's answers in this channel or thread."""
        place = command_place(interaction)
        answers = self.running.of_user(place.key, interaction.user.id)
        for answer in answers:
            await self.running.stop(answer)
        await reply_ephemeral(
            interaction,
            f"Stopping {len(answers)} answer(s)."
            if answers
            else "Nothing of yours is being written here.",
        )

    @app_commands.command(name="help", description="What I can do")
    async def help(self, interaction: discord.Interaction) -> None:
        """`/help`: the commands (with the games when they are on), to the user alone."""
        games = f"\n{text.GAMES_HELP}" if self.games else ""
        await reply_ephemeral(interaction, text.HELP + games)
