"""Where a Discord event happened (`Place`), looking up threads the cache does not know,
whether the user of an interaction may use the bot there, and who they are to the owner checks."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import discord

from airoboros_bot.bots.core.service import Actor
from airoboros_bot.bots.discord.access import AccessRules, Place, role_ids

log = logging.getLogger(__name__)


def interaction_place(interaction: discord.Interaction) -> Place | None:
    """Where an interaction happened (None if its channel is of an unknown kind)."""
    channel = interaction.channel
    if channel is None:
        return None
    if isinstance(channel, discord.Thread):
        return Place(interaction.guild_id, channel.id, channel.parent_id)
    return Place(interaction.guild_id, channel.id)


def command_place(interaction: discord.Interaction) -> Place:
    """Where a command happened (the command tree's access check refused the others)."""
    place = interaction_place(interaction)
    assert place is not None
    return place


def actor(interaction: discord.Interaction) -> Actor:
    """Who runs a command, for the owner checks: an admin of the bot is anyone who may manage
    messages where it runs."""
    return Actor(str(interaction.user.id), is_admin=interaction.permissions.manage_messages)


def interaction_refusal(interaction: discord.Interaction, access: AccessRules) -> str | None:
    """Why this interaction's user may not use the bot where it happened (None = allowed)."""
    place = interaction_place(interaction)
    if place is None:
        return "I can't work in this kind of channel."
    return access.refusal(place, role_ids(interaction.user), interaction.user.id)


class Places:
    """Where messages were posted, with the threads looked up over REST remembered."""

    def __init__(self, client: discord.Client) -> None:
        self.client = client
        self._looked_up: dict[int, discord.abc.GuildChannel | discord.Thread] = {}
        self._lookups: dict[int, asyncio.Future[Any]] = {}

    async def of_message(self, message: discord.Message) -> Place:
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

    async def channel_label(self, channel: Any) -> str:
        """``#name`` of a channel or thread, for context metadata."""
        name = getattr(channel, "name", None)
        if not name and isinstance(channel, discord.PartialMessageable) and channel.guild_id:
            name = getattr(await self._look_up(channel.id), "name", None)
        if name:
            return f"#{name}"
        return "direct message" if getattr(channel, "guild", None) is None else "#unknown"

    async def _look_up(self, channel_id: int) -> discord.abc.GuildChannel | discord.Thread | None:
        """A channel the cache does not know (a thread from before the bot started)."""
        if channel_id in self._looked_up:
            return self._looked_up[channel_id]
        pending = self._lookups.get(channel_id)
        if pending is None:  # one request, however many messages arrive meanwhile
            pending = self._lookups[channel_id] = asyncio.ensure_future(
                self.client.fetch_channel(channel_id)
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
