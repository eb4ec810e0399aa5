"""Where the game engine's messages go on Discord: the channel or thread of the game, as an
embed with no allowed mentions (plain text when the bot may not embed links there).

A command that makes the engine post (``/trivia start`` its announcement, ``/trivia stop`` the
final scores) can claim that message: it then becomes the command's response, so the channel
shows who started or stopped the game and the interaction is answered at once.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import discord

from airoboros_bot.bots.core.render import split_message
from airoboros_bot.bots.discord.game_view import game_embed
from airoboros_bot.bots.discord.replies import NO_MENTIONS
from airoboros_bot.bots.discord.text import MESSAGE_LIMIT
from airoboros_bot.bots.games import GameMessage, MessageKind
from airoboros_bot.conversations.models import ConversationKey

log = logging.getLogger(__name__)

MISSING_PERMISSIONS = 50013


def target_id(channel: ConversationKey) -> int:
    """The Discord channel (or thread) a game's key stands for."""
    return int(channel.thread or channel.channel)


class DiscordGameOutput:
    """Implements `airoboros_bot.bots.games.GameOutput` for a Discord client."""

    def __init__(self, client: discord.Client) -> None:
        self.client = client
        self._claims: dict[tuple[str, MessageKind], list[discord.Interaction]] = {}

    @contextlib.contextmanager
    def respond_with(
        self, channel: ConversationKey, kind: MessageKind, interaction: discord.Interaction
    ) -> Iterator[None]:
        """While inside, the engine's next ``kind`` message for ``channel`` answers
        ``interaction`` instead of being posted on its own (first claimed, first answered)."""
        claim = (channel.id, kind)
        waiting = self._claims.setdefault(claim, [])
        waiting.append(interaction)
        try:
            yield
        finally:
            if interaction in waiting:
                waiting.remove(interaction)
            if not waiting and self._claims.get(claim) is waiting:
                del self._claims[claim]

    async def send(self, channel: ConversationKey, message: GameMessage) -> None:
        """Show ``message`` in the game's channel or thread."""
        embed = game_embed(message)
        waiting = self._claims.get((channel.id, message.kind))
        interaction = waiting.pop(0) if waiting else None
        if interaction is not None and not interaction.response.is_done():
            try:
                await interaction.response.send_message(embed=embed, allowed_mentions=NO_MENTIONS)
                return
            except discord.HTTPException as exc:  # expired: post it on its own instead
                log.warning("could not answer a game command: %s %s", exc.status, exc.text)
        workspace = channel.workspace
        target = self.client.get_partial_messageable(
            target_id(channel), guild_id=int(workspace) if workspace.isdigit() else None
        )
        try:
            await target.send(embed=embed, allowed_mentions=NO_MENTIONS)
        except discord.Forbidden as exc:
            if exc.code != MISSING_PERMISSIONS:
                raise
            log.warning("no Embed Links permission in %s: posting games as text", target.id)
            for page in split_message(message.text, MESSAGE_LIMIT):
                await target.send(page, allowed_mentions=NO_MENTIONS)
