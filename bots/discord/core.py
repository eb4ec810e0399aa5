"""What every part of the Discord bot builds on: the client's intents and settings, where an
event happened (looking up threads the cache does not know), who may act there, whether a
question may go to the engine now, and private replies to interactions."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import discord
from redis.exceptions import RedisError

from airoboros_bot.bots.core.ratelimit import RateLimiter
from airoboros_bot.bots.core.service import ChatService
from airoboros_bot.bots.discord import text
from airoboros_bot.bots.discord.access import AccessRules, Place
from airoboros_bot.bots.discord.running import RunningAnswers
from airoboros_bot.config.settings import DiscordSettings
from airoboros_bot.engine.errors import EngineError

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
ADMIT_TIMEOUT_S = 1.5  # Redis checks before the deferral must leave room in Discord's 3 s
ENGINE_DOWN = "The answer engine is down (no worker is running): try again in a little while."
QUEUE_DOWN = "The answer engine's queue cannot be reached right now: try again in a moment."


def role_ids(user: discord.abc.User) -> set[int]:
    """The ids of a member's roles (none for a user outside a server)."""
    return {role.id for role in getattr(user, "roles", ())}


class DiscordCore(discord.Client):
    """The client with the chat service, the rate limiter, the access rules and the answers
    being written; the bot's features (`bots.discord.ask`, `bots.discord.context`,
    `airoboros_bot.bots.discord.commands`) build on it."""

    def __init__(
        self, service: ChatService, limiter: RateLimiter, settings: DiscordSettings
    ) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_messages = True
        intents.dm_messages = True
        intents.message_content = True
        super().__init__(
            intents=intents, allowed_mentions=NO_MENTIONS, chunk_guilds_at_startup=False
        )
        self.service = service
        self.limiter = limiter
        self.settings = settings
        self.access = AccessRules.from_settings(settings)
        self.running = RunningAnswers()
        self._looked_up: dict[int, discord.abc.GuildChannel | discord.Thread] = {}
        self._lookups: dict[int, asyncio.Future[Any]] = {}

    # -- places ---------------------------------------------------------------------------------
    def interaction_place(self, interaction: discord.Interaction) -> Place | None:
        """Where an interaction happened (None if its channel is of an unknown kind)."""
        channel = interaction.channel
        if channel is None:
            return None
        if isinstance(channel, discord.Thread):
            return Place(interaction.guild_id, channel.id, channel.parent_id)
        return Place(interaction.guild_id, channel.id)

    def checked_place(self, interaction: discord.Interaction) -> Place:
        """Where a command happened (the command tree's access check refused the others)."""
        place = self.interaction_place(interaction)
        assert place is not None
        return place

    async def message_place(self, message: discord.Message) -> Place:
        """Where a message was posted, looking up uncached threads' parents over REST."""
        channel = message.channel
        guild_id = message.guild.id if message.guild else getattr(channel, "guild_id", None)
        if guild_id is None:
            return Place(None, channel.id)
        if isinstance(channel, discord.Thread):
            return Place(guild_id, channel.id, channel.parent_id)
        if isinstance(channel, discord.PartialMessageable):
            found = await self._look_up(channel.id)
            parent = found.parent_id if isinstance(found, discord.Thread) else None
            return Place(guild_id, channel.id, parent)
        return Place(guild_id, channel.id)

    def remember_thread(self, thread: discord.Thread) -> None:
        """A thread the bot made: no need to look it up when messages arrive in it."""
        self._looked_up[thread.id] = thread

    async def _look_up(self, channel_id: int) -> discord.abc.GuildChannel | discord.Thread | None:
        """A channel the cache does not know (a thread from before the bot started)."""
        if channel_id in self._looked_up:
            return self._looked_up[channel_id]
        pending = self._lookups.get(channel_id)
        if pending is None:  # one request, however many messages arrive meanwhile
            pending = self._lookups[channel_id] = asyncio.ensure_future(
                self.fetch_channel(channel_id)
            )
        try:
            channel = await asyncio.shield(pending)
        except discord.HTTPException as exc:
            log.warning("could not look up channel %s: %s", channel_id, exc)
            return None
        finally:
            if pending.done():
                self._lookups.pop(channel_id, None)
        if isinstance(channel, discord.abc.GuildChannel | discord.Thread):
            self._looked_up[channel_id] = channel
        return self._looked_up.get(channel_id)

    async def channel_label(self, channel: Any) -> str:
        """``#name`` of a channel or thread, for context metadata."""
        name = getattr(channel, "name", None)
        if not name and isinstance(channel, discord.PartialMessageable) and channel.guild_id:
            name = getattr(await self._look_up(channel.id), "name", None)
        if name:
            return f"#{name}"
        return "direct message" if getattr(channel, "guild", None) is None else "#unknown"

    # -- access and admission -------------------------------------------------------------------
    def refusal(self, interaction: discord.Interaction) -> str | None:
        """Why this interaction's user may not use the bot where it happened (None = allowed)."""
        place = self.interaction_place(interaction)
        if place is None:
            return "I can't work in this kind of channel."
        return self.access.refusal(place, role_ids(interaction.user))

    async def admit(self, user_id: int, *, need_engine: bool = True) -> str | None:
        """Check the engine is up (unless not ``need_engine``: games fall back to their bank)
        and the user is within the rate limit (None = go ahead)."""
        try:
            async with asyncio.timeout(ADMIT_TIMEOUT_S):
                if need_engine and not await self.service.engine.live_workers():
                    return ENGINE_DOWN
                wait = await self.limiter.check(f"discord:{user_id}")
        except (TimeoutError, RedisError, OSError, EngineError) as exc:
            log.warning("cannot check the engine or rate limit: %s", type(exc).__name__)
            return QUEUE_DOWN
        if wait:
            what = "questions" if need_engine else "questions or new games"
            return text.rate_limited(wait, self.limiter.limit, what)
        return None

    async def reply_ephemeral(self, interaction: discord.Interaction, content: str) -> None:
        """Answer only the user who interacted, whether or not the interaction was answered."""
        content = content[: text.MESSAGE_LIMIT]
        try:
            if interaction.response.is_done():
                await interaction.followup.send(
                    content, ephemeral=True, allowed_mentions=NO_MENTIONS
                )
            else:
                await interaction.response.send_message(
                    content, ephemeral=True, allowed_mentions=NO_MENTIONS
                )
        except discord.HTTPException as exc:
            log.warning("could not reply to an interaction: %s %s", exc.status, exc.text)
