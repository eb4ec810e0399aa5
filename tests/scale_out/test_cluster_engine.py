"""The job queue on a Redis Cluster: batching, cancels (pub/sub), queue positions, deadlines,
and real worker processes killed mid-answer (tests borrowed from tests/engine)."""

from __future__ import annotations

import asyncio
import time

import pytest

from airoboros_bot.config.keys import CONSUMER_GROUP, Keys
from airoboros_bot.engine.client import EngineClient, JobFailed
from airoboros_bot.engine.generator import Generator
from airoboros_bot.engine.protocol import Job, Sampling
from airoboros_bot.engine.redis_connect import RedisClient
from tests.engine import conftest as engine_fixtures
from tests.engine import test_faults, test_worker
from tests.engine.test_faults import FAST_RECLAIM, PROMPT
from tests.scale_out.borrow import borrow
from tests.worker_processes import WorkerProcesses, kill_every_attempt, wait_for_workers

borrow(globals(), engine_fixtures)
borrow(globals(), test_worker)
borrow(globals(), test_faults, only=("test_killed_workers_never_lose_an_answer",))


async def test_a_job_that_keeps_failing_is_dead_lettered_on_the_cluster(
    redis_url: str,
    key_prefix: str,
    generator: Generator,
    client: EngineClient,
    redis: RedisClient,
) -> None:
    """tests/engine/test_faults.py's dead-letter test, waiting for the acknowledgement before
    stopping the last worker: on a cluster the final chunk and the acknowledgement go to
    different nodes, so the reader can see the first before the second has landed."""
    keys = Keys(key_prefix)
    workers = WorkerProcesses(
        redis_url, key_prefix, generator.model_dir, **{**FAST_RECLAIM, "max_deliveries": 2}
    )
    try:
        victim = workers.start("doomed-0")
        await wait_for_workers(client, {"doomed-0"})
        handle = await client.submit(Job(PROMPT, max_new_tokens=1800, sampling=Sampling(0.9)))
        with pytest.raises(JobFailed, match="gave up"):
            await kill_every_attempt(client, workers, handle, victim)
        deadline = time.monotonic() + 10
        while (await redis.xpending(keys.jobs, CONSUMER_GROUP))["pending"]:
            assert time.monotonic() < deadline, "the dead-lettered job was never acknowledged"
            await asyncio.sleep(0.05)
    finally:
        workers.stop_all()
    assert await redis.xlen(keys.dead_letters) == 1
