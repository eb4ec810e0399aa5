"""Reading streams on a Redis Cluster: one round trip per read, and one XREAD over many reply
streams when (and only when) their jobs share a hash tag."""

from __future__ import annotations

import pytest
from redis.exceptions import RedisClusterException, ResponseError

from airoboros_bot.config.keys import Keys
from airoboros_bot.engine.redis_connect import RedisClient
from tests.topologies import ValkeyCluster


def _key_lookups(cluster: ValkeyCluster) -> int:
    """``COMMAND GETKEYS`` calls served by all nodes so far."""
    total = 0
    for node in cluster.nodes:
        client = node.client()
        try:
            stats = client.info("commandstats")
        finally:
            client.close()
        total += int(stats.get("cmdstat_command|getkeys", {}).get("calls", 0))
    return total


async def test_stream_reads_cost_one_round_trip(
    cluster: ValkeyCluster, redis: RedisClient, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    before = _key_lookups(cluster)
    for n in range(6):
        out = keys.job_output(f"job{n}")
        await redis.xadd(out, {"kind": "token"})
        assert await redis.xread({out: "0-0"}, count=10)
    await redis.xgroup_create(keys.jobs, "g", id="0", mkstream=True)
    await redis.xadd(keys.jobs, {"job": "{}"})
    assert await redis.xreadgroup("g", "c", {keys.jobs: ">"}, count=1)
    assert _key_lookups(cluster) == before, "redis-py asked a node where the keys of XREAD are"


async def test_one_xread_covers_the_reply_streams_of_jobs_with_one_tag(
    redis: RedisClient, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    tagged = [keys.job_output(f"reader7~{n}") for n in range(8)]
    for name in tagged:
        await redis.xadd(name, {"kind": "token"})
    reply = await redis.xread(dict.fromkeys(tagged, "0-0"), count=10)
    assert sorted(stream for stream, _ in reply) == sorted(tagged)

    untagged = [keys.job_output(f"job{n}") for n in range(8)]  # one slot each
    with pytest.raises((RedisClusterException, ResponseError)):
        await redis.xread(dict.fromkeys(untagged, "0-0"), count=10)
