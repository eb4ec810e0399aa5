"""A thousand answers read at once by one process, over a bounded number of Redis connections.

The worker is a real `airoboros-bot worker` process on a fast model (four tokens an answer).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from airoboros_bot.config.keys import Keys
from airoboros_bot.config.settings import EngineSettings
from airoboros_bot.engine.client import EngineBusy, EngineClient, EngineUnavailable, Queued
from airoboros_bot.engine.generator import Generator
from airoboros_bot.engine.protocol import Job, Sampling
from airoboros_bot.engine.redis_connect import connect
from airoboros_bot.engine.worker import Worker
from tests.running_worker import running_worker
from tests.worker_processes import WorkerProcesses, wait_for_workers

PROMPT = "A chat between a curious user and an assistant. USER: Hi! ASSISTANT: "
MAX_CONNECTIONS = 12


async def _connections(redis: aioredis.Redis, name: str) -> int:
    return sum(1 for c in await redis.client_list() if c.get("name") == name)


async def test_a_thousand_answers_at_once_over_a_dozen_connections(
    redis_url: str, redis: aioredis.Redis, key_prefix: str, generator: Generator
) -> None:
    keys = Keys(key_prefix)
    workers = WorkerProcesses(
        redis_url, key_prefix, generator.model_dir, max_batch_size=128, batch_wait_ms=5
    )
    name = f"readers-{key_prefix}"
    client_redis = await connect(redis_url, max_connections=MAX_CONNECTIONS, client_name=name)
    client = EngineClient(client_redis, keys, first_chunk_timeout_s=120, max_answers=1000)
    peak = 0
    try:
        workers.start("fast")
        await wait_for_workers(client, {"fast"})

        async def answer(i: int) -> int:
            job = Job(f"{PROMPT}{i}", max_new_tokens=4, sampling=Sampling(0.8))
            handle = await client.submit(job)
            done = [c async for c in client.stream(handle) if not isinstance(c, Queued)]
            assert done[-1].kind == "done"
            return done[-1].tokens

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, await _connections(redis, name))
                await asyncio.sleep(0.1)

        sampler = asyncio.create_task(sample())
        started = time.monotonic()
        tokens = await asyncio.wait_for(asyncio.gather(*(answer(i) for i in range(1000))), 240)
        wall = time.monotonic() - started
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
    finally:
        await client.close()
        await client_redis.aclose()
        workers.stop_all()
    print(
        json.dumps(
            {
                "test": "1000 concurrent answers, one process, one worker",
                "answers": len(tokens),
                "complete": sum(1 for t in tokens if t == 4),
                "wall_s": round(wall, 2),
                "redis_connections_peak": peak,
            }
        )
    )
    assert tokens == [4] * 1000
    assert 0 < peak <= MAX_CONNECTIONS


@pytest.fixture
async def long_answers(
    redis: aioredis.Redis, key_prefix: str, generator: Generator
) -> AsyncIterator[Worker]:
    settings = EngineSettings(batch_wait_ms=5, heartbeat_s=0.5, max_batch_size=8)
    async with running_worker(
        redis, generator, Keys(key_prefix), settings, "long", stop_timeout_s=60
    ) as worker:
        yield worker


async def test_past_the_cap_a_question_is_refused_as_busy(
    long_answers: Worker, redis: aioredis.Redis, key_prefix: str
) -> None:
    client = EngineClient(redis, Keys(key_prefix), poll_block_ms=200, max_answers=3)
    try:
        handles = [
            await client.submit(Job(PROMPT, max_new_tokens=1500, sampling=Sampling(0.9)))
            for _ in range(3)
        ]
        with pytest.raises(EngineBusy) as refused:
            await client.submit(Job(PROMPT, max_new_tokens=4))
        assert "try again" in refused.value.user_message
        assert "Redis" not in refused.value.user_message
        assert await redis.xlen(Keys(key_prefix).jobs) <= 3, "the refused question never queued"
        for handle in handles:
            await client.cancel(handle.job_id)
            async for chunk in client.stream(handle):
                if not isinstance(chunk, Queued) and chunk.final:
                    break
        handle = await client.submit(Job(PROMPT, max_new_tokens=4))
        async for _ in client.stream(handle):
            pass
    finally:
        await client.close()


async def test_a_full_connection_pool_is_busy_not_unreachable(
    redis_url: str, redis: aioredis.Redis, key_prefix: str, generator: Generator
) -> None:
    # A worker that reported in but never runs: submissions only queue.
    await Worker(redis, generator, Keys(key_prefix), EngineSettings(), name="present").heartbeat()
    small = aioredis.Redis.from_url(redis_url, decode_responses=True, max_connections=2)
    client = EngineClient(small, Keys(key_prefix))
    try:
        results = await asyncio.gather(
            *(client.submit(Job(PROMPT, max_new_tokens=4)) for _ in range(40)),
            return_exceptions=True,
        )
    finally:
        await small.aclose()
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors, "two connections cannot serve forty submissions at once"
    assert all(isinstance(e, EngineBusy) for e in errors), errors[:3]
    assert not any(isinstance(e, EngineUnavailable) for e in errors)
