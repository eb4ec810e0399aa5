"""Redis SIGKILLed and restarted (AOF, every write synced) while conversations ask nonstop:
every answer arrives once and whole, every turn is stored once, no job or chunk lands twice.

The chat service and a real `airoboros-bot worker` process use clients configured as in
production (they resend a command whose connection broke). ``AIROBOROS_CHAOS=1`` restarts Redis
30 times instead of 3.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from pathlib import Path

import pytest

from airoboros_bot.bots.core.service import Answer, ChatService, Delta, Restart, Submitted
from airoboros_bot.config.keys import Keys
from airoboros_bot.config.settings import ChatSettings, EngineSettings
from airoboros_bot.conversations.models import ConversationKey
from airoboros_bot.conversations.store import ConversationStore
from airoboros_bot.engine.client import EngineClient
from airoboros_bot.engine.generator import Generator
from airoboros_bot.engine.redis_connect import connect
from tests.answer_audit import raw_chunks
from tests.restartable_valkey import RestartableValkey
from tests.worker_processes import WorkerProcesses, wait_for_workers

CHAOS = os.environ.get("AIROBOROS_CHAOS") == "1"
CONVERSATIONS = 12


@pytest.fixture
def server(tmp_path: Path):
    valkey = RestartableValkey(tmp_path / "valkey")
    try:
        yield valkey
    finally:
        valkey.stop()


async def test_conversations_survive_redis_being_killed_and_restarted(
    server: RestartableValkey, generator: Generator
) -> None:
    keys = Keys("restarts")
    restarts = 30 if CHAOS else 3
    workers = WorkerProcesses(server.url, keys.prefix, generator.model_dir, claim_idle_ms=6000)
    redis = await connect(server.url)
    engine = EngineClient(redis, keys, first_chunk_timeout_s=60, poll_block_ms=500)
    service = ChatService(
        ConversationStore(redis, keys),
        engine,
        generator.tokenizer.count,
        ChatSettings(),
        EngineSettings(max_new_tokens=12, first_chunk_timeout_s=60, claim_idle_ms=6000),
    )
    answers: dict[ConversationKey, list[tuple[str, str]]] = {}
    problems: list[str] = []
    stop = asyncio.Event()

    async def converse(key: ConversationKey) -> None:
        answers[key] = []
        n = 0
        while not stop.is_set():
            n += 1
            job_id, streamed = "", ""
            try:
                async for event in service.ask(key, f"question {n}"):
                    if isinstance(event, Submitted):
                        job_id = event.job_id
                    elif isinstance(event, Delta):
                        streamed += event.text
                    elif isinstance(event, Restart):
                        streamed = ""
                    elif isinstance(event, Answer):
                        if event.text != streamed.strip():
                            problems.append(f"{key.channel} {job_id}: garbled")
                        answers[key].append((job_id, event.text))
            except Exception as exc:  # every failure is a finding, reported below
                problems.append(f"{key.channel} question {n}: {type(exc).__name__}: {exc}")

    workers.start("through-restarts")
    try:
        await wait_for_workers(engine, {"through-restarts"})
        keys_of = [ConversationKey("test", "w", f"c{i}") for i in range(CONVERSATIONS)]
        talkers = [asyncio.create_task(converse(key)) for key in keys_of]
        outage = []
        for _ in range(restarts):
            await asyncio.sleep(1.0)
            killed = time.monotonic()
            server.stop(kill=True)  # SIGKILL: only what reached the AOF survives
            server.start()
            outage.append(time.monotonic() - killed)
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*talkers), 120)
        store = ConversationStore(redis, keys)
        duplicated_turns = duplicated_chunks = lost_turns = 0
        for key, got in answers.items():
            turns = await store.history(key)
            ids = [t.id for t in turns]
            duplicated_turns += sum(n - 1 for n in Counter(ids).values())
            lost_turns += len({job_id for job_id, _ in got} - set(ids))
            for job_id, _ in got:
                chunks = await raw_chunks(redis, keys, job_id)
                numbers = Counter((c.attempt, c.seq) for c in chunks)
                duplicated_chunks += sum(n - 1 for n in numbers.values())
        info = await redis.xinfo_stream(keys.jobs)
        asked = sum(len(got) for got in answers.values())
    finally:
        workers.stop_all()
        await engine.close()
        await redis.aclose()
    figures = {
        "test": "Redis SIGKILL + restart under 12 conversations asking nonstop",
        "restarts": restarts,
        "answers": asked,
        "problems": len(problems),
        "lost_turns": lost_turns,
        "duplicated_turns": duplicated_turns,
        "duplicated_chunks": duplicated_chunks,
        "jobs_queued": info["entries-added"],
        "outage_s_max": round(max(outage), 2),
    }
    print(json.dumps(figures))
    assert problems == []
    assert asked >= CONVERSATIONS
    assert (lost_turns, duplicated_turns, duplicated_chunks) == (0, 0, 0)
    assert info["entries-added"] == asked, "each question queued once"
