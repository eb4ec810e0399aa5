"""Which conversation a Slack thread belongs to.

The bot links every thread it answers in to a conversation: a thread started by a mention or
``/context`` is its own conversation (``ConversationKey("slack", team, channel, thread_ts)``);
the thread under an ``/ask`` answer continues the channel's conversation (thread ``""``).
Replies in a linked thread continue that conversation; other threads are left alone.
"""

from __future__ import annotations

from airoboros_bot.bots.core.service import ChatService
from airoboros_bot.conversations.models import ConversationKey

PLATFORM = "slack"
LINK_META = "slack_conversation"


def conversation_key(team: str, channel: str, thread: str = "") -> ConversationKey:
    """The conversation of a Slack channel (``thread=""``) or thread."""
    return ConversationKey(PLATFORM, team, channel, thread)


async def linked_conversation(
    service: ChatService, team: str, channel: str, thread_ts: str
) -> ConversationKey | None:
    """The conversation a thread continues, or None when the bot never answered in it."""
    thread = await service.store.get_meta(conversation_key(team, channel, thread_ts), LINK_META)
    return None if thread is None else conversation_key(team, channel, thread)


async def link_thread(
    service: ChatService, team: str, channel: str, thread_ts: str, conversation: ConversationKey
) -> None:
    """Make replies in thread ``thread_ts`` continue ``conversation``."""
    await service.store.set_meta(
        conversation_key(team, channel, thread_ts), LINK_META, conversation.thread
    )
