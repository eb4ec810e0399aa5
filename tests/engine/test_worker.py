"""The job queue end to end: client -> Redis -> worker (real CTranslate2) -> reply streams."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis

from airoboros_bot.config.keys import CONSUMER_GROUP, Keys
from airoboros_bot.config.settings import EngineSettings
from airoboros_bot.engine.client import EngineClient, EngineUnavailable, JobHandle, Queued
from airoboros_bot.engine.generator import Generator
from airoboros_bot.engine.protocol import Chunk, Job, Sampling
from airoboros_bot.engine.worker import Worker
from tests.polling import queue_settles

PROMPT = (
    "A chat between a curious user and an assistant. USER: What color are blueberries? ASSISTANT: "
)


async def _collect(client: EngineClient, handle: JobHandle) -> list[Chunk | Queued]:
    return [chunk async for chunk in client.stream(handle)]


def _text_of(chunks: list[Chunk | Queued]) -> str:
    return "".join(c.text for c in chunks if isinstance(c, Chunk) and c.kind == "token")


async def test_eight_concurrent_jobs_are_all_answered_exactly_once(
    worker: Worker, client: EngineClient, redis: aioredis.Redis, key_prefix: str
) -> None:
    jobs = [Job(f"{PROMPT}{i}", max_new_tokens=8 + i, sampling=Sampling(0.8)) for i in range(8)]
    handles = await asyncio.gather(*(client.submit(job) for job in jobs))
    results = await asyncio.wait_for(
        asyncio.gather(*(_collect(client, h) for h in handles)), timeout=60
    )
    keys = Keys(key_prefix)
    for job, chunks in zip(jobs, results, strict=True):
        done = [c for c in chunks if isinstance(c, Chunk) and c.kind == "done"]
        assert len(done) == 1, chunks
        assert done[0].text == _text_of(chunks).strip(), "streamed tokens add up to the answer"
        assert 1 <= done[0].tokens <= job.max_new_tokens
        stored = await redis.xrange(keys.job_output(job.id))
        assert sum(Chunk.from_fields(f).kind == "done" for _, f in stored) == 1
        assert await redis.ttl(keys.job_output(job.id)) > 0, "reply streams expire"
    await queue_settles(redis, keys)  # acknowledged jobs are removed from the queue


async def test_jobs_share_batches(
    worker: Worker, client: EngineClient, generator: Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    real_generate = generator.generate

    def recording_generate(prompts, *args, **kwargs):  # observe, never replace, the real call
        sizes.append(len(prompts))
        return real_generate(prompts, *args, **kwargs)

    monkeypatch.setattr(generator, "generate", recording_generate)
    jobs = [Job(PROMPT, max_new_tokens=16, sampling=Sampling(0.7)) for _ in range(6)]
    handles = [await client.submit(job) for job in jobs]
    await asyncio.gather(*(_collect(client, h) for h in handles))
    assert sum(sizes) == 6
    assert max(sizes) > 1, f"concurrent jobs were batched together: {sizes}"


async def test_end_of_sequence_stops_generation(
    redis: aioredis.Redis, key_prefix: str, eos_generator: Generator, client: EngineClient
) -> None:
    settings = EngineSettings(batch_wait_ms=5, heartbeat_s=0.5)
    worker = Worker(redis, eos_generator, Keys(key_prefix), settings, name="eos")
    await worker.heartbeat()
    task = asyncio.create_task(worker.run())
    try:
        handle = await client.submit(Job(PROMPT, max_new_tokens=200, sampling=Sampling(0.0)))
        chunks = await asyncio.wait_for(_collect(client, handle), 30)
    finally:
        worker.stop()
        await task
    done = chunks[-1]
    assert isinstance(done, Chunk) and done.kind == "done"
    assert done.finish_reason == "eos"
    assert done.tokens < 200


async def test_cancel_stops_one_job_and_leaves_its_batch_alone(
    worker: Worker, client: EngineClient
) -> None:
    long = Job(PROMPT, max_new_tokens=1500, sampling=Sampling(0.9))
    other = Job(PROMPT + "x", max_new_tokens=40, sampling=Sampling(0.9))
    h_long, h_other = await client.submit(long), await client.submit(other)

    async def cancel_after_first_token() -> list[Chunk | Queued]:
        seen: list[Chunk | Queued] = []
        async for chunk in client.stream(h_long):
            seen.append(chunk)
            if isinstance(chunk, Chunk) and chunk.kind == "token" and len(seen) < 3:
                await client.cancel(long.id)
        return seen

    long_chunks, other_chunks = await asyncio.wait_for(
        asyncio.gather(cancel_after_first_token(), _collect(client, h_other)), 60
    )
    assert long_chunks[-1].finish_reason == "cancelled"
    assert long_chunks[-1].tokens < 1500
    assert other_chunks[-1].finish_reason == "length"
    assert other_chunks[-1].tokens == 40


async def test_a_reader_that_leaves_cancels_its_job(
    worker: Worker, client: EngineClient, redis: aioredis.Redis, key_prefix: str
) -> None:
    job = Job(PROMPT, max_new_tokens=1500, sampling=Sampling(0.9))
    handle = await client.submit(job)
    async for chunk in client.stream(handle):
        if isinstance(chunk, Chunk) and chunk.kind == "token":
            break  # the reader goes away
    out = Keys(key_prefix).job_output(job.id)
    for _ in range(100):
        entries = await redis.xrange(out)
        last = Chunk.from_fields(entries[-1][1])
        if last.kind == "done":
            break
        await asyncio.sleep(0.1)
    assert last.kind == "done" and last.finish_reason == "cancelled"


@dataclass
class LateWorker:
    """A worker that has reported in but takes no job until `start()`."""

    worker: Worker
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.worker.run())


@pytest.fixture
async def late(
    redis: aioredis.Redis, key_prefix: str, generator: Generator, engine_settings: EngineSettings
) -> AsyncIterator[LateWorker]:
    late = LateWorker(Worker(redis, generator, Keys(key_prefix), engine_settings, name="late"))
    await late.worker.heartbeat()
    try:
        yield late
    finally:
        late.worker.stop()
        if late.task is not None:
            await late.task


async def test_queue_position_counts_jobs_ahead(
    late: LateWorker, redis: aioredis.Redis, key_prefix: str, client: EngineClient
) -> None:
    await redis.xgroup_create(Keys(key_prefix).jobs, CONSUMER_GROUP, id="0", mkstream=True)
    handles = [await client.submit(Job(PROMPT, max_new_tokens=4)) for _ in range(3)]
    assert [await client.queue_position(h) for h in handles] == [0, 1, 2]
    first = await anext(client.stream(handles[2]).__aiter__())
    assert first == Queued(2)
    late.start()
    results = await asyncio.wait_for(asyncio.gather(*(_collect(client, h) for h in handles)), 30)
    assert all(r[-1].kind == "done" for r in results)
    assert await client.queue_position(handles[0]) is None


async def test_no_worker_gives_a_clear_error(client: EngineClient) -> None:
    with pytest.raises(EngineUnavailable, match="No engine worker is running"):
        await client.submit(Job(PROMPT, max_new_tokens=4))


async def test_expired_job_fails_clearly(worker: Worker, client: EngineClient) -> None:
    handle = await client.submit(Job(PROMPT, max_new_tokens=4, deadline=time.time() - 1))
    chunks = []
    with pytest.raises(Exception, match="Timed out in the queue"):
        async for chunk in client.stream(handle):
            chunks.append(chunk)


async def test_a_job_cancelled_while_queued_is_never_generated(
    late: LateWorker, client: EngineClient
) -> None:
    job = Job(PROMPT, max_new_tokens=500)
    handle = await client.submit(job)
    await client.cancel(job.id)  # the reader gave up before any worker took the job
    late.start()
    chunks = await asyncio.wait_for(_collect(client, handle), 30)
    assert [c.kind for c in chunks if isinstance(c, Chunk)] == ["done"]
    assert chunks[-1].finish_reason == "cancelled" and chunks[-1].tokens == 0
    batches = late.worker.metrics.registry.get_sample_value("airoboros_batch_size_count")
    assert batches == 0, "no generate_batch ran"


async def test_a_deadline_stops_a_running_answer(worker: Worker, client: EngineClient) -> None:
    # Four long answers in one batch take several seconds; their deadline comes after one.
    deadline = time.time() + 1.0
    jobs = [Job(PROMPT, 1900, Sampling(0.9), deadline=deadline) for _ in range(4)]
    handles = [await client.submit(job) for job in jobs]
    results = await asyncio.wait_for(asyncio.gather(*(_collect(client, h) for h in handles)), 60)
    for chunks in results:
        done = chunks[-1]
        assert isinstance(done, Chunk) and done.kind == "done"
        assert done.finish_reason == "deadline"
        assert 0 < done.tokens < 1900


async def test_a_reader_stops_waiting_soon_after_the_last_worker_dies(
    redis: aioredis.Redis, key_prefix: str
) -> None:
    # A worker that reported in and died: its heartbeat expires, the job is never taken.
    keys = Keys(key_prefix)
    await redis.set(keys.worker_health("ghost"), "1", px=800)
    await redis.xgroup_create(keys.jobs, CONSUMER_GROUP, id="0", mkstream=True)
    client = EngineClient(
        redis, keys, first_chunk_timeout_s=60, poll_block_ms=100, liveness_check_s=0.3
    )
    try:
        handle = await client.submit(Job(PROMPT, max_new_tokens=4))
        started = time.monotonic()
        with pytest.raises(EngineUnavailable, match="stopped before answering"):
            await asyncio.wait_for(_collect(client, handle), 20)
    finally:
        await client.close()
    assert time.monotonic() - started < 3.0, "not the 60 s first-chunk timeout"
