"""Which conversation a Slack thread belongs to.

A Slack thread is a conversation: ``ConversationKey("slack", team, channel, thread_ts)``. An
``/ask`` answer at the top of the channel starts one (its thread is under the answer), a
mention starts one in the thread of the message, ``/context`` one under its parent message.
The bot links every thread it answers in; replies in a linked thread continue its
conversation without a mention, other threads are left alone. ``/ask-private`` answers belong
to the person's private conversation in the channel (``key.private_for(user)``).
"""

from __future__ import annotations

from airoboros_bot.bots.core.service import ChatService
from airoboros_bot.conversations.models import ConversationKey

PLATFORM = "slack"


def conversation_key(team: str, channel: str, thread: str = "") -> ConversationKey:
    """The conversation of a Slack thread (``thread=""``: the channel itself, whose settings
    are the defaults of the conversations started in it)."""
    return ConversationKey(PLATFORM, team, channel, thread)


async def linked_conversation(
    service: ChatService, team: str, channel: str, thread_ts: str
) -> ConversationKey | None:
    """The conversation a thread continues, or None when the bot never answered in it."""
    return await service.conversation_of(conversation_key(team, channel, thread_ts))


async def link_thread(
    service: ChatService, team: str, channel: str, thread_ts: str, conversation: ConversationKey
) -> None:
    """Make replies in thread ``thread_ts`` continue ``conversation``."""
    await service.link(conversation_key(team, channel, thread_ts), conversation)
