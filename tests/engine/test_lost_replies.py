"""Writes whose reply is lost after the server applied them land once.

A client configured as in production sends a command again when its connection breaks before
the reply; the proxy here makes that happen on purpose (`tests.reply_dropping_proxy`).
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from airoboros_bot.config.keys import Keys
from airoboros_bot.config.settings import EngineSettings
from airoboros_bot.engine.client import EngineClient
from airoboros_bot.engine.generator import Generator
from airoboros_bot.engine.protocol import Job, Sampling
from airoboros_bot.engine.worker import Worker
from tests.answer_audit import Tally, read_answer
from tests.polling import queue_settles
from tests.reply_dropping_proxy import ReplyDroppingProxy, evalsha_on

PROMPT = "A chat between a curious user and an assistant. USER: Tell me a story. ASSISTANT: "


async def test_the_proxy_doubles_a_plain_append(
    lossy: tuple[ReplyDroppingProxy, aioredis.Redis], redis: aioredis.Redis, key_prefix: str
) -> None:
    """The control: a write that is not idempotent lands twice through the proxy."""
    proxy, client = lossy
    proxy.drop_replies(lambda c: c[0].upper() == b"XADD")
    await client.xadd(f"{key_prefix}:plain", {"n": "1"})
    assert len(proxy.dropped) == 1
    assert await redis.xlen(f"{key_prefix}:plain") == 2


async def test_a_submission_whose_reply_is_lost_is_queued_once(
    lossy: tuple[ReplyDroppingProxy, aioredis.Redis],
    redis: aioredis.Redis,
    key_prefix: str,
    generator: Generator,
    engine_settings: EngineSettings,
) -> None:
    proxy, client = lossy
    keys = Keys(key_prefix)
    await Worker(redis, generator, keys, engine_settings, name="present").heartbeat()
    proxy.drop_replies(evalsha_on(b":jobs"))
    handle = await EngineClient(client, keys).submit(Job(PROMPT, max_new_tokens=4))
    assert len(proxy.dropped) == 1
    entries = await redis.xrange(keys.jobs)
    assert [entry_id for entry_id, _ in entries] == [handle.entry_id]


async def test_chunks_and_acks_whose_replies_are_lost_land_once(
    lossy: tuple[ReplyDroppingProxy, aioredis.Redis],
    redis: aioredis.Redis,
    key_prefix: str,
    generator: Generator,
    client: EngineClient,
) -> None:
    proxy, lossy_client = lossy
    keys = Keys(key_prefix)
    settings = EngineSettings(batch_wait_ms=20, heartbeat_s=0.3, claim_idle_ms=3000)
    worker = Worker(lossy_client, generator, keys, settings, name="behind-the-proxy")
    await worker.heartbeat()
    serving = asyncio.create_task(worker.run())
    # begin, every streamed write and the final one go through `evalsha` on the job's run key;
    # the acknowledgement through `evalsha` on the job stream.
    scripts = worker.scripts
    sha = {name: getattr(scripts, name).sha.encode() for name in ("begin", "emit", "ack")}
    on_run = evalsha_on(b":run")

    def final_write(c: list[bytes]) -> bool:
        return on_run(c) and c[1] == sha["emit"] and c[8] == b"1"

    proxy.drop_replies(final_write, times=2)
    proxy.drop_replies(on_run, times=6, every=2)
    proxy.drop_replies(lambda c: evalsha_on(b":jobs")(c) and c[1] == sha["ack"], times=2)
    try:
        jobs = [Job(f"{PROMPT}{i}", max_new_tokens=200, sampling=Sampling(0.9)) for i in range(3)]
        handles = [await client.submit(job) for job in jobs]
        audits = await asyncio.wait_for(
            asyncio.gather(*(read_answer(client, h, redis, keys) for h in handles)), 60
        )
    finally:
        worker.stop()
        await asyncio.wait_for(serving, 30)
    dropped = {(c[1], c[8] == b"1" if c[1] == sha["emit"] else False) for c in proxy.dropped}
    assert dropped >= {(sha["begin"], False), (sha["emit"], False), (sha["emit"], True)}
    assert (sha["ack"], False) in dropped
    tally = Tally("replies lost after the write: begin, token chunks, final chunks, acks")
    tally.add(audits)
    tally.check()
    assert all(a.attempts == 1 for a in audits), "a lost reply never makes a job run again"
    await queue_settles(redis, keys)


async def test_a_submission_resent_after_its_job_was_answered_queues_nothing(
    worker: Worker, client: EngineClient, redis: aioredis.Redis, key_prefix: str
) -> None:
    """A resent submission can arrive after a fast job was already answered and acknowledged
    (the client waits before resending): the job is still queued once."""
    keys = Keys(key_prefix)
    job = Job(PROMPT, max_new_tokens=4)
    first = await client.submit(job)
    async for _ in client.stream(first):
        pass
    await queue_settles(redis, keys)
    again = await client.submit(job)  # what the client's resend does
    assert again == first
    assert (await redis.xinfo_stream(keys.jobs))["entries-added"] == 1
