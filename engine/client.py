"""The bot-side engine client: enqueue a job, then read the job's own reply stream.

Submitting is safe to repeat (`engine.scripts.submit`). Reading goes through the process's one
`engine.replies.ReplyReader`, so a thousand answers read at once hold one Redis connection (on a
Redis Cluster too: `new_job_id` gives job ids on the reader's slot), and after Redis comes back
it reads again from the start, the fence dropping what was seen. Past ``max_answers`` answers at
once a submission is refused with `EngineBusy`. Nothing here blocks the event loop.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from airoboros_bot.config.keys import CONSUMER_GROUP, Keys
from airoboros_bot.engine.errors import EngineError
from airoboros_bot.engine.protocol import Chunk, ChunkFence, Job
from airoboros_bot.engine.redis_connect import RedisClient, pool_exhausted
from airoboros_bot.engine.replies import ReplyReader, stream_order
from airoboros_bot.engine.scripts import SUBMITTED_TTL_S, QueueScripts, text

log = logging.getLogger(__name__)
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
QUEUE_SCAN_LIMIT = 10_000
"""Queue positions are counted up to this many waiting jobs."""


class EngineUnavailable(EngineError):
    """No worker is running, or Redis cannot be reached."""


class EngineBusy(EngineError):
    """This process already waits for as many answers as it may."""


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


class _QueueSnapshot:
    """Where the consumer group stands, read at most once per interval for every waiting
    answer together (two commands, whatever the number of answers)."""

    def __init__(self, redis: RedisClient, keys: Keys, interval_s: float) -> None:
        self._redis = redis
        self._keys = keys
        self._interval_s = interval_s
        self._at = -1e9
        self._last = (0, 0)
        self._waiting: list[tuple[int, int]] = []
        self._lock = asyncio.Lock()

    async def position(self, entry_id: str, *, fresh: bool = False) -> int | None:
        """Jobs ahead of ``entry_id``, or None once a worker has taken it."""
        async with self._lock:
            if fresh or time.monotonic() - self._at >= self._interval_s:
                await self._refresh()
        entry = stream_order(entry_id)
        if entry <= self._last:
            return None
        return bisect.bisect_left(self._waiting, entry)

    async def _refresh(self) -> None:
        try:
            groups = await self._redis.xinfo_groups(self._keys.jobs)
        except ResponseError:
            groups = []
        group = next((g for g in groups if g["name"] == CONSUMER_GROUP), None)
        last = text(group["last-delivered-id"]) if group else "0-0"
        waiting = await self._redis.xrange(self._keys.jobs, f"({last}", "+", QUEUE_SCAN_LIMIT)
        self._last = stream_order(last)
        self._waiting = [stream_order(text(entry_id)) for entry_id, _ in waiting]
        self._at = time.monotonic()


class EngineClient:
    """Submits jobs to the worker pool and streams their answers back."""

    def __init__(
        self,
        redis: RedisClient,
        keys: Keys,
        *,
        first_chunk_timeout_s: float = 60.0,
        poll_block_ms: int = 1000,
        redis_name: str = "Redis",
        max_answers: int = 1000,
        liveness_check_s: float = 2.0,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = QueueScripts(redis)
        self._first_chunk_timeout_s = first_chunk_timeout_s
        self._poll_s = poll_block_ms / 1000
        self._redis_name = redis_name
        self._max_answers = max_answers
        self._liveness_check_s = liveness_check_s
        self._reader = ReplyReader(redis, keys, block_ms=poll_block_ms)
        self._queue = _QueueSnapshot(redis, keys, self._poll_s)
        self._reserved: dict[str, float] = {}  # submitted here, not being read yet
        self._alive = True  # whether a worker was alive at the last shared check
        self._alive_at = -1e9
        self._alive_lock = asyncio.Lock()

    def new_job_id(self) -> str:
        """A fresh job id on this client's reply reader's slot (``tag~uuid``): give it to the
        jobs submitted here, so one ``XREAD`` reads all their replies on a Redis Cluster too
        (any id works; others are polled there)."""
        return self._reader.new_job_id()

    def _unreachable(self) -> EngineUnavailable:
        return EngineUnavailable(
            f"Cannot reach {self._redis_name}: check AIROBOROS_REDIS_URL or start the server."
        )

    def _busy(self) -> EngineBusy:
        return EngineBusy(
            f"Too many answers are being written right now ({self.open_answers} here): "
            "try again in a moment."
        )

    def failure(self, exc: BaseException) -> EngineError:
        """The error to show for a Redis connection error: busy (every pooled connection in
        use) or unreachable."""
        return self._busy() if pool_exhausted(exc) else self._unreachable()

    @property
    def open_answers(self) -> int:
        """Answers this client is reading or has submitted and is about to read."""
        return self._reader.watching + len(self._reserved)

    def _reserve(self, job_id: str) -> None:
        now = time.monotonic()
        for stale in [j for j, at in self._reserved.items() if now - at > 60]:
            del self._reserved[stale]  # submitted, never read: not a reader any more
        if self.open_answers >= self._max_answers:
            raise self._busy()
        self._reserved[job_id] = now

    async def close(self) -> None:
        """Stop reading replies (readers still waiting get nothing more)."""
        await self._reader.close()

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
        except REDIS_DOWN as exc:
            raise self.failure(exc) from None
        return sorted(n for n, flag in zip(names, flags, strict=True) if flag)

    async def submit(self, job: Job) -> JobHandle:
        """Put the job on the queue, once even if the command is sent again after a lost reply.

        Raises EngineBusy past ``max_answers`` open answers, EngineUnavailable when no worker is
        alive or Redis cannot be reached.
        """
        self._reserve(job.id)
        try:
            if not await self.live_workers():
                raise EngineUnavailable(
                    "No engine worker is running: start one with `airoboros-bot worker`."
                )
            try:
                entry_id = await self._scripts.submit(
                    keys=[self._keys.jobs, self._keys.job_submitted(job.id)],
                    args=[job.to_fields()["job"], SUBMITTED_TTL_S],
                )
            except REDIS_DOWN as exc:
                raise self.failure(exc) from None
        except BaseException:
            self._reserved.pop(job.id, None)
            raise
        return JobHandle(job.id, text(entry_id))

    async def cancel(self, job_id: str) -> None:
        """Ask the worker to stop this job's generation (it ends within one step).

        The cancel key is what counts; the pub/sub message only makes the worker see it sooner.
        (Two commands, not one pipeline: a Redis Cluster pipeline refuses PUBLISH.)
        """
        await self._redis.set(self._keys.job_cancel(job_id), "1", ex=3600)
        await self._redis.publish(self._keys.cancel_channel, job_id)

    async def _workers_alive(self) -> bool:
        """Whether any worker is alive, asked at most once per ``liveness_check_s`` for all
        the answers waiting here together."""
        async with self._alive_lock:
            if time.monotonic() - self._alive_at >= self._liveness_check_s:
                self._alive = bool(await self.live_workers())
                self._alive_at = time.monotonic()
            return self._alive

    async def queue_position(self, handle: JobHandle) -> int | None:
        """How many jobs are ahead of this one, or None once a worker has taken it."""
        return await self._queue.position(handle.entry_id, fresh=True)

    async def stream(
        self, handle: JobHandle, *, after: str = "0-0", deadline: float | None = None
    ) -> AsyncIterator[Chunk | Queued]:
        """Yield the job's chunks in order until ``done`` or ``failed``: one attempt at a time
        (a ``reset`` starts the next), each chunk once, never text of two runs mixed.

        While no worker has taken the job, yields `Queued` whenever its position changes. If the
        reader stops early (breaks, is cancelled or times out), the job is cancelled so no GPU
        time is wasted on an answer nobody reads. Raises JobFailed / JobTimedOut / EngineBusy /
        EngineUnavailable with a one-line message. While it waits, the workers' heartbeats are
        checked every ``liveness_check_s`` (once for all waiting answers): when none is left the
        wait ends at once (within a heartbeat TTL of the last worker's death, not after
        ``first_chunk_timeout_s``).
        """
        if self._reserved.pop(handle.job_id, None) is None and (
            self.open_answers >= self._max_answers
        ):
            raise self._busy()
        watch = self._reader.watch(self._keys.job_output(handle.job_id), after)
        started = False
        last_position: int | None = -1
        waiting_since = time.monotonic()
        finished = False
        fence = ChunkFence()
        try:
            while True:
                if deadline is not None and time.time() > deadline:
                    raise JobTimedOut("The answer took too long and was stopped.")
                entries = await watch.next(self._poll_s)
                if not entries:
                    down_since = self._reader.down_since
                    if down_since is not None:
                        if time.monotonic() - down_since > self._first_chunk_timeout_s:
                            raise self._unreachable()
                        continue
                    if started:
                        continue
                    try:  # read at most once per interval for all waiting answers
                        position = await self._queue.position(handle.entry_id)
                        alive = await self._workers_alive()
                    except REDIS_DOWN:
                        continue
                    except EngineError:  # busy: every pooled connection in use
                        continue
                    if not alive:
                        raise EngineUnavailable(
                            "The engine worker stopped before answering: "
                            "start one with `airoboros-bot worker` and ask again."
                        )
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
                started = True
                waiting_since = time.monotonic()
                for _, fields in entries:
                    for chunk in fence.admit(Chunk.from_fields(fields)):
                        if chunk.final:
                            finished = True  # a reader that stops here has nothing to cancel
                        yield chunk
                        if chunk.kind == "failed":
                            raise JobFailed(chunk.error or "The engine could not answer.")
                        if chunk.kind == "done":
                            return
        finally:
            self._reader.unwatch(watch)
            if not finished:
                try:
                    await asyncio.shield(self.cancel(handle.job_id))
                except Exception:
                    log.debug("could not cancel job %s", handle.job_id)
