"""The process's reply reader after a lost connection: it reads its streams again from the start.

After a failover that lost the newest writes, a reply stream can get new entries with ids at or
below the last id a reader saw; reading on from that id would skip them (even the ``done``).
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from airoboros_bot.config.keys import Keys
from airoboros_bot.engine.client import EngineClient, JobHandle
from airoboros_bot.engine.protocol import Chunk
from tests.reply_dropping_proxy import ReplyDroppingProxy


def _entry(chunk: Chunk) -> dict[str, str]:
    return chunk.to_fields()


async def test_a_reader_reads_again_from_the_start_after_a_lost_connection(
    lossy: tuple[ReplyDroppingProxy, aioredis.Redis], redis: aioredis.Redis, key_prefix: str
) -> None:
    proxy, through_proxy = lossy
    keys = Keys(key_prefix)
    client = EngineClient(through_proxy, keys, poll_block_ms=200)
    job_id = client.new_job_id()
    out = keys.job_output(job_id)
    await redis.xadd(out, _entry(Chunk("start", attempt=1, seq=0)), id="100-1")
    await redis.xadd(out, _entry(Chunk("token", "a", attempt=1, seq=1)), id="100-2")
    seen: list[Chunk] = []
    first_two = asyncio.Event()

    async def read() -> None:
        async for chunk in client.stream(JobHandle(job_id, "1-0")):
            assert isinstance(chunk, Chunk)
            seen.append(chunk)
            if len(seen) == 2:
                first_two.set()

    reader = asyncio.create_task(read())
    try:
        await asyncio.wait_for(first_two.wait(), 10)
        # A failover that lost the newest writes: the stream the new primary has ends lower
        # than what the reader saw, and the worker's next entries get ids below 100-2. The
        # replica had the first token (the fence drops it as a repeat).
        proxy.drop_replies(lambda command: command[0].upper() == b"XREAD")
        await redis.delete(out)
        await redis.xadd(out, _entry(Chunk("start", attempt=1, seq=0)), id="40-1")
        await redis.xadd(out, _entry(Chunk("token", "a", attempt=1, seq=1)), id="40-2")
        await redis.xadd(out, _entry(Chunk("token", "b", attempt=1, seq=2)), id="50-1")
        await redis.xadd(out, _entry(Chunk("done", "ab", attempt=1, seq=3)), id="60-1")
        await asyncio.wait_for(reader, 10)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await client.close()
    assert proxy.dropped, "the reader's connection was lost"
    assert [(c.kind, c.text) for c in seen] == [
        ("start", ""),
        ("token", "a"),
        ("token", "b"),
        ("done", "ab"),
    ]
