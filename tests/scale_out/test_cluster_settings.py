"""Pointing the terminal chat at a Redis Cluster node: with AIROBOROS_REDIS_CLUSTER=true it works
(bot and in-process worker on the cluster client); without it, one clear line says what to set."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

from airoboros_bot.config.keys import Keys
from airoboros_bot.conversations.models import ConversationKey
from airoboros_bot.conversations.store import ConversationStore
from airoboros_bot.engine.redis_connect import RedisClient
from tests.topologies import ValkeyCluster

ROOT = Path(__file__).resolve().parents[2]


async def _chat(stdin: str, **env: str) -> tuple[int, str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AIROBOROS_")}
    environment.update(env)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "airoboros_bot", "chat", "--local-worker",
        cwd=ROOT, env=environment, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_cluster_flag_with_the_url_of_one_node(
    cluster: ValkeyCluster, redis: RedisClient, key_prefix: str, demo_model_dir: Path
) -> None:
    code, out, err = await _chat(
        "What color are blueberries?\nAnd why?\n",
        AIROBOROS_REDIS_URL=cluster.nodes[1].url,
        AIROBOROS_REDIS_CLUSTER="true",
        AIROBOROS_REDIS_KEY_PREFIX=key_prefix,
        AIROBOROS_ENGINE_MODEL_DIR=str(demo_model_dir),
        AIROBOROS_ENGINE_DEVICE="cpu",
        AIROBOROS_ENGINE_MAX_NEW_TOKENS="8",
    )
    assert code == 0, err
    assert out.count("ASSISTANT: ") == 2
    store = ConversationStore(redis, Keys(key_prefix))
    key = ConversationKey("terminal", socket.gethostname(), "default")
    assert [t.user for t in await store.history(key)] == ["What color are blueberries?", "And why?"]


async def test_a_node_url_without_the_flag_says_what_to_set(
    cluster: ValkeyCluster, key_prefix: str, demo_model_dir: Path
) -> None:
    code, _, err = await _chat(
        "hello\n",
        AIROBOROS_REDIS_URL=cluster.nodes[0].url,
        AIROBOROS_REDIS_KEY_PREFIX=key_prefix,
        AIROBOROS_ENGINE_MODEL_DIR=str(demo_model_dir),
    )
    assert code == 1
    assert err.strip().splitlines() == [
        f"airoboros-bot: AIROBOROS_REDIS_URL: {cluster.nodes[0].url} is a Redis Cluster node: "
        "write redis+cluster:// or set AIROBOROS_REDIS_CLUSTER=true"
    ]


async def test_the_cluster_flag_needs_a_url() -> None:
    code, _, err = await _chat("", AIROBOROS_REDIS_CLUSTER="true")
    assert code == 2
    assert err.strip().splitlines() == [
        "airoboros-bot: AIROBOROS_REDIS_CLUSTER=true needs AIROBOROS_REDIS_URL (a node)"
    ]
