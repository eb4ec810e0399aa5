"""Platforms re-deliver events they think were lost (Slack: ``X-Slack-Retry-Num``, the same
``event_id``): the first delivery is handled, later ones are dropped, across every process."""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from airoboros_bot.config.keys import Keys

log = logging.getLogger(__name__)


class Deliveries:
    """Remembers delivery ids for ``ttl_s`` with Redis ``SET NX``."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, platform: str, ttl_s: int) -> None:
        self._redis = redis
        self._keys = keys
        self.platform = platform
        self.ttl_s = ttl_s

    async def first(self, delivery_id: str) -> bool:
        """True for the first delivery of ``delivery_id`` (atomic across processes).

        When Redis cannot say, the event is handled: a rare double answer beats a lost one.
        """
        try:
            name = self._keys.delivery(self.platform, delivery_id)
            return bool(await self._redis.set(name, "1", nx=True, ex=self.ttl_s))
        except (RedisError, OSError) as exc:
            log.warning("could not check delivery %s: %s", delivery_id, type(exc).__name__)
            return True
