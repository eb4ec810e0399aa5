"""Trivia and word games on Discord: `/trivia start|stop|leaderboard`, `/anagram`, `/words`,
answers posted in a channel or thread with a game, and trivia channels
(``AIROBOROS_DISCORD_TRIVIA_CHANNEL_IDS``), where posting ``trivia``, ``anagram`` or ``words``
starts a round and mentions are not answered by the model.

The games themselves are `bots.games.GameEngine`; this module maps Discord onto it. Answers get
a reaction (✅ right, ❌ wrong, 🔁 a word someone already found) and a short reply only for notes
such as "too late" or "too many answers", which the engine gives once per player.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from redis.exceptions import RedisError

from airoboros_bot.bots.discord import text
from airoboros_bot.bots.discord.access import Place
from airoboros_bot.bots.discord.core import NO_MENTIONS, DiscordCore
from airoboros_bot.bots.discord.game_output import DiscordGameOutput
from airoboros_bot.bots.discord.game_view import leaderboard_embed, reaction, reply_note
from airoboros_bot.bots.games import (
    AnswerOutcome,
    Commands,
    GameEngine,
    GameError,
    GameKind,
    MessageKind,
)
from airoboros_bot.bots.games.engine import MAX_TOPIC_CHARS
from airoboros_bot.conversations.errors import ChatError

if TYPE_CHECKING:
    from airoboros_bot.bots.discord.client import AiroborosBot

log = logging.getLogger(__name__)

DISCORD_GAME_COMMANDS = Commands(
    trivia="/trivia start",
    stop="/trivia stop",
    leaderboard="/trivia leaderboard",
    anagram="/anagram",
    words="/words",
)
MAX_ROUNDS_OPTION = 1000  # the settings' own maximum (AIROBOROS_GAMES_MAX_ROUNDS) is checked too
MAX_PREFIX_CHARS = 10
ON_DEMAND_ROUNDS = 1  # a game started by a post in a trivia channel, unless it says how many

FollowUp = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class GameRequest:
    """A game asked for by a post in a trivia channel."""

    kind: GameKind
    topic: str = ""
    prefix: str = ""
    rounds: int | None = None


def parse_trigger(content: str) -> GameRequest | None:
    """``trivia [topic] [rounds]``, ``anagram [rounds]`` or ``words [prefix] [rounds]`` (any
    case); None for any other post."""
    words = content.split()
    if not words:
        return None
    try:
        kind = GameKind(words[0].lower())
    except ValueError:
        return None
    rest = words[1:]
    rounds = int(rest.pop()) if rest and rest[-1].isdecimal() and len(rest[-1]) <= 4 else None
    if (kind is GameKind.ANAGRAM and rest) or (kind is GameKind.WORDS and len(rest) > 1):
        return None
    if kind is GameKind.TRIVIA:
        return GameRequest(kind, topic=" ".join(rest), rounds=rounds)
    return GameRequest(kind, prefix=rest[0] if rest else "", rounds=rounds)


async def _nothing() -> None:
    """A message that belongs to the games but needs no answer."""


class GameCommands(DiscordCore):
    """The game commands, answers and trivia channels of the bot (when it has an engine)."""

    games: GameEngine | None = None
    game_output: DiscordGameOutput | None = None
    _games_resumed = False

    def setup_games(self, engine: GameEngine) -> None:
        """Play ``engine``'s games here: its messages are posted through this client."""
        self.game_output = DiscordGameOutput(self)
        engine.attach(self.game_output, DISCORD_GAME_COMMANDS)
        self.games = engine

    def _engine(self) -> tuple[GameEngine, DiscordGameOutput]:
        if self.games is None or self.game_output is None:
            raise ChatError("Games are not enabled in this bot.")
        return self.games, self.game_output

    def is_trivia_channel(self, place: Place) -> bool:
        """Whether ``place`` is a configured trivia channel (its threads are not)."""
        return not place.in_thread and place.channel_id in self.settings.trivia_channel_ids

    async def resume_games(self) -> None:
        """Once connected: go on with every Discord game stored in Redis (once per process)."""
        if self.games is None or self._games_resumed:
            return
        self._games_resumed = True
        count = await self.games.resume_all("discord")
        if count:
            log.info("resumed %d game(s) that were running", count)

    # -- commands -------------------------------------------------------------------------------
    async def start_game_command(
        self,
        interaction: discord.Interaction,
        kind: GameKind,
        *,
        topic: str = "",
        prefix: str = "",
        rounds: int | None = None,
    ) -> None:
        """`/trivia start`, `/anagram`, `/words`: the announcement answers the command."""
        engine, output = self._engine()
        place = self.checked_place(interaction)
        refusal = await self.admit(interaction.user.id, need_engine=False)
        if refusal:
            await self.reply_ephemeral(interaction, refusal)
            return
        with output.respond_with(place.key, MessageKind.START, interaction):
            await engine.start(
                place.key,
                kind,
                topic=topic,
                prefix=prefix,
                rounds=rounds,
                user_id=str(interaction.user.id),
                user_name=interaction.user.display_name,
            )
        if not interaction.response.is_done():
            await self.reply_ephemeral(interaction, "The game has started.")

    async def stop_game_command(self, interaction: discord.Interaction) -> None:
        """`/trivia stop`: the reveal and final scores answer the command."""
        engine, output = self._engine()
        place = self.checked_place(interaction)
        with output.respond_with(place.key, MessageKind.SCORES, interaction):
            await engine.stop(place.key, user_name=interaction.user.display_name)
        if not interaction.response.is_done():
            await self.reply_ephemeral(interaction, "The game is stopped.")

    async def leaderboard_command(self, interaction: discord.Interaction, scope: str) -> None:
        """`/trivia leaderboard [channel|server]`: all-time scores, posted in the channel."""
        engine, _ = self._engine()
        place = self.checked_place(interaction)
        if scope == "server" and place.guild_id is None:
            raise GameError("Server leaderboards are for servers: this one is per channel.")
        board = await engine.leaderboard(place.key, "workspace" if scope == "server" else "channel")
        where = "server" if scope == "server" else "thread" if place.in_thread else "channel"
        embed = leaderboard_embed(f"Top players in this {where} (all time)", board.leaderboard)
        await interaction.response.send_message(embed=embed, allowed_mentions=NO_MENTIONS)

    # -- messages -------------------------------------------------------------------------------
    async def game_message(self, message: discord.Message, place: Place) -> FollowUp | None:
        """What to do with a chat message that belongs to the games (an answer, or a post in a
        trivia channel); None: it is ordinary chat. Runs in the channel's message order; the
        follow-up (reactions, replies, starting a game) runs after."""
        if self.games is None or self.user is None:
            return None
        content = text.strip_mention(message.content, self.user.id)
        if content:
            try:
                outcome = await self.games.on_message(
                    place.key, str(message.author.id), message.author.display_name, content
                )
            except (RedisError, OSError) as exc:
                log.warning("cannot check a message for a game: %s", type(exc).__name__)
                return None
            if outcome.handled:
                return functools.partial(self._show_outcome, message, outcome)
        if not self.is_trivia_channel(place):
            return None
        request = parse_trigger(content)
        if request is not None:
            return functools.partial(self._start_from_message, message, place, request)
        if any(user.id == self.user.id for user in message.mentions):
            return functools.partial(self._reply, message, text.TRIVIA_CHANNEL_NOTE)
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
            await self._reply(message, note)

    async def _start_from_message(
        self, message: discord.Message, place: Place, request: GameRequest
    ) -> None:
        engine, _ = self._engine()
        refusal = await self.admit(message.author.id, need_engine=False)
        if refusal:
            await self._reply(message, refusal)
            return
        try:
            await engine.start(
                place.key,
                request.kind,
                topic=request.topic,
                prefix=request.prefix,
                rounds=request.rounds or ON_DEMAND_ROUNDS,
                user_id=str(message.author.id),
                user_name=message.author.display_name,
            )
        except ChatError as exc:
            await self._reply(message, exc.user_message)

    async def _reply(self, message: discord.Message, note: str) -> None:
        with contextlib.suppress(discord.HTTPException):
            await message.reply(
                note[: text.MESSAGE_LIMIT], mention_author=False, allowed_mentions=NO_MENTIONS
            )


