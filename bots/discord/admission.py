"""Whether a question (or a new game) may go ahead now: the engine is up and the user is within
the rate limit, checked quickly enough to leave room in Discord's 3 s to answer."""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from airoboros_bot.bots.core.ratelimit import RateLimiter
from airoboros_bot.bots.discord import text
from airoboros_bot.engine.client import EngineClient
from airoboros_bot.engine.errors import EngineError

log = logging.getLogger(__name__)

ADMIT_TIMEOUT_S = 1.5  # Redis checks before the deferral must leave room in Discord's 3 s
ENGINE_DOWN = "The answer engine is down (no worker is running): try again in a little while."
QUEUE_DOWN = "The answer engine's queue cannot be reached right now: try again in a moment."


class Admission:
    """The checks before a question goes to the engine or a game starts."""

    def __init__(self, engine: EngineClient, limiter: RateLimiter) -> None:
        self.engine = engine
        self.limiter = limiter

    async def refusal(self, user_id: int, *, need_engine: bool = True) -> str | None:
        """Check the engine is up (unless not ``need_engine``: games fall back to their bank)
        and the user is within the rate limit (None = go ahead)."""
        try:
            async with asyncio.timeout(ADMIT_TIMEOUT_S):
                if need_engine and not await self.engine.live_workers():
                    return ENGINE_DOWN
                wait = await self.limiter.check(f"discord:{user_id}")
        except (TimeoutError, RedisError, OSError, EngineError) as exc:
            log.warning("cannot check the engine or rate limit: %s", type(exc).__name__)
            return QUEUE_DOWN
        if wait:
            what = "questions" if need_engine else "questions or new games"
            return text.rate_limited(wait, self.limiter.limit, what)
        return None
