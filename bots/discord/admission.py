"""Whether a question (or a new game) may go ahead now: the engine is up and the user is within
the rate limit, checked quickly enough to leave room in Discord's 3 s to answer. An engine that
is down is reported to the admin (`EngineAlerts`); the user reads that an admin has been told."""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from airoboros_bot.bots.core.alerts import EngineAlerts
from airoboros_bot.bots.core.ratelimit import RateLimiter
from airoboros_bot.bots.discord import text
from airoboros_bot.engine.client import EngineClient
from airoboros_bot.engine.errors import EngineError

log = logging.getLogger(__name__)

ADMIT_TIMEOUT_S = 1.5  # Redis checks before the deferral must leave room in Discord's 3 s
NO_WORKER = "No engine worker is running: start one with `airoboros-bot worker`."


class Admission:
    """The checks before a question goes to the engine or a game starts."""

    def __init__(self, engine: EngineClient, limiter: RateLimiter, alerts: EngineAlerts) -> None:
        self.engine = engine
        self.limiter = limiter
        self.alerts = alerts

    async def refusal(self, user_id: int, *, need_engine: bool = True) -> str | None:
        """Check the engine is up (unless not ``need_engine``: games fall back to their bank)
        and the user is within the rate limit (None = go ahead)."""
        try:
            async with asyncio.timeout(ADMIT_TIMEOUT_S):
                if need_engine and not await self.engine.live_workers():
                    return await self.alerts.engine_offline(NO_WORKER)
                wait = await self.limiter.check(f"discord:{user_id}")
        except (TimeoutError, RedisError, OSError, EngineError) as exc:
            reason = getattr(exc, "user_message", "") or type(exc).__name__
            return await self.alerts.engine_offline(f"cannot check the engine queue: {reason}")
        if wait:
            what = "questions" if need_engine else "questions or new games"
            return text.rate_limited(wait, self.limiter.limit, what)
        return None