def register_game_commands(bot: AiroborosBot) -> None:
    """`/trivia start|stop|leaderboard`, `/anagram` and `/words` (options on the subcommands:
    Discord allows no options beside subcommands)."""
    trivia = app_commands.Group(name="trivia", description="Trivia games in this channel")

    @trivia.command(name="start", description="Start a trivia game here: answer in the channel")
    @app_commands.describe(
        topic="What the questions are about (default: anything)",
        rounds="How many questions",
    )
    async def trivia_start(
        interaction: discord.Interaction,
        topic: app_commands.Range[str, 1, MAX_TOPIC_CHARS] | None = None,
        rounds: app_commands.Range[int, 1, MAX_ROUNDS_OPTION] | None = None,
    ) -> None:
        await bot.start_game_command(interaction, GameKind.TRIVIA, topic=topic or "", rounds=rounds)

    @trivia.command(name="stop", description="Stop the game here and reveal the answer")
    async def trivia_stop(interaction: discord.Interaction) -> None:
        await bot.stop_game_command(interaction)

    @trivia.command(name="leaderboard", description="All-time scores of this channel or server")
    @app_commands.describe(scope="Whose scores: this channel's (default) or the whole server's")
    @app_commands.choices(
        scope=[
            app_commands.Choice(name="channel", value="channel"),
            app_commands.Choice(name="server", value="server"),
        ]
    )
    async def trivia_leaderboard(
        interaction: discord.Interaction, scope: app_commands.Choice[str] | None = None
    ) -> None:
        await bot.leaderboard_command(interaction, scope.value if scope else "channel")

    bot.tree.add_command(trivia)

    @bot.tree.command(name="anagram", description="Play anagram riddles here")
    @app_commands.describe(rounds="How many riddles")
    async def anagram(
        interaction: discord.Interaction,
        rounds: app_commands.Range[int, 1, MAX_ROUNDS_OPTION] | None = None,
    ) -> None:
        await bot.start_game_command(interaction, GameKind.ANAGRAM, rounds=rounds)

    @bot.tree.command(name="words", description="Find words that start with a prefix; each scores")
    @app_commands.describe(
        prefix="What the words start with, e.g. en (default: a random one)",
        rounds="How many rounds (default: one)",
    )
    async def words(
        interaction: discord.Interaction,
        prefix: app_commands.Range[str, 1, MAX_PREFIX_CHARS] | None = None,
        rounds: app_commands.Range[int, 1, MAX_ROUNDS_OPTION] | None = None,
    ) -> None:
        await bot.start_game_command(
            interaction, GameKind.WORDS, prefix=prefix or "", rounds=rounds
        )
