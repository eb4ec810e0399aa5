"""Scale-out fixtures: the tests of this folder run on a real 3-primary Valkey cluster.

``redis_url`` is the cluster's URL form (``redis+cluster://...``), so worker and chat
subprocesses started by borrowed tests connect to the cluster through the same setting a
deployment uses, and ``redis`` is the client `connect` builds for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from airoboros_bot.engine.redis_connect import RedisClient, connect
from tests.topologies import ValkeyCluster


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyCluster]:
    """Three Valkey primaries forming one cluster, for the whole session."""
    with ValkeyCluster(tmp_path_factory.mktemp("cluster")) as started:
        yield started


@pytest.fixture(scope="session")
def redis_url(cluster: ValkeyCluster) -> str:
    """AIROBOROS_REDIS_URL of the cluster."""
    return cluster.url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[RedisClient]:
    """A cluster client, as `connect` builds it for the bots and workers."""
    client = await connect(redis_url)
    try:
        yield client
    finally:
        await client.aclose()
