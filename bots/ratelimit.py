"""A per-user request limit kept in Redis (sliding window), shared by every bot process."""

from __future__ import annotations

import time
import uuid

import redis.asyncio as aioredis

# KEYS[1] the user's window; ARGV: now, window, limit, member, ttl.
# Returns "" when the request is allowed (and counts it), else the oldest request's time.
_SLIDING_WINDOW = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, tonumber(ARGV[1]) - tonumber(ARGV[2]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return oldest[2]
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return ''
"""


class RateLimiter:
    """Allows at most ``limit`` requests per ``window_s`` seconds for each user key."""

    def __init__(
        self, redis: aioredis.Redis, prefix: str, limit: int, window_s: float = 60.0
    ) -> None:
        self._script = redis.register_script(_SLIDING_WINDOW)
        self._prefix = prefix
        self.limit = limit
        self.window_s = window_s

    async def check(self, user: str) -> float:
        """Record a request; returns 0 if allowed, else the seconds to wait before retrying.

        Atomic across processes; a refused request is not counted; a limit of 0 means none.
        """
        if self.limit <= 0:
            return 0.0
        now = time.time()
        oldest = await self._script(
            keys=[f"{self._prefix}:ratelimit:{user}"],
            args=[
                now,
                self.window_s,
                self.limit,
                f"{now}:{uuid.uuid4().hex[:8]}",
                int(self.window_s) + 1,
            ],
        )
        if not oldest:
            return 0.0
        return max(0.1, float(oldest) + self.window_s - now)
