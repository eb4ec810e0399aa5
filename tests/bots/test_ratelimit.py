"""The per-user rate limit and the shared edit budget on a real Redis."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis

from airoboros_bot.bots.core.ratelimit import RateLimiter, SharedEditBudget
from airoboros_bot.config.keys import Keys


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


async def test_used_counts_the_window_without_counting_itself(
    redis: aioredis.Redis, key_prefix: str
) -> None:
    limiter = RateLimiter(redis, key_prefix, limit=5, window_s=60)
    assert await limiter.used("u") == 0
    await limiter.check("u")
    await limiter.check("u")
    assert await limiter.used("u") == 2 and await limiter.used("u") == 2


async def test_shared_edit_budget_is_one_bucket_for_every_process(
    redis: aioredis.Redis, redis_url: str, key_prefix: str
) -> None:
    # Two "processes" (two clients, two budget objects) on one workspace's key, a third on
    # another workspace.
    other = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        key = Keys(key_prefix).edit_budget("slack", "T1")
        first = SharedEditBudget(redis, key, per_minute=60, burst=4)
        second = SharedEditBudget(other, key, per_minute=60, burst=4)
        elsewhere = SharedEditBudget(redis, Keys(key_prefix).edit_budget("slack", "T2"), 60, 4)
        taken = [await b.try_take() for b in (first, second) * 4]
        assert taken.count(True) == 4, "the burst is shared, not per process"
        assert await elsewhere.try_take()
        started = time.monotonic()
        await second.take()  # one a second refills
        assert 0.5 < time.monotonic() - started < 2.0
    finally:
        await other.aclose()


async def test_a_pause_stops_every_process_until_it_ends(
    redis: aioredis.Redis, key_prefix: str
) -> None:
    key = Keys(key_prefix).edit_budget("slack", "T1")
    first = SharedEditBudget(redis, key, per_minute=6000, burst=10)
    second = SharedEditBudget(redis, key, per_minute=6000, burst=10)
    await first.pause(0.4)
    assert not await second.try_take()
    started = time.monotonic()
    await second.take()
    assert 0.3 < time.monotonic() - started < 1.5
