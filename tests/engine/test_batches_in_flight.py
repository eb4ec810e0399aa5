"""Several batches in flight: a short question does not wait for a long answer's batch."""

from __future__ import annotations

import asyncio
import os

import pytest
import redis.asyncio as aioredis

from airoboros_bot.config.keys import Keys
from airoboros_bot.config.settings import EngineSettings
from airoboros_bot.engine.client import EngineClient
from airoboros_bot.engine.generator import Generator
from airoboros_bot.engine.model.demo import build_demo_model
from airoboros_bot.engine.protocol import Chunk, Job, Sampling
from airoboros_bot.engine.worker import Worker

PROMPT = "A chat between a curious user and an assistant. USER: Tell me a story. ASSISTANT: "

pytestmark = pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: one batch")


@pytest.fixture(scope="module")
def by_device(tmp_path_factory: pytest.TempPathFactory) -> Generator:
    """An endless demo model loaded as the worker command loads it: inter_threads by device."""
    path = build_demo_model(tmp_path_factory.mktemp("models") / "endless", eos_bias=-1e4)
    generator = Generator(path, device="cpu", inter_threads=EngineSettings().inter_threads)
    yield generator
    generator.close()


async def test_with_default_settings_a_short_question_passes_a_long_answer(
    redis: aioredis.Redis, key_prefix: str, by_device: Generator, client: EngineClient
) -> None:
    settings = EngineSettings(batch_wait_ms=5, heartbeat_s=0.5)
    assert settings.inter_threads == 0 and by_device.inter_threads == 2
    worker = Worker(redis, by_device, Keys(key_prefix), settings, name="two-batches")
    await worker.heartbeat()
    task = asyncio.create_task(worker.run())
    order: list[str] = []
    try:
        long = await client.submit(Job(PROMPT, max_new_tokens=3000, sampling=Sampling(0.0)))
        streaming = asyncio.Event()

        async def read(handle, name: str) -> Chunk:
            async for chunk in client.stream(handle):
                if isinstance(chunk, Chunk) and chunk.kind == "token":
                    streaming.set()
                if isinstance(chunk, Chunk) and chunk.kind == "done":
                    order.append(name)
                    return chunk
            raise AssertionError("no done chunk")

        reading_long = asyncio.create_task(read(long, "long"))
        await asyncio.wait_for(streaming.wait(), 30)  # the long answer's batch is running
        short = await client.submit(Job(PROMPT, max_new_tokens=4, sampling=Sampling(0.0)))
        done = await asyncio.wait_for(read(short, "short"), 60)
        assert done.tokens == 4
        assert order == ["short"], "the short question did not wait for the long batch"
        await client.cancel(long.job_id)
        await asyncio.wait_for(reading_long, 60)
    finally:
        worker.stop()
        await asyncio.wait_for(task, 120)
