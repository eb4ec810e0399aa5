"""The Discord client: its parts put together, start-up (commands synced to Discord), a
shutdown that lets answers finish, and chat messages (questions, posts in context threads).

A thin adapter: every command maps onto `ChatService` (the games onto `GameEngine`, in
`airoboros_bot.bots.discord.games`); rendering (2,000-character pages, about one edit a second) is
`bots.core.render`; the texts are `bots.discord.text`; access rules and payload checks are
`airoboros_bot.bots.discord.access`. Every message goes out with no allowed mentions.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from typing import Any

import discord
from discord import app_commands

from airoboros_bot.bots.core.ratelimit import RateLimiter
from airoboros_bot.bots.core.service import ChatService
from airoboros_bot.bots.discord import text
from airoboros_bot.bots.discord.access import Place, interaction_problem
from airoboros_bot.bots.discord.ask import AskCommands
from airoboros_bot.bots.discord.buttons import ContinueButton, StopButton
from airoboros_bot.bots.discord.commands import BotTree, ConversationCommands, register_commands
from airoboros_bot.bots.discord.context import ContextCommands
from airoboros_bot.bots.discord.core import NO_MENTIONS, role_ids
from airoboros_bot.bots.discord.games import GameCommands, register_game_commands
from airoboros_bot.bots.games import GameEngine
from airoboros_bot.config.settings import DiscordSettings

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 5.0


def _guard_parsers(parsers: dict[str, Callable[[Any], Any]]) -> None:
    """Make gateway events that are malformed, unknown or failing get logged and dropped.

    discord.py runs these parsers in its gateway reader, where an exception would end the
    connection; an interaction payload is checked before discord.py sees it.
    """

    def guard(event: str, parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def guarded(data: Any) -> None:
            if event == "INTERACTION_CREATE":
                problem = interaction_problem(data)
                if problem:
                    log.warning("ignoring a malformed or unknown interaction: %s", problem)
                    return
            try:
                parse(data)
            except Exception:
                log.exception("ignoring a %s event that could not be handled", event)

        return guarded

    for event, parse in list(parsers.items()):
        parsers[event] = guard(event, parse)


class AiroborosBot(AskCommands, ContextCommands, ConversationCommands, GameCommands):
    """The Discord client: commands in `tree`, chat messages in `on_message`; games when it is
    given a `GameEngine`."""

    def __init__(
        self,
        service: ChatService,
        limiter: RateLimiter,
        settings: DiscordSettings,
        games: GameEngine | None = None,
    ) -> None:
        super().__init__(service, limiter, settings)
        self.tree = BotTree(
            self,
            allowed_contexts=app_commands.AppCommandContext(
                guild=True, dm_channel=settings.allow_dms, private_channel=False
            ),
            allowed_installs=app_commands.AppInstallationType(guild=True, user=False),
        )
        self._channel_order: weakref.WeakValueDictionary[int, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._closing = False
        register_commands(self)
        if games is not None:
            self.setup_games(games)
            register_game_commands(self)
        _guard_parsers(self._connection.parsers)

    # -- start-up and shutdown ------------------------------------------------------------------
    async def setup_hook(self) -> None:
        self.add_dynamic_items(StopButton, ContinueButton)
        await self.sync_commands()

    async def sync_commands(self) -> None:
        """Register the commands with Discord: to the configured guilds, else globally."""
        guild_ids = self.settings.guild_ids
        if not guild_ids:
            synced = await self.tree.sync()
            log.info(
                "synced %d commands globally (set AIROBOROS_DISCORD_GUILD_IDS to sync to "
                "guilds instead, which shows changes at once)",
                len(synced),
            )
            return
        done = []
        for guild_id in guild_ids:
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)
            try:
                synced = await self.tree.sync(guild=guild)
            except discord.HTTPException as exc:
                log.error(
                    "could not sync commands to guild %s (%s %s): is the bot in it, invited "
                    "with the applications.commands scope?",
                    guild_id,
                    exc.status,
                    exc.text,
                )
                continue
            done.append(guild_id)
        log.info(
            "synced %d commands to %d of %d configured guild(s) %s (AIROBOROS_DISCORD_GUILD_IDS)",
            len(self.tree.get_commands()),
            len(done),
            len(guild_ids),
            ", ".join(map(str, done)) or "-",
        )

    async def on_ready(self) -> None:
        log.info("connected to Discord as %s in %d guild(s)", self.user, len(self.guilds))
        await self.resume_games()

    async def help_command(self, interaction: discord.Interaction) -> None:
        """`/help`: the commands (with the games when they are on), to the user alone."""
        games = f"\n{text.GAMES_HELP}" if self.games is not None else ""
        await self.reply_ephemeral(interaction, text.HELP + games)

    async def close(self) -> None:
        """Stop the game loops (the games stay in Redis), let running answers finish briefly,
        stop the rest, then disconnect."""
        if not self._closing:
            self._closing = True
            if self.games is not None:
                await self.games.close()
            if not await self.running.wait_idle(DRAIN_TIMEOUT_S):
                for answer in self.running.all():
                    await self.stop_answer(answer)
                await self.running.wait_idle(2.0)
        await super().close()

    # -- chat messages --------------------------------------------------------------------------
    async def on_message(self, message: discord.Message) -> None:
        """Game answers and trivia-channel posts, questions (mentions, DMs, chat threads) and
        posts in context threads."""
        if message.author.bot or message.webhook_id or self.user is None:
            return
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return
        # Messages of one channel are handled in the order they were posted (context blocks
        # keep that order, the first right answer wins); replying happens outside the lock.
        order = self._channel_order.setdefault(message.channel.id, asyncio.Lock())
        async with order:
            place = await self.message_place(message)
            if not await self._may_use(message, place):
                return
            game = await self.game_message(message, place)
            question = None if game is not None else await self._question_in(message, place)
        if game is not None:
            await game()
        elif question is not None:
            await self.answer_message(message, place, question)

    async def _may_use(self, message: discord.Message, place: Place) -> bool:
        """Whether the author may use the bot here (a refused DM gets told why)."""
        reason = self.access.refusal(place, role_ids(message.author))
        if reason and place.guild_id is None:
            await message.reply(reason, mention_author=False, allowed_mentions=NO_MENTIONS)
        return reason is None

    async def _question_in(self, message: discord.Message, place: Place) -> str | None:
        """Store context posts; return the question a message asks (None if it asks none)."""
        assert self.user is not None
        mentioned = any(user.id == self.user.id for user in message.mentions)
        if place.guild_id is None or mentioned:
            return text.strip_mention(message.content, self.user.id)
        if not place.in_thread:
            return None
        if await self.service.context_title(place.key) is not None:
            await self.context_message(message, place.key)
            return None
        if await self.is_chat_thread(place.key):
            return message.content.strip()
        return None

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        if interaction.type is discord.InteractionType.component:
            custom_id = str((interaction.data or {}).get("custom_id", ""))
            if not custom_id.startswith("airoboros:"):
                log.warning("ignoring a component this bot did not make: %r", custom_id[:100])
