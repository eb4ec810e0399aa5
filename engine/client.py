"""The bot-side engine client: enqueue a job, then read the job's own reply stream.

Reading uses ``XREAD BLOCK`` from the last entry seen, so a reader that reconnects resumes where
it stopped. Nothing here blocks the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from airoboros_bot.config.keys import CONSUMER_GROUP, Keys
from airoboros_bot.engine.errors import EngineError
from airoboros_bot.engine.protocol import Chunk, Job

log = logging.getLogger(__name__)


class EngineUnavailable(EngineError):
    """No worker is running, or Redis cannot be reached."""


class JobFailed(EngineError):
    """The worker gave up on the job."""


class JobTimedOut(EngineError):
    """The answer did not arrive in time."""


@dataclass(frozen=True)
class Queued:
    """The job waits; ``ahead`` jobs are in front of it (0 = next)."""

    ahead: int


@dataclass(frozen=True)
class JobHandle:
    """A submitted job: its id and its entry id on the job stream."""

    job_id: str
    entry_id: str


def _stream_id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class EngineClient:
    """Submits jobs to the worker pool and streams their answers back."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        first_chunk_timeout_s: float = 60.0,
        poll_block_ms: int = 1000,
        redis_name: str = "Redis",
        liveness_check_s: float = 2.0,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._first_chunk_timeout_s = first_chunk_timeout_s
        self._liveness_check_s = liveness_check_s
        self._poll_block_ms = poll_block_ms
        self._redis_name = redis_name

    def _unreachable(self) -> EngineUnavailable:
        return EngineUnavailable(
            f"Cannot reach {self._redis_name}: check AIROBOROS_REDIS_URL or start the server."
        )

    async def live_workers(self) -> list[str]:
        """Names of the workers whose heartbeat key has not expired.

        Workers index themselves in a sorted set, so this costs two round trips whatever the
        size of the keyspace; the heartbeat keys stay the truth (a key that expired or was
        deleted means that worker is gone). Only when the index is empty is the keyspace scanned.
        """
        prefix = self._keys.worker_health("")
        try:
            names = await self._redis.zrangebyscore(self._keys.workers, time.time(), "+inf")
            if not names:
                found = self._redis.scan_iter(self._keys.worker_health_pattern, count=1000)
                names = [str(k).removeprefix(prefix) async for k in found]
            if not names:
                return []
            alive = await self._redis.exists(*(self._keys.worker_health(n) for n in names))
            if alive == len(names):
                return sorted(names)
            async with self._redis.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.exists(self._keys.worker_health(name))
                flags = await pipe.execute()
        except (RedisConnectionError, RedisTimeoutError, OSError):
            raise self._unreachable() from None
        return sorted(n for n, flag in zip(names, flags, strict=True) if flag)

    async def submit(self, job: Job) -> JobHandle:
        """Put the job on the queue; raise EngineUnavailable when no worker is alive."""
        if not await self.live_workers():
            raise EngineUnavailable(
                "No engine worker is running: start one with `airoboros-bot worker`."
            )
        try:
            entry_id = await self._redis.xadd(self._keys.jobs, job.to_fields())
        except (RedisConnectionError, RedisTimeoutError, OSError):
            raise self._unreachable() from None
        return JobHandle(job.id, str(entry_id))

    async def cancel(self, job_id: str) -> None:
        """Ask the worker to stop this job's generation (it ends within one step).

        The cancel key is what counts; the pub/sub message only makes the worker see it sooner.
        (Two commands, not one pipeline: a Redis Cluster pipeline refuses PUBLISH.)
        """
        await self._redis.set(self._keys.job_cancel(job_id), "1", ex=3600)
        await self._redis.publish(self._keys.cancel_channel, job_id)

    async def queue_position(self, handle: JobHandle) -> int | None:
        """How many jobs are ahead of this one, or None once a worker has taken it."""
        try:
            groups = await self._redis.xinfo_groups(self._keys.jobs)
        except ResponseError:
            return None
        group = next((g for g in groups if g["name"] == CONSUMER_GROUP), None)
        last = str(group["last-delivered-id"]) if group else "0-0"
        if _stream_id_key(handle.entry_id) <= _stream_id_key(last):
            return None
        ahead = await self._redis.xrange(self._keys.jobs, f"({last}", f"({handle.entry_id}")
        return len(ahead)

    async def stream(
        self, handle: JobHandle, *, after: str = "0-0", deadline: float | None = None
    ) -> AsyncIterator[Chunk | Queued]:
        """Yield the job's chunks in order until ``done`` or ``failed``.

        While no worker has taken the job, yields `Queued` whenever its position changes. If the
        reader stops early (breaks, is cancelled or times out), the job is cancelled so no GPU
        time is wasted on an answer nobody reads. Raises JobFailed / JobTimedOut /
        EngineUnavailable with a one-line message. While it waits, the workers' heartbeats are
        checked every ``liveness_check_s``: when none is left the wait ends at once (within a
        heartbeat TTL of the last worker's death, not after ``first_chunk_timeout_s``).
        """
        out_key = self._keys.job_output(handle.job_id)
        started = False
        last_position: int | None = -1
        waiting_since = time.monotonic()
        checked_at = waiting_since
        finished = False
        try:
            while True:
                if deadline is not None and time.time() > deadline:
                    raise JobTimedOut("The answer took too long and was stopped.")
                try:
                    reply = await self._redis.xread(
                        {out_key: after}, block=self._poll_block_ms, count=256
                    )
                    position = None if (reply or started) else await self.queue_position(handle)
                except (RedisConnectionError, RedisTimeoutError, OSError):
                    log.warning("lost the connection to Redis while reading a reply; retrying")
                    await asyncio.sleep(0.5)
                    if time.monotonic() - waiting_since > self._first_chunk_timeout_s:
                        raise self._unreachable() from None
                    continue
                if not reply:
                    if not started and time.monotonic() - checked_at >= self._liveness_check_s:
                        checked_at = time.monotonic()
                        if not await self.live_workers():
                            raise EngineUnavailable(
                                "The engine worker stopped before answering: "
                                "start one with `airoboros-bot worker` and ask again."
                            )
                    if not started:
                        if position is not None and position != last_position:
                            last_position = position
                            waiting_since = time.monotonic()
                            yield Queued(position)
                        elif time.monotonic() - waiting_since > self._first_chunk_timeout_s:
                            if not await self.live_workers():
                                raise EngineUnavailable(
                                    "The engine worker stopped before answering: "
                                    "start one with `airoboros-bot worker` and ask again."
                                )
                            raise JobTimedOut("No engine worker took the question in time.")
                    continue
                for entry_id, fields in reply[0][1]:
                    after = str(entry_id)
                    chunk = Chunk.from_fields(fields)
                    started = True
                    waiting_since = time.monotonic()
                    if chunk.kind in ("done", "failed"):
                        finished = True  # a reader that stops here has nothing to cancel
                    yield chunk
                    if chunk.kind == "failed":
                        raise JobFailed(chunk.error or "The engine could not answer.")
                    if chunk.kind == "done":
                        return
        finally:
            if not finished:
                try:
                    await asyncio.shield(self.cancel(handle.job_id))
                except Exception:
                    log.debug("could not cancel job %s", handle.job_id)
