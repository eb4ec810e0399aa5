"""Many answers read at once by one process on a Redis Cluster, through its one reply reader.

One ``XREAD`` may only name keys of one slot; the engine client's job ids (``tag~uuid``) put
every reply stream of its answers, and its reader's wake stream, on the slot of ``{tag}``. The
worker is a real `airoboros-bot worker` process on a fast model (four tokens an answer).
"""

from __future__ import annotations

import asyncio
import json
import time

from airoboros_bot.config.keys import Keys
from airoboros_bot.engine.client import EngineClient, Queued
from airoboros_bot.engine.generator import Generator
from airoboros_bot.engine.protocol import Job, Sampling
from airoboros_bot.engine.redis_connect import connect
from tests.engine import conftest as engine_fixtures
from tests.scale_out.borrow import borrow
from tests.topologies import ValkeyCluster
from tests.worker_processes import WorkerProcesses, wait_for_workers

borrow(globals(), engine_fixtures)

PROMPT = "A chat between a curious user and an assistant. USER: Hi! ASSISTANT: "
ANSWERS = 1000
MAX_CONNECTIONS = 12


def _per_node(cluster: ValkeyCluster, name: str) -> tuple[list[int], int]:
    """Connections named ``name`` on each node, and XREAD calls served by all nodes so far."""
    connections, xreads = [], 0
    for node in cluster.nodes:
        client = node.client()
        try:
            connections.append(sum(1 for c in client.client_list() if c.get("name") == name))
            stats = client.info("commandstats")
        finally:
            client.close()
        xreads += int(stats.get("cmdstat_xread", {}).get("calls", 0))
    return connections, xreads


async def test_a_thousand_answers_at_once_on_the_cluster(
    cluster: ValkeyCluster, redis_url: str, key_prefix: str, generator: Generator
) -> None:
    keys = Keys(key_prefix)
    workers = WorkerProcesses(
        redis_url, key_prefix, generator.model_dir, max_batch_size=128, batch_wait_ms=5
    )
    name = f"readers-{key_prefix}"
    client_redis = await connect(redis_url, max_connections=MAX_CONNECTIONS, client_name=name)
    client = EngineClient(client_redis, keys, first_chunk_timeout_s=120, max_answers=ANSWERS)
    peak = [0] * len(cluster.nodes)
    try:
        workers.start("fast")
        await wait_for_workers(client, {"fast"})
        _, xreads_before = await asyncio.to_thread(_per_node, cluster, name)

        async def answer(i: int) -> int:
            job = Job(f"{PROMPT}{i}", 4, sampling=Sampling(0.8), id=client.new_job_id())
            handle = await client.submit(job)
            done = [c async for c in client.stream(handle) if not isinstance(c, Queued)]
            assert done[-1].kind == "done"
            return done[-1].tokens

        async def sample() -> None:
            while True:
                counts, _ = await asyncio.to_thread(_per_node, cluster, name)
                peak[:] = [max(p, c) for p, c in zip(peak, counts, strict=True)]
                await asyncio.sleep(0.1)

        sampler = asyncio.create_task(sample())
        started = time.monotonic()
        tokens = await asyncio.wait_for(asyncio.gather(*(answer(i) for i in range(ANSWERS))), 240)
        wall = time.monotonic() - started
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
        _, xreads_after = await asyncio.to_thread(_per_node, cluster, name)
    finally:
        await client.close()
        await client_redis.aclose()
        workers.stop_all()
    xreads = xreads_after - xreads_before
    print(
        json.dumps(
            {
                "test": f"{ANSWERS} concurrent answers, one process, one worker, 3-primary cluster",
                "complete": sum(1 for t in tokens if t == 4),
                "wall_s": round(wall, 2),
                "redis_connections_peak_per_node": peak,
                "xread_calls": xreads,
            }
        )
    )
    assert tokens == [4] * ANSWERS
    # (+1: the connection the cluster client keeps to the seed node it learnt the slots from)
    assert all(p <= MAX_CONNECTIONS + 1 for p in peak) and sum(peak) > 0
    assert xreads < ANSWERS / 2, "the answers were read together, not one XREAD loop each"
