"""Exactly once for readers, whatever happens to the workers.

Real `airoboros-bot worker` processes are SIGKILLed or SIGSTOPped by pid mid-answer, over many
trials; every answer must arrive once, whole, with the streamed text equal to the final text.
Each test prints its figures as one JSON line (``pytest -s``). ``AIROBOROS_CHAOS=1`` runs the long
variant (60 kill trials, 6 stall trials) for soak runs.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis

from airoboros_bot.config.keys import CONSUMER_GROUP, Keys
from airoboros_bot.config.settings import EngineSettings
from airoboros_bot.engine.client import EngineClient
from airoboros_bot.engine.generator import Generator
from airoboros_bot.engine.protocol import Chunk, Job, Sampling
from airoboros_bot.engine.scripts import QueueScripts
from airoboros_bot.engine.worker import Worker
from tests.answer_audit import Tally, raw_chunks, read_answer
from tests.polling import eventually, queue_settles
from tests.worker_processes import WorkerProcesses, wait_for_workers

CHAOS = os.environ.get("AIROBOROS_CHAOS") == "1"
PROMPT = "A chat between a curious user and an assistant. USER: Tell me a long story. ASSISTANT: "
CLAIM_IDLE_MS = 1200
SETTINGS = {"claim_idle_ms": CLAIM_IDLE_MS, "heartbeat_s": 0.3, "max_deliveries": 10}


@pytest.fixture
def processes(redis_url: str, key_prefix: str, generator: Generator) -> Iterator[WorkerProcesses]:
    # The model never ends an answer by itself: every attempt runs long enough to be hit.
    workers = WorkerProcesses(redis_url, key_prefix, generator.model_dir, **SETTINGS)
    try:
        yield workers
    finally:
        workers.stop_all()


async def _owner_once_streaming(redis: aioredis.Redis, keys: Keys, job_id: str) -> str | None:
    """The worker streaming the job's current attempt, once it has sent text (None: the answer
    ended before any text was seen)."""
    for _ in range(1000):
        chunks = await raw_chunks(redis, keys, job_id)
        if any(c.final for c in chunks):
            return None
        starts = [c for c in chunks if c.kind in ("start", "reset")]
        if starts and chunks[-1].kind == "token":
            return starts[-1].worker
        await asyncio.sleep(0.01)
    raise AssertionError("the answer never started streaming")


def _jobs(client: EngineClient, trial: int, count: int, tokens: int) -> list[Job]:
    # Ids from the client, as the bots' are: one XREAD reads all the answers (on a cluster too).
    return [
        Job(
            f"{PROMPT}{trial}.{i}",
            max_new_tokens=tokens,
            sampling=Sampling(0.9),
            id=client.new_job_id(),
        )
        for i in range(count)
    ]


async def test_workers_killed_mid_answer_lose_double_or_garble_nothing(
    processes: WorkerProcesses, client: EngineClient, redis: aioredis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    trials = 60 if CHAOS else 4
    alive = {"w0", "w1"}
    for name in alive:
        processes.start(name)
    await wait_for_workers(client, alive)
    tally = Tally("worker SIGKILL mid-answer, 2 workers, 3 answers per trial")
    started = len(alive)
    for trial in range(trials):
        handles = [await client.submit(job) for job in _jobs(client, trial, 3, 400)]
        readers = [asyncio.create_task(read_answer(client, h, redis, keys)) for h in handles]
        owner = await _owner_once_streaming(redis, keys, handles[0].job_id)
        killed_at = None
        if owner is not None:
            killed_at = processes.kill(owner)
            alive.discard(owner)
            replacement = f"w{started}"
            started += 1
            processes.start(replacement)
            alive.add(replacement)
        audits = await asyncio.wait_for(asyncio.gather(*readers), 60)
        tally.add(audits, killed_at)
        await wait_for_workers(client, alive)
    tally.check()
    assert tally.rerun >= trials, "the kills hit answers mid-stream"
    await queue_settles(redis, keys)


async def test_a_stalled_worker_that_resumes_writes_nothing(
    processes: WorkerProcesses, client: EngineClient, redis: aioredis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    trials = 6 if CHAOS else 2
    tally = Tally("worker SIGSTOP past the claim timeout, then SIGCONT, 3 answers per trial")
    for trial in range(trials):
        stalled, rescuer = f"stalled-{trial}", f"rescuer-{trial}"
        processes.start(stalled)
        await wait_for_workers(client, {stalled})
        handles = [await client.submit(job) for job in _jobs(client, trial, 3, 1500)]
        readers = [asyncio.create_task(read_answer(client, h, redis, keys)) for h in handles]
        assert await _owner_once_streaming(redis, keys, handles[0].job_id) == stalled
        stopped_at = processes.signal(stalled, signal.SIGSTOP)
        processes.start(rescuer)  # reclaims after the idle limit and runs the answers again
        job_ids = [h.job_id for h in handles]
        await eventually(
            lambda ids=job_ids: _all_rerun(redis, keys, ids),
            timeout=60,
            what="every answer taken over",
        )
        # The stalled worker wakes up in the middle of that run, its generation still going.
        processes.signal(stalled, signal.SIGCONT)
        audits = await asyncio.wait_for(asyncio.gather(*readers), 90)
        tally.add(audits, stopped_at)
        for audit in audits:
            writers = {c.worker for c in audit.raw if c.attempt > 1 and c.worker}
            assert writers == {rescuer}, "after the takeover only the new owner wrote"
        processes.kill(stalled)
        processes.kill(rescuer)
    tally.check()
    assert tally.rerun == tally.answers
    await queue_settles(redis, keys)


async def _all_rerun(redis: aioredis.Redis, keys: Keys, job_ids: list[str]) -> bool:
    for job_id in job_ids:
        chunks = await raw_chunks(redis, keys, job_id)
        if not any(c.kind == "token" and c.attempt > 1 for c in chunks):
            return False
    return True


async def test_reclaimed_jobs_stay_claimed_while_they_wait(
    redis: aioredis.Redis, key_prefix: str, generator: Generator, client: EngineClient
) -> None:
    """Jobs a worker reclaimed and holds for its next batch are never reclaimed again, by
    another worker or by itself."""
    keys = Keys(key_prefix)
    settings = EngineSettings(claim_idle_ms=600, heartbeat_s=0.15, max_new_tokens=8)
    holder = Worker(redis, generator, keys, settings, name="holder")
    other = Worker(redis, generator, keys, settings, name="other")
    await holder.heartbeat()
    await redis.xgroup_create(keys.jobs, CONSUMER_GROUP, id="0", mkstream=True)
    handles = [await client.submit(job) for job in _jobs(client, 0, 3, 8)]
    # A worker took the jobs and died: they sit in its pending list, idle.
    await redis.xreadgroup(CONSUMER_GROUP, "dead", {keys.jobs: ">"}, count=10)
    await asyncio.sleep(settings.claim_idle_ms / 1000)
    assert await holder.reclaim() == 3
    await asyncio.sleep(settings.claim_idle_ms / 1000)
    assert await holder.reclaim() == 0, "a held job is never queued twice"
    for _ in range(8):  # what run() does every heartbeat_s while the jobs wait for a batch
        await holder.heartbeat()
        await asyncio.sleep(settings.heartbeat_s)
    assert await other.reclaim() == 0, "held jobs are kept claimed"
    serving = asyncio.create_task(holder.run())
    try:
        audits = await asyncio.wait_for(
            asyncio.gather(*(read_answer(client, h, redis, keys) for h in handles)), 60
        )
    finally:
        holder.stop()
        await serving
    tally = Tally("reclaimed jobs waiting in a worker")
    tally.add(audits)
    tally.check()
    assert [a.attempts for a in audits] == [1, 1, 1]


async def test_a_worker_that_lost_its_job_cannot_write(
    redis: aioredis.Redis, key_prefix: str
) -> None:
    """The fencing scripts themselves: the newest attempt owns the reply stream; a repeated
    write adds nothing; a finished job cannot be begun again."""
    keys = Keys(key_prefix)
    scripts = QueueScripts(redis)
    run, out, cancel = keys.job_run("j"), keys.job_output("j"), keys.job_cancel("j")

    async def begin(token: str) -> list:
        return await scripts.begin(keys=[run, out], args=[token, 60, 5, "1", token, 3])

    async def emit(token: str, final: bool, *chunks: tuple[int, Chunk]) -> int:
        args: list = [token, 60, "1" if final else "0"]
        for seq, chunk in chunks:
            args += [seq, chunk.to_fields()["chunk"]]
        last, _ = await scripts.emit(keys=[run, out, cancel], args=args)
        return int(last)

    assert await begin("a") == ["ok", 1]
    assert await begin("a") == ["ok", 1], "a retried begin changes nothing"
    assert await emit("a", False, (1, Chunk("token", "old ", attempt=1, seq=1))) == 1
    assert await emit("a", False, (1, Chunk("token", "old ", attempt=1, seq=1))) == 1
    assert await begin("b") == ["ok", 2]
    assert await emit("a", False, (2, Chunk("token", "stale", attempt=1, seq=2))) == -1
    await redis.set(cancel, "1", ex=60)
    assert await scripts.emit(keys=[run, out, cancel], args=["b", 60, "0"]) == [0, 1], (
        "a write also reports that the reader asked to stop"
    )
    assert await emit("b", True, (1, Chunk("done", "new", attempt=2, seq=1))) == 1
    assert await begin("c") == ["done", 2]
    assert not await redis.exists(cancel), "the final write clears the cancel request"
    chunks = await raw_chunks(redis, keys, "j")
    assert [(c.kind, c.attempt, c.seq, c.text) for c in chunks] == [
        ("start", 1, 0, ""),
        ("token", 1, 1, "old "),
        ("reset", 2, 0, ""),
        ("done", 2, 1, "new"),
    ]
