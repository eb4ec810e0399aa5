"""A `Worker` running in the test's own event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from airoboros_bot.config.keys import Keys
from airoboros_bot.config.settings import EngineSettings
from airoboros_bot.engine.generator import Generator
from airoboros_bot.engine.redis_connect import RedisClient
from airoboros_bot.engine.worker import Worker


@asynccontextmanager
async def running_worker(
    redis: RedisClient,
    model: Generator,
    keys: Keys,
    settings: EngineSettings,
    name: str,
    *,
    stop_timeout_s: float = 120,
) -> AsyncIterator[Worker]:
    """A worker that has reported in and is serving; stopped (and awaited) after."""
    worker = Worker(redis, model, keys, settings, name=name)
    await worker.heartbeat()
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, stop_timeout_s)
