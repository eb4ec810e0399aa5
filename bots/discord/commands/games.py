"""Trivia and word games on Discord: `/trivia start|stop|leaderboard`, `/anagram`, `/words`,
answers posted in a channel or thread with a game, and trivia channels
(``AIROBOROS_DISCORD_TRIVIA_CHANNEL_IDS``), where posting ``trivia``, ``anagram`` or ``words``
starts a round and mentions are not answered by the model.

The games themselves are `bots.games.GameEngine`; this module maps Discord onto it. Answers get
a reaction (✅ right, ❌ wrong, 🔁 a word someone already found) and a short reply only for notes
such as "too late" or "too many answers", which the engine gives once per player.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Collection

import discord
from discord import app_commands
from discord.ext import commands
from redis.exceptions import RedisError

from airoboros_bot.bots.discord import text
from airoboros_bot.bots.discord.access import Place
from airoboros_bot.bots.discord.admission import Admission
from airoboros_bot.bots.discord.game_output import DiscordGameOutput
from airoboros_bot.bots.discord.game_view import leaderboard_embed, reaction, reply_note
from airoboros_bot.bots.discord.places import command_place
from airoboros_bot.bots.discord.replies import NO_MENTIONS, reply_ephemeral, reply_to
from airoboros_bot.bots.games import (
    AnswerOutcome,
    Commands,
    GameEngine,
    GameError,
    GameKind,
    GameUsage,
    MessageKind,
    StartGame,
    parse_post,
)
from airoboros_bot.bots.games.engine import MAX_TOPIC_CHARS
from airoboros_bot.conversations.errors import ChatError

log = logging.getLogger(__name__)

DISCORD_GAME_COMMANDS = Commands(
    trivia="/trivia start",
    stop="/trivia stop",
    leaderboard="/trivia leaderboard",
    anagram="/anagram",
    words="/words",
)
DISCORD_GAME_USAGE = GameUsage.of(DISCORD_GAME_COMMANDS, "/trivia")
MAX_ROUNDS_OPTION = 1000  # the settings' own maximum (AIROBOROS_GAMES_MAX_ROUNDS) is checked too
MAX_PREFIX_CHARS = 10

FollowUp = Callable[[], Awaitable[None]]
Rounds = app_commands.Range[int, 1, MAX_ROUNDS_OPTION]


def trivia_post(content: str) -> StartGame | None:
    """The game a post in a trivia channel asks for (None: none, or not one that fits: posts
    there are not answered, so a malformed request is left alone like any other chat)."""
    try:
        return parse_post(content, DISCORD_GAME_USAGE)
    except GameError:
        return None


async def _nothing() -> None:
    """A message that belongs to the games but needs no answer."""


class GameCommands(commands.Cog, name="games"):
    """The game commands, answers and trivia channels of the bot; ``engine``'s messages are
    posted through ``output``."""

    trivia = app_commands.Group(name="trivia", description="Trivia games in this channel")

    def __init__(
        self,
        engine: GameEngine,
        output: DiscordGameOutput,
        admission: Admission,
        trivia_channel_ids: Collection[int],
    ) -> None:
        self.engine = engine
        self.output = output
        self.admission = admission
        self.trivia_channel_ids = frozenset(trivia_channel_ids)
        self._resumed = False
        engine.attach(output, DISCORD_GAME_COMMANDS)

    async def resume(self) -> None:
        """Once connected: go on with every Discord game stored in Redis (once per process)."""
        if self._resumed:
            return
        self._resumed = True
        count = await self.engine.resume_all("discord")
        if count:
            log.info("resumed %d game(s) that were running", count)

    async def close(self) -> None:
        """Stop the game loops (the games stay in Redis)."""
        await self.engine.close()

    # -- commands -------------------------------------------------------------------------------
    @trivia.command(name="start", description="Start a trivia game here: answer in the channel")
    @app_commands.describe(
        topic="What the questions are about (default: anything)",
        rounds="How many questions",
    )
    async def trivia_start(
        self,
        interaction: discord.Interaction,
        topic: app_commands.Range[str, 1, MAX_TOPIC_CHARS] | None = None,
        rounds: Rounds | None = None,
    ) -> None:
        await self._start(interaction, GameKind.TRIVIA, topic=topic or "", rounds=rounds)

    @trivia.command(name="stop", description="Stop the game here and reveal the answer")
    async def trivia_stop(self, interaction: discord.Interaction) -> None:
        """`/trivia stop`: the reveal and final scores answer the command."""
        place = command_place(interaction)
        with self.output.respond_with(place.key, MessageKind.SCORES, interaction):
            await self.engine.stop(place.key, user_name=interaction.user.display_name)
        if not interaction.response.is_done():
            await reply_ephemeral(interaction, "The game is stopped.")

    @trivia.command(name="leaderboard", description="All-time scores of this channel or server")
    @app_commands.describe(scope="Whose scores: this channel's (default) or the whole server's")
    @app_commands.choices(
        scope=[
            app_commands.Choice(name="channel", value="channel"),
            app_commands.Choice(name="server", value="server"),
        ]
    )
    async def trivia_leaderboard(
        self, interaction: discord.Interaction, scope: app_commands.Choice[str] | None = None
    ) -> None:
        """`/trivia leaderboard [channel|server]`: all-time scores, posted in the channel."""
        server = scope is not None and scope.value == "server"
        place = command_place(interaction)
        if server and place.guild_id is None:
            raise GameError("Server leaderboards are for servers: this one is per channel.")
        board = await self.engine.leaderboard(place.key, "workspace" if server else "channel")
        where = "server" if server else "thread" if place.in_thread else "channel"
        embed = leaderboard_embed(f"Top players in this {where} (all time)", board.leaderboard)
        await interaction.response.send_message(embed=embed, allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="anagram", description="Play anagram riddles here")
    @app_commands.describe(rounds="How many riddles")
    async def anagram(self, interaction: discord.Interaction, rounds: Rounds | None = None) -> None:
        await self._start(interaction, GameKind.ANAGRAM, rounds=rounds)

    @app_commands.command(
        name="words", description="Find words that start with a prefix; each scores"
    )
    @app_commands.describe(
        prefix="What the words start with, e.g. en (default: a random one)",
        rounds="How many rounds (default: one)",
    )
    async def words(
        self,
        interaction: discord.Interaction,
        prefix: app_commands.Range[str, 1, MAX_PREFIX_CHARS] | None = None,
        rounds: Rounds | None = None,
    ) -> None:
        await self._start(interaction, GameKind.WORDS, prefix=prefix or "", rounds=rounds)

    async def _start(
        self,
        interaction: discord.Interaction,
        kind: GameKind,
        *,
        topic: str = "",
        prefix: str = "",
        rounds: int | None = None,
    ) -> None:
        """`/trivia start`, `/anagram`, `/words`: the announcement answers the command."""
        place = command_place(interaction)
        refusal = await self.admission.refusal(interaction.user.id, need_engine=False)
        if refusal:
            await reply_ephemeral(interaction, refusal)
            return
        with self.output.respond_with(place.key, MessageKind.START, interaction):
            await self.engine.start(
                place.key,
                kind,
                topic=topic,
                prefix=prefix,
                rounds=rounds,
                user_id=str(interaction.user.id),
                user_name=interaction.user.display_name,
            )
        if not interaction.response.is_done():
            await reply_ephemeral(interaction, "The game has started.")

    # -- messages -------------------------------------------------------------------------------
    def is_trivia_channel(self, place: Place) -> bool:
        """Whether ``place`` is a configured trivia channel (its threads are not)."""
        return not place.in_thread and place.channel_id in self.trivia_channel_ids

    async def game_message(
        self, message: discord.Message, place: Place, bot_id: int
    ) -> FollowUp | None:
        """What to do with a chat message that belongs to the games (an answer, or a post in a
        trivia channel); None: it is ordinary chat. Runs in the channel's message order; the
        follow-up (reactions, replies, starting a game) runs after."""
        content = text.strip_mention(message.content, bot_id)
        if content:
            try:
                outcome = await self.engine.on_message(
                    place.key, str(message.author.id), message.author.display_name, content
                )
            except (RedisError, OSError) as exc:
                log.warning("cannot check a message for a game: %s", type(exc).__name__)
                return None
            if outcome.handled:
                return functools.partial(self._show_outcome, message, outcome)
        if not self.is_trivia_channel(place):
            return None
        request = trivia_post(content)
        if request is not None:
            return functools.partial(self._start_from_message, message, place, request)
        if any(user.id == bot_id for user in message.mentions):
            return functools.partial(reply_to, message, text.TRIVIA_CHANNEL_NOTE)
        return _nothing

    async def _show_outcome(self, message: discord.Message, outcome: AnswerOutcome) -> None:
        emoji = reaction(outcome)
        if emoji:
            try:
                await message.add_reaction(emoji)
            except discord.HTTPException as exc:
                log.debug("could not react to an answer: %s %s", exc.status, exc.text)
        note = reply_note(outcome)
        if note:
            await reply_to(message, note)

    async def _start_from_message(
        self, message: discord.Message, place: Place, request: StartGame
    ) -> None:
        refusal = await self.admission.refusal(message.author.id, need_engine=False)
        if refusal:
            await reply_to(message, refusal)
            return
        try:
            await self.engine.start(
                place.key,
                request.kind,
                topic=request.topic,
                prefix=request.prefix,
                rounds=request.rounds,
                user_id=str(message.author.id),
                user_name=message.author.display_name,
            )
        except ChatError as exc:
            await reply_to(message, exc.user_message)
