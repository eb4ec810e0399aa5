"""Telling the admin, not the user: the engine is offline.

Users of a team bot cannot start a worker; they are told the answer engine is offline and that
an admin has been told. The admin gets the real reason three ways: a log line (at most one a
minute per process, with the count since), the Prometheus counter
``airoboros_bot_engine_offline_total`` and a Redis hash (`Keys.alerts`) with the count, the
last time and the last reason, which every bot process shares.
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter
from redis.exceptions import RedisError

from airoboros_bot.config.keys import Keys

log = logging.getLogger(__name__)

OFFLINE = "The answer engine is offline right now; an admin has been told. Please try again later."
ENGINE_OFFLINE = "engine_offline"
LOG_EVERY_S = 60.0

REGISTRY = CollectorRegistry()
ENGINE_OFFLINE_TOTAL = Counter(
    "airoboros_bot_engine_offline",
    "Questions that found no engine worker (the user was told it is offline)",
    ["platform"],
    registry=REGISTRY,
)


class EngineAlerts:
    """Records "engine offline" for the admin and gives the text for the user."""

    def __init__(self, redis: aioredis.Redis | None, keys: Keys, platform: str) -> None:
        self._redis = redis
        self._keys = keys
        self.platform = platform
        self._last_log = -LOG_EVERY_S
        self._unlogged = 0

    async def engine_offline(self, reason: str) -> str:
        """Count and log the admin's ``reason``; returns what to tell the user."""
        ENGINE_OFFLINE_TOTAL.labels(self.platform).inc()
        self._unlogged += 1
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY_S:
            log.error(
                "engine offline (%d question(s) refused since the last report): %s",
                self._unlogged,
                reason,
            )
            self._last_log, self._unlogged = now, 0
        if self._redis is not None:
            name = self._keys.alerts(ENGINE_OFFLINE)
            try:
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.hincrby(name, "count", 1)
                    pipe.hset(name, mapping={"last": f"{time.time():.0f}", "reason": reason})
                    await pipe.execute()
            except (RedisError, OSError):
                pass  # Redis may be what is down; the log line has it
        return OFFLINE
