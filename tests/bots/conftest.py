"""Bot fixtures: the chat service over a real worker, Redis and the demo model."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from airoboros_bot.bots.core.service import ChatService
from airoboros_bot.bots.games import Clock, GameEngine, GameOutput, QuestionModel
from airoboros_bot.config.keys import Keys
from airoboros_bot.config.settings import EngineSettings, GameSettings
from airoboros_bot.engine.generator import Generator
from tests.bots.running_service import service_on_worker


@pytest.fixture(scope="session")
def generator(demo_model_dir: Path) -> Generator:
    """The demo model loaded once for the session."""
    return Generator(demo_model_dir, device="cpu")


@pytest.fixture
def engine_settings() -> EngineSettings:
    """Small answers, quick batches."""
    return EngineSettings(batch_wait_ms=10, heartbeat_s=0.5, max_new_tokens=24)


@pytest.fixture
async def service(
    redis: aioredis.Redis, key_prefix: str, generator: Generator, engine_settings: EngineSettings
) -> AsyncIterator[ChatService]:
    """The chat service with a running worker behind it."""
    keys = Keys(key_prefix)
    async with service_on_worker(redis, keys, generator, engine_settings, "bots-test") as service:
        yield service


GameEngineFactory = Callable[..., GameEngine]


@pytest.fixture
async def make_game_engine(
    redis: aioredis.Redis, key_prefix: str
) -> AsyncIterator[GameEngineFactory]:
    """Build game engines on the test's Redis keys, all closed at the end:
    ``build(model, clock=..., output=None, seed=7, **game_settings)``."""
    engines: list[GameEngine] = []

    def build(
        model: QuestionModel | None = None,
        *,
        clock: Clock,
        output: GameOutput | None = None,
        seed: int = 7,
        **settings: object,
    ) -> GameEngine:
        engine = GameEngine(
            redis,
            Keys(key_prefix),
            model,
            GameSettings(**settings),  # type: ignore[arg-type]
            output=output,
            clock=clock,
            rng=random.Random(seed),
        )
        engines.append(engine)
        return engine

    yield build
    for engine in engines:
        await engine.close()
