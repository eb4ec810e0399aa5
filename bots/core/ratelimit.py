"""Limits kept in Redis and shared by every bot process: requests per user (sliding window)
and the message-edit budget of a workspace (token bucket)."""

from __future__ import annotations

import asyncio
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


# KEYS[1] the user's window; ARGV: window seconds. How many requests it holds now.
_USED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
return redis.call('ZCOUNT', KEYS[1], now - tonumber(ARGV[1]), '+inf')
"""


class RateLimiter:
    """Allows at most ``limit`` requests per ``window_s`` seconds for each user key."""

    def __init__(
        self, redis: aioredis.Redis, prefix: str, limit: int, window_s: float = 60.0
    ) -> None:
        self._script = redis.register_script(_SLIDING_WINDOW)
        self._used = redis.register_script(_USED)
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

    async def used(self, user: str) -> int:
        """How many requests ``user`` made in the current window (not counted as one)."""
        count = await self._used(keys=[f"{self._prefix}:ratelimit:{user}"], args=[self.window_s])
        return int(count)


# KEYS[1] the bucket (hash: tokens, ts, paused). ARGV: rate per second, capacity, pause seconds
# (0 = take a token), key TTL. Time is the server's. Returns "0" when a token was taken, else
# the seconds until one may be there (a pause returns its length).
_TOKEN_BUCKET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, capacity = tonumber(ARGV[1]), tonumber(ARGV[2])
local pause = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'paused')
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
local paused = tonumber(state[3]) or 0
local since = math.max(ts, paused)
if now > since then tokens = math.min(capacity, tokens + (now - since) * rate) end
local wait = 0
if pause > 0 then
  paused = math.max(paused, now + pause)
  tokens = 0
  wait = paused - now
elseif now < paused then
  wait = paused - now
elseif tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now), 'paused',
  tostring(paused))
redis.call('EXPIRE', KEYS[1], ARGV[4])
return tostring(wait)
"""


class SharedEditBudget:
    """The edit budget of one workspace, shared in Redis by every bot process (an
    `EditAllowance`): a token bucket of ``per_minute`` edits with ``burst`` at once.

    A ``pause`` (the platform answered 429 with Retry-After) stops every process's edits until
    it ends. Atomic across processes; time is the Redis server's.
    """

    def __init__(
        self, redis: aioredis.Redis, key: str, per_minute: float, burst: int | None = None
    ) -> None:
        self._script = redis.register_script(_TOKEN_BUCKET)
        self._key = key
        self.rate = per_minute / 60.0
        self.capacity = burst if burst is not None else max(1, int(per_minute // 6))
        self._ttl = int(60 * self.capacity / per_minute) + 120

    async def _call(self, pause: float = 0.0) -> float:
        wait = await self._script(
            keys=[self._key], args=[self.rate, self.capacity, pause, self._ttl]
        )
        return float(wait)

    async def try_take(self) -> bool:
        """Take a token if one is there."""
        return await self._call() == 0.0

    async def take(self) -> None:
        """Wait for a token."""
        while wait := await self._call():
            await asyncio.sleep(min(max(0.05, wait), 5.0))

    async def pause(self, seconds: float) -> None:
        """No edits for anyone in the workspace for ``seconds``."""
        await self._call(max(0.001, seconds))
