"""Faults: workers killed mid-answer, jobs that keep failing, Redis restarting under a job.

Workers here are real `airoboros-bot worker` processes killed with SIGKILL by pid.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
import redis.asyncio as aioredis

from airoboros_bot.config.keys import CONSUMER_GROUP, Keys
from airoboros_bot.config.settings import EngineSettings
from airoboros_bot.engine.client import EngineClient, JobFailed, JobHandle, Queued
from airoboros_bot.engine.generator import Generator
from airoboros_bot.engine.protocol import Chunk, Job, Sampling
from airoboros_bot.engine.redis_connect import RedisClient, connect
from airoboros_bot.engine.worker import Worker
from tests.polling import queue_settles
from tests.restartable_valkey import RestartableValkey
from tests.worker_processes import WorkerProcesses, kill_every_attempt, wait_for_workers

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "A chat between a curious user and an assistant. USER: Tell me a long story. ASSISTANT: "
FAST_RECLAIM = {"claim_idle_ms": 1200, "heartbeat_s": 0.3, "max_deliveries": 5}


@pytest.fixture
def processes(redis_url: str, key_prefix: str, generator: Generator) -> Iterator[WorkerProcesses]:
    # The model that never ends an answer by itself: every attempt runs long enough to be killed.
    workers = WorkerProcesses(redis_url, key_prefix, generator.model_dir, **FAST_RECLAIM)
    try:
        yield workers
    finally:
        workers.stop_all()


async def test_killed_workers_never_lose_an_answer(
    processes: WorkerProcesses, client: EngineClient, redis: aioredis.Redis, key_prefix: str
) -> None:
    victim = processes.start("victim-0")
    await wait_for_workers(client, {"victim-0"})
    job = Job(PROMPT, max_new_tokens=1800, sampling=Sampling(0.9))
    handle = await client.submit(job)
    chunks: list[Chunk | Queued] = []
    kills = 0
    async for chunk in client.stream(handle):
        chunks.append(chunk)
        tokens_in_attempt = sum(
            1 for c in chunks[chunks.index(_last_start(chunks)) :] if c.kind == "token"
        )
        is_token = isinstance(chunk, Chunk) and chunk.kind == "token"
        if is_token and tokens_in_attempt == 3 and kills < 3:
            victim.send_signal(signal.SIGKILL)  # mid-answer, by pid
            victim.wait(10)
            kills += 1
            victim = processes.start(f"victim-{kills}")
    assert kills == 3
    starts = [c for c in chunks if isinstance(c, Chunk) and c.kind in ("start", "reset")]
    assert [c.kind for c in starts] == ["start", "reset", "reset", "reset"]
    assert [c.attempt for c in starts] == [1, 2, 3, 4]
    done = [c for c in chunks if isinstance(c, Chunk) and c.kind == "done"]
    assert len(done) == 1, "exactly one complete answer"
    final_attempt = chunks[chunks.index(starts[-1]) :]
    assert done[0].text == "".join(c.text for c in final_attempt if c.kind == "token").strip()
    assert done[0].finish_reason in ("length", "eos")
    keys = Keys(key_prefix)
    await queue_settles(redis, keys)
    assert await redis.xlen(keys.dead_letters) == 0


def _last_start(chunks: list[Chunk | Queued]) -> Chunk:
    return [c for c in chunks if isinstance(c, Chunk) and c.kind in ("start", "reset")][-1]


async def test_a_job_that_keeps_failing_is_dead_lettered(
    redis_url: str,
    key_prefix: str,
    generator: Generator,
    client: EngineClient,
    redis: aioredis.Redis,
) -> None:
    workers = WorkerProcesses(
        redis_url, key_prefix, generator.model_dir, **{**FAST_RECLAIM, "max_deliveries": 2}
    )
    try:
        victim = workers.start("doomed-0")
        await wait_for_workers(client, {"doomed-0"})
        handle = await client.submit(Job(PROMPT, max_new_tokens=1800, sampling=Sampling(0.9)))
        with pytest.raises(JobFailed, match="gave up"):
            await kill_every_attempt(client, workers, handle, victim)
    finally:
        workers.stop_all()
    keys = Keys(key_prefix)
    assert await redis.xlen(keys.dead_letters) == 1
    await queue_settles(redis, keys)


class Restartable(NamedTuple):
    """An engine client on a Redis server the test stops and starts again."""

    server: RestartableValkey
    redis: RedisClient
    keys: Keys
    client: EngineClient

    async def worker(self, generator: Generator, name: str, claim_idle_ms: int) -> Worker:
        """A worker on this Redis that has reported in (it serves once run)."""
        settings = EngineSettings(batch_wait_ms=5, heartbeat_s=0.3, claim_idle_ms=claim_idle_ms)
        worker = Worker(self.redis, generator, self.keys, settings, name=name)
        await worker.heartbeat()
        return worker


@pytest.fixture
async def restartable(tmp_path: Path) -> AsyncIterator[Restartable]:
    server = RestartableValkey(tmp_path / "valkey")
    # Built as the bots and workers build theirs: it reconnects and retries across the restart
    # (a plain client gives up on the first pooled connection the restart closed).
    redis = await connect(server.url)
    keys = Keys("restart")
    client = EngineClient(redis, keys, first_chunk_timeout_s=30, poll_block_ms=200)
    try:
        yield Restartable(server, redis, keys, client)
    finally:
        await client.close()
        await redis.aclose()
        server.stop()


async def test_queued_jobs_and_readers_survive_a_redis_restart(
    restartable: Restartable, generator: Generator
) -> None:
    server, redis, keys, client = restartable
    worker = await restartable.worker(generator, "after-restart", 1000)  # not serving yet
    await redis.xgroup_create(keys.jobs, CONSUMER_GROUP, id="0", mkstream=True)
    handles = [await client.submit(Job(PROMPT, max_new_tokens=16)) for _ in range(3)]

    async def read(handle: JobHandle) -> list[Chunk | Queued]:
        return [c async for c in client.stream(handle)]

    readers = [asyncio.create_task(read(h)) for h in handles]
    await asyncio.sleep(0.5)
    server.stop()  # Redis goes away under the waiting readers
    await asyncio.sleep(1.0)
    server.start()
    serving = asyncio.create_task(worker.run())
    results = await asyncio.wait_for(asyncio.gather(*readers), 60)
    worker.stop()
    await serving
    for chunks in results:
        done = [c for c in chunks if isinstance(c, Chunk) and c.kind == "done"]
        assert len(done) == 1 and done[0].tokens >= 1


async def test_redis_restarting_mid_answer_loses_nothing(
    restartable: Restartable, generator: Generator
) -> None:
    server, redis, keys, client = restartable
    worker = await restartable.worker(generator, "steady", 1500)
    serving = asyncio.create_task(worker.run())
    try:
        handle = await client.submit(Job(PROMPT, max_new_tokens=1800, sampling=Sampling(0.9)))
        chunks: list[Chunk | Queued] = []
        restarted = False
        async for chunk in client.stream(handle):
            chunks.append(chunk)
            if not restarted and isinstance(chunk, Chunk) and chunk.kind == "token":
                restarted = True
                server.stop()
                await asyncio.sleep(0.5)
                server.start()
        done = [c for c in chunks if isinstance(c, Chunk) and c.kind == "done"]
        assert len(done) == 1
        last_start = max(i for i, c in enumerate(chunks) if c.kind in ("start", "reset"))
        streamed = "".join(c.text for c in chunks[last_start:] if c.kind == "token")
        assert done[0].text == streamed.strip(), "no streamed text was lost or doubled"
        await queue_settles(redis, keys)
    finally:
        worker.stop()
        await asyncio.wait_for(serving, 30)
