"""`airoboros-bot chat` against an existing Redis only enqueues: a separate worker answers."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from airoboros_bot.config.keys import Keys
from airoboros_bot.config.settings import EngineSettings
from airoboros_bot.engine.generator import Generator
from airoboros_bot.engine.worker import Worker
from tests.environment import clean_env

ROOT = Path(__file__).resolve().parents[2]


async def _chat(redis_url: str, prefix: str, model_dir: Path, stdin: str) -> tuple[int, str, str]:
    env = clean_env(
        REDIS_URL=redis_url,
        REDIS_KEY_PREFIX=prefix,
        ENGINE_MODEL_DIR=model_dir,
        ENGINE_MAX_NEW_TOKENS=12,
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "airoboros_bot",
        "chat",
        "--no-history",
        cwd=ROOT,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), 120)
    return process.returncode, out.decode(), err.decode()


async def test_without_a_worker_the_chat_says_so(
    redis_url: str, key_prefix: str, demo_model_dir: Path
) -> None:
    code, out, err = await _chat(redis_url, key_prefix, demo_model_dir, "hello\n")
    assert code == 0
    assert "No engine worker is running: start one with `airoboros-bot worker`" in err
    assert "ASSISTANT" not in out


async def test_a_separate_worker_answers_the_chat(
    redis, redis_url: str, key_prefix: str, demo_model_dir: Path, generator: Generator
) -> None:
    worker = Worker(redis, generator, Keys(key_prefix), EngineSettings(batch_wait_ms=5))
    await worker.heartbeat()
    serving = asyncio.create_task(worker.run())
    try:
        code, out, err = await _chat(
            redis_url, key_prefix, demo_model_dir, "What color are blueberries?\nAnd why?\n"
        )
    finally:
        worker.stop()
        await serving
    assert code == 0, err
    assert out.count("ASSISTANT: ") == 2
    assert worker.jobs_done == 2
    assert "1 worker(s)" in err
