"""SIGTERM to a worker's process group: it exits within 2 s; answers it could not finish are
released and another worker takes them at once, not after the idle timeout."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import redis.asyncio as aioredis

from airoboros_bot.config.keys import Keys
from airoboros_bot.engine.client import EngineClient
from airoboros_bot.engine.generator import Generator
from airoboros_bot.engine.protocol import Job, Sampling
from tests.answer_audit import Tally, raw_chunks, read_answer
from tests.polling import eventually, queue_settles
from tests.worker_processes import WorkerProcesses, wait_for_workers

PROMPT = "A chat between a curious user and an assistant. USER: Tell me a long story. ASSISTANT: "
EXIT_WITHIN_S = 2.0


async def _streaming(redis: aioredis.Redis, keys: Keys, job_id: str) -> bool:
    return any(c.kind == "token" for c in await raw_chunks(redis, keys, job_id))


async def _exit_time(process, sent_at: float) -> float:
    while process.poll() is None:
        if time.monotonic() - sent_at > 30:
            raise AssertionError("the worker did not exit")
        await asyncio.sleep(0.01)
    return time.monotonic() - sent_at


async def test_sigterm_releases_running_answers_to_another_worker_at_once(
    redis_url: str, key_prefix: str, generator: Generator, client: EngineClient, redis
) -> None:
    keys = Keys(key_prefix)
    # The default idle limit (30 s): a released answer must not wait for it.
    workers = WorkerProcesses(redis_url, key_prefix, generator.model_dir)
    try:
        leaving = workers.start("leaving", new_group=True)
        await wait_for_workers(client, {"leaving"})
        jobs = [Job(f"{PROMPT}{i}", 1900, Sampling(0.9)) for i in range(3)]
        handles = [await client.submit(job) for job in jobs]
        readers = [asyncio.create_task(read_answer(client, h, redis, keys)) for h in handles]
        await eventually(lambda: _streaming(redis, keys, handles[0].job_id), timeout=30)
        workers.start("staying")
        await wait_for_workers(client, {"staying"})
        sent_at = time.monotonic()
        os.killpg(leaving.pid, signal.SIGTERM)
        took = await _exit_time(leaving, sent_at)
        audits = await asyncio.wait_for(asyncio.gather(*readers), 60)
    finally:
        workers.stop_all()
    tally = Tally("SIGTERM to a worker's process group mid-answer, another worker running")
    tally.add(audits, sent_at)
    print(json.dumps({"worker_exit_s": round(took, 2)}))
    tally.check()
    assert leaving.returncode == 0
    assert took < EXIT_WITHIN_S
    assert tally.rerun == 3, "the released answers ran again on the other worker"
    assert max(tally.recover_s) < 5, "taken at once, not after the 30 s idle limit"
    for audit in audits:
        assert {c.worker for c in audit.raw if c.attempt > 1 and c.worker} == {"staying"}
    await queue_settles(redis, keys)


async def test_answers_that_end_within_the_grace_period_are_finished(
    redis_url: str, key_prefix: str, generator: Generator, client: EngineClient, redis
) -> None:
    keys = Keys(key_prefix)
    workers = WorkerProcesses(redis_url, key_prefix, generator.model_dir, shutdown_grace_s=20)
    try:
        leaving = workers.start("finishing", new_group=True)
        await wait_for_workers(client, {"finishing"})
        handles = [await client.submit(Job(f"{PROMPT}{i}", 300, Sampling(0.9))) for i in range(3)]
        readers = [asyncio.create_task(read_answer(client, h, redis, keys)) for h in handles]
        await eventually(lambda: _streaming(redis, keys, handles[0].job_id), timeout=30)
        os.killpg(leaving.pid, signal.SIGTERM)
        await _exit_time(leaving, time.monotonic())
        audits = await asyncio.wait_for(asyncio.gather(*readers), 30)
    finally:
        workers.stop_all()
    tally = Tally("SIGTERM with a long grace period")
    tally.add(audits)
    tally.check()
    assert [a.attempts for a in audits] == [1, 1, 1]
    assert all(a.done.tokens == 300 for a in audits)
    await queue_settles(redis, keys)
