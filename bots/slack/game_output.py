"""Where the game engine's messages go on Slack: channel messages with Block Kit, paced.

Slack allows about one message per second per channel, so every channel's game messages take
turns: each one waits until ``interval_s`` after the previous one, in the order they came.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from airoboros_bot.bots.games import GameMessage
from airoboros_bot.bots.slack.api import SlackApi, SlackCallFailed
from airoboros_bot.bots.slack.game_format import game_blocks, game_text
from airoboros_bot.bots.slack.threads import PLATFORM
from airoboros_bot.conversations.models import ConversationKey

log = logging.getLogger(__name__)

_MAX_CHANNELS = 10_000


class ChannelPacer:
    """At most one post per ``interval_s`` in each channel, in the order they were asked for."""

    def __init__(self, interval_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self._locks: dict[str, asyncio.Lock] = {}
        self._last: dict[str, float] = {}

    @contextlib.asynccontextmanager
    async def turn(self, channel: str) -> AsyncIterator[None]:
        """Wait for ``channel``'s turn; the post happens inside the ``async with``."""
        if len(self._locks) > _MAX_CHANNELS:
            self._forget_idle()
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:
            last = self._last.get(channel)
            if last is not None and (delay := last + self.interval_s - self.clock()) > 0:
                await asyncio.sleep(delay)
            try:
                yield
            finally:
                self._last[channel] = self.clock()

    def _forget_idle(self) -> None:
        cutoff = self.clock() - self.interval_s
        for channel, lock in list(self._locks.items()):
            if not lock.locked() and self._last.get(channel, cutoff) <= cutoff:
                del self._locks[channel]
                self._last.pop(channel, None)


class SlackGameOutput:
    """`GameOutput` on Slack: every `GameMessage` becomes a channel message with blocks.

    A post Slack refuses is logged (the game goes on); the last refusal per channel is kept in
    ``failures`` (Slack's error code), so a command can tell the player the bot cannot post.
    """

    def __init__(self, api: SlackApi, pacer: ChannelPacer) -> None:
        self.api = api
        self.pacer = pacer
        self.failures: dict[str, str] = {}

    async def send(self, channel: ConversationKey, message: GameMessage) -> None:
        """Post ``message`` in the Slack channel ``channel`` (other platforms' are ignored)."""
        if channel.platform != PLATFORM:
            return
        text, blocks = game_text(message), game_blocks(message)
        async with self.pacer.turn(channel.channel):
            try:
                await self.api.post_message(channel.channel, text, blocks)
            except SlackCallFailed as exc:
                log.warning("game message (%s) to %s refused: %s", message.kind, channel.id, exc)
                if len(self.failures) > _MAX_CHANNELS:
                    self.failures.clear()
                self.failures[channel.id] = exc.error
                return
        self.failures.pop(channel.id, None)
