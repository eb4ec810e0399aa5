"""The Discord bot: a `commands.Bot` whose commands are cogs (`bots.discord.commands`), its
start-up (commands synced to Discord), chat messages routed to the cogs in each channel's order,
a shutdown that lets answers finish, and `run_discord`, the `airoboros-bot discord` command.

A thin adapter: every command maps onto `ChatService` (the games onto `GameEngine`); rendering
(2,000-character pages, about one edit a second) is `bots.core.render`; the texts are
`bots.discord.text`; access rules and payload checks are `bots.discord.access`. Every message
goes out with no allowed mentions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import weakref
from collections.abc import Callable
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from airoboros_bot.bots.core.alerts import EngineAlerts
from airoboros_bot.bots.core.ratelimit import RateLimiter
from airoboros_bot.bots.core.runtime import Runtime
from airoboros_bot.bots.core.service import ChatService
from airoboros_bot.bots.discord import text
from airoboros_bot.bots.discord.access import (
    PLATFORM,
    AccessRules,
    Place,
    interaction_problem,
    role_ids,
)
from airoboros_bot.bots.discord.admission import Admission
from airoboros_bot.bots.discord.buttons import ContextChoiceButton, ContinueButton, StopButton
from airoboros_bot.bots.discord.commands.ask import AskCommands, Question
from airoboros_bot.bots.discord.commands.context import ContextCommands
from airoboros_bot.bots.discord.commands.conversation import ConversationCommands
from airoboros_bot.bots.discord.commands.games import GameCommands
from airoboros_bot.bots.discord.game_output import DiscordGameOutput
from airoboros_bot.bots.discord.places import Places
from airoboros_bot.bots.discord.replies import NO_MENTIONS, reply_to
from airoboros_bot.bots.discord.running import RunningAnswers
from airoboros_bot.bots.discord.tree import BotTree
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


def _intents() -> discord.Intents:
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.dm_messages = True
    intents.message_content = True
    return intents


class AiroborosBot(commands.Bot):
    """The Discord bot: slash commands in cogs, chat messages in `on_message`; the games when
    it is given a `GameEngine`. Application commands only: no prefix commands are processed."""

    tree: BotTree

    def __init__(
        self,
        service: ChatService,
        limiter: RateLimiter,
        settings: DiscordSettings,
        games: GameEngine | None = None,
    ) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            help_command=None,
            tree_cls=BotTree,
            intents=_intents(),
            allowed_mentions=NO_MENTIONS,
            chunk_guilds_at_startup=False,
            allowed_contexts=app_commands.AppCommandContext(
                guild=True, dm_channel=settings.allow_dms, private_channel=False
            ),
            allowed_installs=app_commands.AppInstallationType(guild=True, user=False),
        )
        self.service = service
        self.settings = settings
        self.access = self.tree.access = AccessRules.from_settings(settings)
        self.running = RunningAnswers(service.cancel)
        self.places = Places(self)
        alerts = EngineAlerts(service.store.redis, service.store.keys, PLATFORM)
        admission = Admission(service.engine, limiter, alerts)
        self.ask = AskCommands(service, admission, self.running, self.places, self.access)
        self.context = ContextCommands(service, self.places, settings.max_attachment_bytes)
        self.conversation = ConversationCommands(service, self.running, games=games is not None)
        self.games = (
            None
            if games is None
            else GameCommands(
                games, DiscordGameOutput(self), admission, settings.trivia_channel_ids
            )
        )
        self._channel_order: weakref.WeakValueDictionary[int, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._closing = False
        _guard_parsers(self._connection.parsers)

    # -- start-up and shutdown ------------------------------------------------------------------
    async def setup_hook(self) -> None:
        for cog in (self.ask, self.context, self.conversation, self.games):
            if cog is not None:
                await self.add_cog(cog)
        self.tree.add_command(self.context.menu)
        self.add_dynamic_items(StopButton, ContinueButton, ContextChoiceButton)
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
        if self.games is not None:
            await self.games.resume()

    async def close(self) -> None:
        """Stop the game loops (the games stay in Redis), let running answers finish briefly,
        stop the rest, then disconnect."""
        if not self._closing:
            self._closing = True
            if self.games is not None:
                await self.games.close()
            if not await self.running.wait_idle(DRAIN_TIMEOUT_S):
                for answer in self.running.all():
                    await self.running.stop(answer)
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
            place = await self.places.of_message(message)
            if not await self._may_use(message, place):
                return
            game = None
            if self.games is not None:
                game = await self.games.game_message(message, place, self.user.id)
            question = None if game is not None else await self._question_in(message, place)
        if game is not None:
            await game()
        elif question is not None:
            await self.ask.answer_message(message, place, question)

    async def _may_use(self, message: discord.Message, place: Place) -> bool:
        """Whether the author may use the bot here (a refused DM gets told why, unless its
        author is blocked: blocked users get no reply at all)."""
        author = message.author.id
        reason = self.access.refusal(place, role_ids(message.author), author)
        if reason and place.guild_id is None and not self.access.is_blocked(author):
            await reply_to(message, reason)
        return reason is None

    async def _question_in(self, message: discord.Message, place: Place) -> Question | None:
        """Store context posts; return the question a message asks (None if it asks none).

        A reply to one of the bot's answers continues that answer's conversation (no mention
        needed, as a reply's ping is often off); a mention at the top of a channel starts a new
        one; a DM, a mention in a thread or a post in a "Continue in thread" thread continues
        that conversation; other posts in a context thread become context blocks.
        """
        assert self.user is not None
        mentioned = any(user.id == self.user.id for user in message.mentions)
        content = text.strip_mention(message.content, self.user.id)
        replied = await self.ask.replied_conversation(message, place)
        if replied is not None:
            return Question(content, replied) if content or mentioned else None
        if place.guild_id is None:
            return Question(content, place.key)
        if mentioned:
            return Question(content, place.key if place.in_thread else None)
        if not place.in_thread:
            return None
        if await self.service.context_title(place.key) is not None:
            await self.context.context_message(message, place.key)
            return None
        if await self.ask.is_chat_thread(place.key):
            return Question(message.content.strip(), place.key)
        return None

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        if interaction.type is discord.InteractionType.component:
            custom_id = str((interaction.data or {}).get("custom_id", ""))
            if not custom_id.startswith("airoboros:"):
                log.warning("ignoring a component this bot did not make: %r", custom_id[:100])


def build_discord_bot(
    service: ChatService,
    limiter: RateLimiter,
    settings: DiscordSettings,
    games: GameEngine | None = None,
) -> AiroborosBot:
    """The bot, not yet logged in: `login()` syncs the commands, `connect()` opens the gateway.

    With ``games`` it has the game commands and posts that engine's messages; it resumes the
    stored Discord games once connected and stops their loops when closed.
    """
    return AiroborosBot(service, limiter, settings, games)


def build_game_engine(runtime: Runtime, service: ChatService) -> GameEngine:
    """The games of the bot, on the runtime's Redis and game settings."""
    assert runtime.redis is not None, "open the runtime first"
    return GameEngine(runtime.redis, runtime.keys, service, runtime.settings.games)


async def run_discord(runtime: Runtime) -> int:
    """Run the bot until it is stopped (SIGINT / SIGTERM); returns the exit code.

    2: no token set; 1: Discord refused the token or the Message Content intent is off.
    """
    settings = runtime.settings.discord
    token = settings.token.get_secret_value().strip() if settings.token else ""
    if not token:
        print(
            "airoboros-bot: AIROBOROS_DISCORD_TOKEN is not set: put your bot's token from the "
            "Discord developer portal in it (see README, Discord).",
            file=sys.stderr,
        )
        return 2
    assert runtime.redis is not None, "open the runtime first"
    limiter = RateLimiter(runtime.redis, runtime.keys.prefix, settings.rate_limit_per_minute)
    service = runtime.service()
    bot = build_discord_bot(service, limiter, settings, build_game_engine(runtime, service))
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, lambda: stopping.append(loop.create_task(bot.close())))
    try:
        async with bot:
            await bot.start(token)
    except discord.LoginFailure:
        print(
            "airoboros-bot: Discord refused the token in AIROBOROS_DISCORD_TOKEN: copy it again "
            "from the developer portal (Bot, Reset Token).",
            file=sys.stderr,
        )
        return 1
    except discord.PrivilegedIntentsRequired:
        print(
            "airoboros-bot: enable the Message Content intent for the bot in the Discord "
            "developer portal (Bot, Privileged Gateway Intents) and start again.",
            file=sys.stderr,
        )
        return 1
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        if stopping:
            await asyncio.gather(*stopping, return_exceptions=True)
    return 0
