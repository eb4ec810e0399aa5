"""Waiting for a condition with a deadline, instead of sleeping a guessed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from airoboros_bot.config.keys import CONSUMER_GROUP, Keys


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``check`` every 20 ms until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout:g} s")
        await asyncio.sleep(0.02)


async def queue_settles(redis: aioredis.Redis, keys: Keys, timeout: float = 10.0) -> None:
    """Every job acknowledged and removed from the job stream (a worker acknowledges a job
    just after its final chunk, so a reader can see the chunk first)."""

    async def settled() -> bool:
        pending = await redis.xpending(keys.jobs, CONSUMER_GROUP)
        return pending["pending"] == 0 and await redis.xlen(keys.jobs) == 0

    await eventually(settled, timeout=timeout, what="an empty, settled job queue")
