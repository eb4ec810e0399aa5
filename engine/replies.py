"""One reader per process for every reply stream it waits on: one ``XREAD BLOCK`` at a time.

Each answer being read `watch`es its job's reply stream and gets the new entries on its own
queue; a single task reads all watched streams with one blocking ``XREAD`` and hands the entries
out. However many answers a process reads at once, this holds one Redis connection. A stream
watched while that read blocks wakes it through a small wake stream of this reader, so a new
answer does not wait for the block to time out.

On a Redis Cluster one ``XREAD`` can only name keys of one slot. The reader therefore has a tag
(`tag`), and the engine client gives the jobs it submits ids of the form ``tag~rest``
(`new_job_id`), which puts every key of those jobs, and the reader's wake stream, on the slot of
``{tag}``: one ``XREAD`` still covers them all. A stream of another slot (a job id from
elsewhere) is read without blocking at every round, the blocking read then waiting at most
`FOREIGN_POLL_MS`; nothing of this changes on a single server.

After a connection error the reader reads every watched stream again from ``0-0``: after a
failover that lost writes, new entries can get ids at or below the last id seen, so filtering
by entry id could skip them (even a ``done``). The readers' `protocol.ChunkFence` drops what
they already had (attempt and sequence number).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

from redis.crc import key_slot
from redis.exceptions import ClusterDownError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from airoboros_bot.config.keys import Keys
from airoboros_bot.engine.redis_connect import RedisClient, fail_fast_in_this_task, is_cluster
from airoboros_bot.engine.scripts import text

log = logging.getLogger(__name__)
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
# Also passing: a cluster whose slots are moving or whose primary is being replaced.
READ_RETRIED = (*REDIS_DOWN, ClusterDownError, TryAgainError)
FOREIGN_POLL_MS = 50
"""How long the blocking read waits while streams of other slots are watched (cluster only)."""
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

    def deliver(self, entries: Entries, *, resync: bool = False) -> None:
        """Queue the entries newer than what was delivered before; with ``resync`` (the
        stream was read again from its start) all of them, and follow the stream's ids from
        there, whatever was seen before."""
        if resync:
            new = entries
            self.last_id = entries[-1][0] if entries else "0-0"
        else:
            new = [
                (entry_id, fields)
                for entry_id, fields in entries
                if stream_order(entry_id) > stream_order(self.last_id)
            ]
            if new:
                self.last_id = new[-1][0]
        if new:
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
        self,
        redis: RedisClient,
        keys: Keys,
        *,
        block_ms: int = 1000,
        count: int = 256,
        tag: str | None = None,
    ) -> None:
        self._redis = redis
        self._block_ms = block_ms
        self._count = count
        self.tag = tag or f"r{uuid.uuid4().hex[:8]}"
        """The hash tag of this reader's jobs and wake stream."""
        self._wake_key = keys.reply_wake(self.tag)
        self._wake_last = "0-0"
        self._cluster = is_cluster(redis)
        self._slot = key_slot(self._wake_key.encode())
        self._watches: dict[str, list[Watch]] = {}
        self._task: asyncio.Task[None] | None = None
        self._waking: asyncio.Task[None] | None = None
        self._reading = False  # an XREAD is being sent or is blocked
        self._woken = False  # a wake-up for the current XREAD is on its way
        self._resync = False  # a connection error happened: read everything again from 0-0
        self.down_since: float | None = None
        """When the shared read last started failing (None while Redis answers)."""

    def new_job_id(self) -> str:
        """A fresh job id whose keys share this reader's slot (``tag~uuid``)."""
        return f"{self.tag}~{uuid.uuid4().hex}"

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
        except READ_RETRIED:
            pass  # the read comes back by itself when its block times out

    def _rounds(self, resync: bool) -> tuple[dict[str, str], list[dict[str, str]]]:
        """The streams of this reader's slot (with the wake stream), and those of every other
        slot grouped by slot (cluster only; none on a single server)."""
        own: dict[str, str] = {}
        others: dict[int, dict[str, str]] = {}
        for key, watches in self._watches.items():
            after = "0-0" if resync else min((w.last_id for w in watches), key=stream_order)
            if self._cluster and (slot := key_slot(key.encode())) != self._slot:
                others.setdefault(slot, {})[key] = after
            else:
                own[key] = after
        own[self._wake_key] = "0-0" if resync else self._wake_last
        return own, list(others.values())

    async def _read(self, resync: bool) -> tuple[list, set[str]]:
        """The reply of one round, and the streams it read."""
        own, others = self._rounds(resync)
        read = set(own).union(*others)
        reply: list = []
        for streams in others:
            reply += await self._redis.xread(streams, count=self._count) or []
        if reply:
            block = None  # something to hand out already: do not wait
        elif others:
            block = min(self._block_ms, FOREIGN_POLL_MS)
        else:
            block = self._block_ms
        reply += await self._redis.xread(own, block=block, count=self._count) or []
        return reply, read

    async def _read_loop(self) -> None:
        # A read the client retried on a new connection by itself would go on from the old
        # ids: this task hears of every lost connection, and reads again from 0-0.
        fail_fast_in_this_task()
        while self._watches:
            self._reading, self._woken = True, False
            resync = self._resync
            try:
                reply, read = await self._read(resync)
            except READ_RETRIED:
                self._reading = False
                self._resync = True
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
            self._resync = False
            by_key = {text(key): entries for key, entries in reply}
            wake = by_key.pop(self._wake_key, None)
            if wake:
                self._wake_last = text(wake[-1][0])
            for key, watches in list(self._watches.items()):
                entries = by_key.get(key)
                if entries is None and not (resync and key in read):
                    continue
                decoded = [(text(entry_id), fields) for entry_id, fields in entries or []]
                for watch in watches:
                    watch.deliver(decoded, resync=resync)
