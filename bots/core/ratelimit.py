"""A per-user request limit kept in Redis (sliding window), shared by every bot process."""

from __future__ import annotations

import uuid

import redis.asyncio as aioredis

# KEYS[1] the user's window; ARGV: window seconds, limit, unique member, key TTL.
# Time is the server's (one clock for every bot process). Returns "" when the request is allowed
# (and counts it), else the seconds until the oldest request leaves the window.
_SLIDING_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tostring(tonumber(oldest[2]) + window - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
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
        wait = await self._script(
            keys=[f"{self._prefix}:ratelimit:{user}"],
            args=[self.window_s, self.limit, uuid.uuid4().hex, int(self.window_s) + 1],
        )
        return max(0.1, float(wait)) if wait else 0.0
