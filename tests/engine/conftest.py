"""Engine fixtures: a real worker on the demo model, serving a per-test key prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from airoboros_bot.config.keys import Keys
from airoboros_bot.config.settings import EngineSettings
from airoboros_bot.engine.client import EngineClient
from airoboros_bot.engine.generator import Generator
from airoboros_bot.engine.worker import Worker
from tests.running_worker import running_worker


@pytest.fixture(scope="session")
def generator(tmp_path_factory: pytest.TempPathFactory) -> Generator:
    """A demo-shaped model that never ends an answer by itself (its end-of-sequence logit is
    pushed far down), so every answer runs to its length, deadline or cancel: tests of those
    cannot be cut short by a random end of sequence."""
    from airoboros_bot.engine.model.demo import build_demo_model

    path = build_demo_model(tmp_path_factory.mktemp("models") / "endless", eos_bias=-1e4)
    return Generator(path, device="cpu")


@pytest.fixture
def engine_settings() -> EngineSettings:
    """Worker settings for tests: short waits, quick reclaim."""
    return EngineSettings(
        batch_wait_ms=30, max_batch_size=8, heartbeat_s=0.5, claim_idle_ms=2000, max_new_tokens=24
    )


@pytest.fixture
async def client(redis: aioredis.Redis, key_prefix: str) -> AsyncIterator[EngineClient]:
    """An engine client on the test's keys (its reply reader stopped after the test)."""
    engine = EngineClient(redis, Keys(key_prefix), first_chunk_timeout_s=20, poll_block_ms=200)
    try:
        yield engine
    finally:
        await engine.close()


@pytest.fixture
async def worker(
    redis: aioredis.Redis, key_prefix: str, generator: Generator, engine_settings: EngineSettings
) -> AsyncIterator[Worker]:
    """A running worker; stopped after the test."""
    async with running_worker(
        redis, generator, Keys(key_prefix), engine_settings, "test-worker"
    ) as worker:
        yield worker


@pytest.fixture(scope="session")
def eos_generator(tmp_path_factory: pytest.TempPathFactory) -> Generator:
    """A demo model biased to end its answers at once (end of sequence)."""
    from airoboros_bot.engine.model.demo import build_demo_model

    path = build_demo_model(tmp_path_factory.mktemp("models") / "eos", eos_bias=20.0)
    return Generator(path, device="cpu")
