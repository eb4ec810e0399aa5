"""Commands on a conversation: `/mode`, `/reset`, `/channel-mode`, `/stop` and `/help`.

A thread (or a DM) is one conversation: its owner (who started it) or anyone who may manage
messages there may reset it or switch its mode. In a channel every `/ask` or mention starts a
conversation of its own, so `/reset` there forgets the user's private answers, and the mode new
conversations start with is the channel's, set with `/channel-mode` (Manage Messages; Discord
shows that command to such members only, unless a server admin allows others).
"""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from airoboros_bot.bots.core.service import ChatService
from airoboros_bot.bots.discord import text
from airoboros_bot.bots.discord.access import Place
from airoboros_bot.bots.discord.places import actor, command_place
from airoboros_bot.bots.discord.replies import NO_MENTIONS, reply_ephemeral
from airoboros_bot.bots.discord.running import RunningAnswers
from airoboros_bot.conversations.models import ConversationKey, Mode

MODE_CHOICES = [
    app_commands.Choice(name="history", value="history"),
    app_commands.Choice(name="no-history", value="no-history"),
]


async def shared_conversation(
    service: ChatService, place: Place, user_id: int
) -> ConversationKey | None:
    """The conversation of a thread or a DM, started if it was not (the first person to use
    the bot there owns it; a DM's is its user's); None in a channel, where each question
    starts its own."""
    if place.guild_id is not None and not place.in_thread:
        return None
    await service.begin(place.key, str(user_id))
    return place.key


def _mode_note(mode: Mode) -> str:
    if mode is Mode.HISTORY:
        return "earlier questions and answers are sent with each new question"
    return "each question is answered on its own"


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
    @app_commands.choices(mode=MODE_CHOICES)
    async def mode(
        self, interaction: discord.Interaction, mode: app_commands.Choice[str] | None = None
    ) -> None:
        """`/mode`: show or set history / no-history for this thread's (or DM's) conversation;
        in a channel, show the mode new conversations start with."""
        place = command_place(interaction)
        key = await shared_conversation(self.service, place, interaction.user.id)
        if key is None:
            current = await self.service.channel_mode(place.key)
            note = text.CHANNEL_MODE_NOTE if mode is None else text.MODE_IN_A_CHANNEL
            await reply_ephemeral(interaction, f"Mode here: **{current.value}**. {note}")
            return
        if mode is None:
            current = await self.service.get_mode(key)
            await reply_ephemeral(interaction, f"Mode here: **{current.value}**.")
            return
        chosen = await self.service.set_mode(key, mode.value, by=actor(interaction))
        await interaction.response.send_message(
            f"Mode here is now **{chosen.value}**: {_mode_note(chosen)}.",
            allowed_mentions=NO_MENTIONS,
        )

    @app_commands.command(
        name="channel-mode", description="Set the mode new conversations in this channel start with"
    )
    @app_commands.describe(mode="history: remember the conversation; no-history: each on its own")
    @app_commands.choices(mode=MODE_CHOICES)
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_messages=True)
    async def channel_mode(
        self, interaction: discord.Interaction, mode: app_commands.Choice[str]
    ) -> None:
        """`/channel-mode`: the mode of conversations started here from now on (Manage
        Messages); those already going keep theirs."""
        place = command_place(interaction)
        channel = place.channel_key
        chosen = await self.service.set_channel_mode(channel, mode.value, by=actor(interaction))
        await interaction.response.send_message(
            f"Conversations started in <#{channel.channel}> from now on use **{chosen.value}** "
            f"mode ({_mode_note(chosen)}); those already going keep theirs.",
            allowed_mentions=NO_MENTIONS,
        )

    @app_commands.command(
        name="reset", description="Forget this thread's conversation, or your private answers"
    )
    @app_commands.describe(private="Forget only your private answers here")
    async def reset(self, interaction: discord.Interaction, private: bool = False) -> None:
        """`/reset`: forget a thread's (or DM's) turns, or the user's private ones here (always
        in a channel, whose questions each start their own conversation)."""
        place = command_place(interaction)
        key = await shared_conversation(self.service, place, interaction.user.id)
        if key is None or private:
            mine = place.key.private_for(str(interaction.user.id))
            dropped = await self.service.reset(mine, by=actor(interaction))
            await reply_ephemeral(
                interaction, f"Forgot your private answers here: {dropped} turn(s)."
            )
            return
        dropped = await self.service.reset(key, by=actor(interaction))
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
