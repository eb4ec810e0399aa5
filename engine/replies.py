"""One reader per process for every reply stream it waits on: one ``XREAD BLOCK`` at a time.

Each answer being read `watch`es its job's reply stream and gets the new entries on its own
queue; a single task reads all watched streams with one blocking ``XREAD`` and hands the entries
out. However many answers a process reads at once, this holds one Redis connection. A stream
watched while that read blocks wakes it through a small wake stream of this reader, so a new
answer does not wait for the block to time out.

(In a Redis Cluster one ``XREAD`` can only name keys of one slot: the streams would be grouped per
node here, one read per group.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from airoboros_bot.config.keys import Keys
from airoboros_bot.engine.scripts import text

log = logging.getLogger(__name__)
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
Entries = list[tuple[str, dict]]


def stream_order(entry_id: str) -> tuple[int, int]:
    """A stream entry id as a sortable pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class Watch:
    """One reader's view of one reply stream: entries after ``last_id``, in order."""

    def __init__(self, key: str, after: str) -> None:
        self.key = key
        self.last_id = after
        self._queue: asyncio.Queue[Entries | BaseException] = asyncio.Queue()

    def deliver(self, entries: Entries) -> None:
        """Queue the entries newer than what was delivered before."""
        new = [
            (entry_id, fields)
            for entry_id, fields in entries
            if stream_order(entry_id) > stream_order(self.last_id)
        ]
        if new:
            self.last_id = new[-1][0]
            self._queue.put_nowait(new)

    def fail(self, exc: BaseException) -> None:
        """Hand an error of the shared read to the reader."""
        self._queue.put_nowait(exc)

    async def next(self, timeout: float) -> Entries:
        """The next entries (all that arrived), or [] after ``timeout`` seconds."""
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return []
        entries = item
        if isinstance(entries, BaseException):
            raise entries
        while not self._queue.empty():
            more = self._queue.get_nowait()
            if isinstance(more, BaseException):
                raise more
            entries = entries + more
        return entries


class ReplyReader:
    """Reads every watched reply stream with one blocking ``XREAD`` at a time."""

    def __init__(
        self, redis: aioredis.Redis, keys: Keys, *, block_ms: int = 1000, count: int = 256
    ) -> None:
        self._redis = redis
        self._block_ms = block_ms
        self._count = count
        self._wake_key = keys.reply_wake(uuid.uuid4().hex)
        self._wake_last = "0-0"
        self._watches: dict[str, list[Watch]] = {}
        self._task: asyncio.Task[None] | None = None
        self._waking: asyncio.Task[None] | None = None
        self._reading = False  # an XREAD is being sent or is blocked
        self._woken = False  # a wake-up for the current XREAD is on its way
        self.down_since: float | None = None
        """When the shared read last started failing (None while Redis answers)."""

    @property
    def watching(self) -> int:
        """How many watches are open."""
        return sum(len(w) for w in self._watches.values())

    def watch(self, key: str, after: str = "0-0") -> Watch:
        """Start watching stream ``key`` for entries after ``after``."""
        watch = Watch(key, after)
        self._watches.setdefault(key, []).append(watch)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._read_loop(), name="reply-reader")
        elif self._reading and not self._woken:
            self._woken = True
            self._waking = asyncio.create_task(self._wake(), name="reply-reader-wake")
        return watch

    def unwatch(self, watch: Watch) -> None:
        """Stop watching (the shared read drops the stream from its next round)."""
        watches = self._watches.get(watch.key, [])
        if watch in watches:
            watches.remove(watch)
        if not watches:
            self._watches.pop(watch.key, None)

    async def close(self) -> None:
        """Stop the shared read."""
        self._watches.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _wake(self) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.xadd(self._wake_key, {"w": "1"}, maxlen=1, approximate=False)
                pipe.expire(self._wake_key, 60)
                await pipe.execute()
        except REDIS_DOWN:
            pass  # the read comes back by itself when its block times out

    async def _read_loop(self) -> None:
        while self._watches:
            self._reading, self._woken = True, False
            streams = {
                key: min((w.last_id for w in watches), key=stream_order)
                for key, watches in self._watches.items()
            }
            streams[self._wake_key] = self._wake_last
            try:
                reply = await self._redis.xread(streams, block=self._block_ms, count=self._count)
            except REDIS_DOWN:
                self._reading = False
                if self.down_since is None:
                    self.down_since = time.monotonic()
                    log.warning("lost the connection to Redis while reading replies; retrying")
                await asyncio.sleep(0.5)
                continue
            except Exception as exc:  # a bug or a server error: every reader hears of it
                self._reading = False
                log.exception("reading reply streams failed")
                for watches in list(self._watches.values()):
                    for watch in watches:
                        watch.fail(exc)
                await asyncio.sleep(0.5)
                continue
            self._reading = False
            self.down_since = None
            for key, entries in reply or []:
                key = text(key)
                if key == self._wake_key:
                    self._wake_last = text(entries[-1][0])
                    continue
                decoded = [(text(entry_id), fields) for entry_id, fields in entries]
                for watch in self._watches.get(key, []):
                    watch.deliver(decoded)
