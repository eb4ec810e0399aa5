"""Messages that ping no one: the allowed mentions of everything the bot sends, private replies
to interactions, and short replies to chat messages."""

from __future__ import annotations

import logging

import discord

from airoboros_bot.bots.discord.text import MESSAGE_LIMIT

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()


async def reply_ephemeral(interaction: discord.Interaction, content: str) -> None:
    """Answer only the user who interacted, whether or not the interaction was answered."""
    content = content[:MESSAGE_LIMIT]
    try:
        if interaction.response.is_done():
            await interaction.followup.send(content, ephemeral=True, allowed_mentions=NO_MENTIONS)
        else:
            await interaction.response.send_message(
                content, ephemeral=True, allowed_mentions=NO_MENTIONS
            )
    except discord.HTTPException as exc:
        log.warning("could not reply to an interaction: %s %s", exc.status, exc.text)


async def reply_to(message: discord.Message, note: str) -> None:
    """A short reply to a chat message, pinging no one (its author included)."""
    try:
        await message.reply(
            note[:MESSAGE_LIMIT], mention_author=False, allowed_mentions=NO_MENTIONS
        )
    except discord.HTTPException as exc:
        log.warning("could not reply to a message: %s %s", exc.status, exc.text)
