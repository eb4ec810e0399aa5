"""The per-user rate limit on a real Redis."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from airoboros_bot.bots.core.ratelimit import RateLimiter


async def test_limit_per_user_and_retry_after(redis: aioredis.Redis, key_prefix: str) -> None:
    limiter = RateLimiter(redis, key_prefix, limit=3, window_s=60)
    results = await asyncio.gather(*(limiter.check("u1") for _ in range(5)))
    assert sorted(r == 0 for r in results) == [False, False, True, True, True]
    assert all(50 < r <= 60 for r in results if r)
    assert await limiter.check("u2") == 0


async def test_window_slides_and_retry_after_is_when_it_frees(
    redis: aioredis.Redis, key_prefix: str
) -> None:
    limiter = RateLimiter(redis, key_prefix, limit=1, window_s=0.3)
    assert await limiter.check("u") == 0
    retry_after = await limiter.check("u")
    assert 0.2 < retry_after <= 0.3
    await asyncio.sleep(retry_after + 0.02)  # the time the limiter itself said to wait
    assert await limiter.check("u") == 0


async def test_zero_means_unlimited(redis: aioredis.Redis, key_prefix: str) -> None:
    limiter = RateLimiter(redis, key_prefix, limit=0)
    assert all([await limiter.check("u") == 0 for _ in range(20)])
