"""The Redis client every process uses: a bounded pool, retries, and what its errors mean.

Commands wait for a free connection (up to ``pool_timeout_s``) instead of failing when all
``max_connections`` are busy; a command whose connection breaks is sent again after a backoff
(safe, because every write of the queue and the store can be repeated).
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError
from redis.exceptions import TimeoutError as RedisTimeoutError

POOL_EXHAUSTED = "No connection available."
"""The message of the error redis-py raises when no pooled connection came free in time."""


def connect(
    url: str,
    *,
    max_connections: int = 32,
    pool_timeout_s: float = 10.0,
    retries: int = 8,
    client_name: str | None = None,
) -> aioredis.Redis:
    """A client of ``url`` on a blocking pool of at most ``max_connections`` connections.

    Raises ValueError for a URL that is not a Redis URL. Nothing connects until the first
    command.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=pool_timeout_s,
        decode_responses=True,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), retries=retries),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=15,
        socket_connect_timeout=3,
        client_name=client_name,
    )
    return aioredis.Redis.from_pool(pool)


def stop_retrying(redis: aioredis.Redis) -> None:
    """Fail fast from now on (shutting down: a server that went away is not coming back)."""
    redis.set_retry(Retry(NoBackoff(), 0))


def pool_exhausted(exc: BaseException) -> bool:
    """Whether ``exc`` says every pooled connection was busy (not that Redis is down)."""
    return isinstance(exc, MaxConnectionsError) or (
        isinstance(exc, RedisConnectionError) and str(exc) == POOL_EXHAUSTED
    )
