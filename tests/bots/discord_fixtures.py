"""What the Discord bot tests share: the fake Discord server and its guild, the bot logged in
against it, conversation keys, and waiting for an answer to be complete.

A test module takes the fixtures in by assignment, ``fake, world = discord_fixtures.fake,
discord_fixtures.world`` (an import of the names would be flagged as shadowed by every test's
parameters); likewise ``start_bot``.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
import redis.asyncio as aioredis

from airoboros_bot.bots.core.ratelimit import RateLimiter
from airoboros_bot.bots.core.render import WRITING_MARKER
from airoboros_bot.bots.core.service import ChatService
from airoboros_bot.bots.discord.client import AiroborosBot, build_discord_bot
from airoboros_bot.bots.games import GameEngine
from airoboros_bot.config.settings import DiscordSettings
from airoboros_bot.conversations.models import ConversationKey
from tests.fakes.discord import (
    LOADING,
    FakeDiscord,
    Recorded,
    World,
    discord_api,
    logged_in,
    make_world,
)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    """The fake Discord REST server, with discord.py's routes pointed at it."""
    server = await FakeDiscord().start()
    try:
        async with discord_api(server):
            yield server
    finally:
        await server.close()


@pytest.fixture
def world(fake: FakeDiscord) -> World:
    """A guild with two channels and two users on the fake server."""
    return make_world(fake)


@asynccontextmanager
async def running_bot(
    fake: FakeDiscord,
    world: World,
    service: ChatService,
    redis: aioredis.Redis,
    key_prefix: str,
    *,
    games: GameEngine | None = None,
    **options: object,
) -> AsyncIterator[AiroborosBot]:
    """The bot on ``service`` (with ``games``, when given) and `DiscordSettings` ``options``,
    logged in to the fake."""
    settings = DiscordSettings(**options)  # type: ignore[arg-type]
    limiter = RateLimiter(redis, key_prefix, settings.rate_limit_per_minute)
    bot = build_discord_bot(service, limiter, settings, games)
    async with logged_in(fake, bot, world):
        yield bot


BotStarter = Callable[..., AbstractAsyncContextManager[AiroborosBot]]


@pytest.fixture
def start_bot(
    fake: FakeDiscord, world: World, service: ChatService, redis: aioredis.Redis, key_prefix: str
) -> BotStarter:
    """`running_bot` on the test's fake, world, chat service and Redis:
    ``async with start_bot(**discord_settings) as bot``."""
    return functools.partial(running_bot, fake, world, service, redis, key_prefix)


def key(world: World, channel: dict, thread: str = "") -> ConversationKey:
    """The conversation of a channel (or of one of its threads) in the world's guild."""
    return ConversationKey("discord", world.guild["id"], channel["id"], thread)


def original_edits(fake: FakeDiscord, payload: dict) -> list[Recorded]:
    """The edits of an interaction's original response, in order."""
    return [
        r
        for r in fake.interaction_calls(payload)
        if r.method == "PATCH" and r.path.endswith("/@original")
    ]


async def written_answer(fake: FakeDiscord, bot: AiroborosBot, payload: dict) -> dict:
    """Wait until the interaction's original response holds a complete answer; return it."""

    def done() -> dict | None:
        message = fake.original(payload)
        content = message.get("content", "")
        if not content or message["flags"] & LOADING or content.endswith(WRITING_MARKER):
            return None
        return message

    await fake.wait_for(done, 30, "the final answer")
    assert await bot.running.wait_idle(10)
    return fake.original(payload)
