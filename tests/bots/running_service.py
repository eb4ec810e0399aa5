"""The chat service over a real worker running in the test's event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from airoboros_bot.bots.core.service import ChatService
from airoboros_bot.config.keys import Keys
from airoboros_bot.config.settings import ChatSettings, EngineSettings
from airoboros_bot.conversations.store import ConversationStore
from airoboros_bot.engine.client import EngineClient
from airoboros_bot.engine.generator import Generator
from airoboros_bot.engine.redis_connect import RedisClient
from tests.running_worker import running_worker


@asynccontextmanager
async def service_on_worker(
    redis: RedisClient, keys: Keys, model: Generator, settings: EngineSettings, name: str
) -> AsyncIterator[ChatService]:
    """The chat service with a worker running ``model`` behind it; both stopped after."""
    async with running_worker(redis, model, keys, settings, name):
        service = ChatService(
            ConversationStore(redis, keys),
            EngineClient(redis, keys, first_chunk_timeout_s=20, poll_block_ms=200),
            model.tokenizer.count,
            ChatSettings(),
            settings,
        )
        try:
            yield service
        finally:
            await service.engine.close()
