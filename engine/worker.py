"""The engine worker: claim jobs from the consumer group, micro-batch, stream tokens, ack.

One worker per GPU; any number of workers on any number of hosts share one consumer group.
Delivery is at-least-once: a job is acknowledged only after its final chunk is written; a worker
that dies leaves it pending, and any live worker reclaims it after ``claim_idle_ms`` (the reply
stream then gets a ``reset`` chunk). After ``max_deliveries`` the job goes to the dead-letter
stream and its reader gets a clear error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from airoboros_bot.config.keys import CONSUMER_GROUP, Keys
from airoboros_bot.config.settings import EngineSettings
from airoboros_bot.engine.generator import Generator, LiveTokens, SamplingParams
from airoboros_bot.engine.metrics import WorkerMetrics
from airoboros_bot.engine.protocol import Chunk, FinishReason, Job
from airoboros_bot.engine.streaming import AnswerText, decode_new

log = logging.getLogger(__name__)
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
_FINISH_ATTEMPTS = 20  # about 30 s of retries


@dataclass
class _Delivery:
    """A job as delivered to this worker."""

    entry_id: str
    job: Job
    attempt: int


@dataclass
class _Running:
    """A job inside a running batch: its text grows as `streaming.decode_new` decodes the ids
    CTranslate2 appends to ``answer.ids``."""

    delivery: _Delivery
    answer: AnswerText
    finish: FinishReason | None = None
    first_token_at: float = 0.0

    @property
    def job(self) -> Job:
        return self.delivery.job


class Worker:
    """Runs jobs from the Redis job stream on one `Generator`."""

    def __init__(
        self,
        redis: aioredis.Redis,
        generator: Generator,
        keys: Keys,
        settings: EngineSettings,
        *,
        name: str | None = None,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.redis = redis
        self.metrics = metrics or WorkerMetrics()
        self.generator = generator
        self.keys = keys
        self.settings = settings
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        # As many batches in flight as the model has replicas (resolved by device when 0).
        self._slots = asyncio.Semaphore(max(1, settings.inter_threads or generator.inter_threads))
        self._running: dict[str, str] = {}  # entry id -> job id
        self._reclaimed: asyncio.Queue[_Delivery] = asyncio.Queue()
        self._stopping = asyncio.Event()
        self._cancelled: set[str] = set()  # ids of running jobs whose reader asked to stop
        self._wakeups: set[asyncio.Event] = set()  # set to flush running batches at once
        self.jobs_done = 0
        self.started_at = time.time()

    # -- life cycle ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve jobs until `stop()` is called."""
        while True:
            try:
                await self._ensure_group()
                break
            except REDIS_DOWN:
                log.warning("Redis unreachable; retrying in 1 s")
                await asyncio.sleep(1.0)
        background = [
            asyncio.create_task(self._heartbeat_loop(), name="worker-heartbeat"),
            asyncio.create_task(self._janitor_loop(), name="worker-janitor"),
            asyncio.create_task(self._cancel_listener(), name="worker-cancels"),
        ]
        batches: set[asyncio.Task[None]] = set()
        log.info("worker %s ready: %s", self.name, self.generator.describe())
        try:
            while not self._stopping.is_set():
                await self._slots.acquire()
                try:
                    deliveries = await self._next_batch()
                except REDIS_DOWN:
                    self._slots.release()
                    log.warning("Redis unreachable; retrying in 1 s")
                    await asyncio.sleep(1.0)
                    continue
                except ResponseError as exc:
                    self._slots.release()
                    if "NOGROUP" not in str(exc):
                        raise
                    await self._ensure_group()
                    continue
                if not deliveries:
                    self._slots.release()
                    continue
                task = asyncio.create_task(self._run_deliveries(deliveries))
                batches.add(task)
                task.add_done_callback(batches.discard)
        finally:
            self._stopping.set()
            if batches:
                await asyncio.gather(*batches, return_exceptions=True)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            with contextlib.suppress(REDIS_DOWN):
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.delete(self.keys.worker_health(self.name))
                    pipe.zrem(self.keys.workers, self.name)
                    await pipe.execute()

    def stop(self) -> None:
        """Finish the running batches, then return from `run()`."""
        self._stopping.set()

    async def _ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.keys.jobs, CONSUMER_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    # -- taking jobs --------------------------------------------------------------------------
    async def _next_batch(self) -> list[_Delivery]:
        limit = self.settings.max_batch_size
        deliveries: list[_Delivery] = []
        while not self._reclaimed.empty() and len(deliveries) < limit:
            deliveries.append(self._reclaimed.get_nowait())
        if not deliveries:
            deliveries = await self._read_new(limit, block_ms=500)
            if not deliveries:
                return []
        # Collect a burst: every arrival restarts the short wait, up to batch_wait_max_ms.
        wait_ms = self.settings.batch_wait_ms
        cap = time.monotonic() + self.settings.batch_wait_max_ms / 1000
        # (An asyncio sleep, then a non-blocking read: Redis checks short BLOCK timeouts only
        # at its cron tick, 100 ms by default, so `BLOCK 2` can wait 100 ms.)
        while len(deliveries) < limit and wait_ms > 0 and time.monotonic() < cap:
            await asyncio.sleep(wait_ms / 1000)
            more = await self._read_new(limit - len(deliveries), block_ms=None)
            if not more:
                break
            deliveries += more
        return deliveries

    async def _read_new(self, count: int, block_ms: int | None) -> list[_Delivery]:
        reply = await self.redis.xreadgroup(
            CONSUMER_GROUP, self.name, {self.keys.jobs: ">"}, count=count, block=block_ms
        )
        deliveries = []
        for entry_id, fields in reply[0][1] if reply else []:
            delivery = await self._decode(str(entry_id), fields, attempt=1)
            if delivery:
                deliveries.append(delivery)
        return deliveries

    async def _decode(self, entry_id: str, fields: dict, attempt: int) -> _Delivery | None:
        try:
            job = Job.from_fields(fields)
        except ValueError as exc:
            log.error("dropping malformed job entry %s: %s", entry_id, exc)
            await self.redis.xadd(self.keys.dead_letters, {"entry": entry_id, "error": str(exc)})
            await self._ack(entry_id)
            return None
        return _Delivery(entry_id, job, attempt)

    async def _ack(self, entry_id: str) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xack(self.keys.jobs, CONSUMER_GROUP, entry_id)
            pipe.xdel(self.keys.jobs, entry_id)
            await pipe.execute()

    # -- running jobs -------------------------------------------------------------------------
    async def _run_deliveries(self, deliveries: list[_Delivery]) -> None:
        try:
            groups: dict[SamplingParams, list[_Delivery]] = defaultdict(list)
            for delivery in await self._filter_runnable(deliveries):
                s = delivery.job.sampling
                params = SamplingParams(s.temperature, s.top_k, s.top_p, s.repetition_penalty)
                groups[params].append(delivery)
            for params, group in groups.items():
                await self._run_batch(params, group)
        except REDIS_DOWN:
            log.warning("Redis went away during a batch; its jobs will be reclaimed")
        except Exception:
            log.exception("batch failed")
        finally:
            for delivery in deliveries:
                self._running.pop(delivery.entry_id, None)
                self._cancelled.discard(delivery.job.id)
            self._slots.release()

    async def _filter_runnable(self, deliveries: list[_Delivery]) -> list[_Delivery]:
        """Settle jobs that were cancelled, expired or failed too often before running."""
        # One EXISTS per job, pipelined: an MGET over the jobs' cancel keys spans hash slots,
        # which a Redis Cluster refuses.
        async with self.redis.pipeline(transaction=False) as pipe:
            for delivery in deliveries:
                pipe.exists(self.keys.job_cancel(delivery.job.id))
            cancelled = await pipe.execute()
        runnable = []
        now = time.time()
        for delivery, flag in zip(deliveries, cancelled, strict=True):
            if flag:
                await self._finish(delivery, Chunk(kind="done", finish_reason="cancelled"))
            elif delivery.job.deadline and now > delivery.job.deadline:
                await self._finish(delivery, Chunk(kind="failed", error="Timed out in the queue."))
            else:
                self._running[delivery.entry_id] = delivery.job.id
                runnable.append(delivery)
        return runnable

    async def _run_batch(self, params: SamplingParams, group: list[_Delivery]) -> None:
        tokenizer = self.generator.tokenizer
        window = self.settings.context_length
        running: list[_Running] = []
        prompts: list[list[str]] = []
        limits: list[int] = []
        # Off the event loop, which streams the other running batches meanwhile.
        encoded = await asyncio.to_thread(tokenizer.encode_prompts, [d.job.prompt for d in group])
        for delivery, tokens in zip(group, encoded, strict=True):
            room = window - len(tokens)
            if room < 1:
                error = f"Prompt too long: {len(tokens)} tokens, the model's window is {window}."
                await self._finish(delivery, Chunk(kind="failed", error=error))
                continue
            running.append(_Running(delivery, AnswerText([], delivery.job.stop)))
            prompts.append(tokens)
            limits.append(min(delivery.job.max_new_tokens, room))
        if not running:
            return

        async with self.redis.pipeline(transaction=False) as pipe:
            for item, prompt in zip(running, prompts, strict=True):
                kind = "reset" if item.delivery.attempt > 1 else "start"
                chunk = Chunk(
                    kind=kind,
                    worker=self.name,
                    attempt=item.delivery.attempt,
                    prompt_tokens=len(prompt),
                )
                pipe.xadd(self.keys.job_output(item.job.id), chunk.to_fields())
            await pipe.execute()

        self.metrics.batch_size.observe(len(running))
        self.metrics.running_jobs.inc(len(running))
        began = time.monotonic()
        loop = asyncio.get_running_loop()
        arrived = asyncio.Event()
        # CTranslate2 appends each job's ids to its answer's list with no call into this code per
        # token (the GPU waits for every step's callbacks); the first token of any job wakes the
        # loop (time to first text), the rest are flushed every stream_interval_ms.
        live = LiveTokens(
            [item.answer.ids for item in running],
            [False] * len(running),
            on_first_token=lambda: loop.call_soon_threadsafe(arrived.set),
        )
        generation = asyncio.ensure_future(
            asyncio.to_thread(self.generator.generate, prompts, limits, params, live=live)
        )
        interval = self.settings.stream_interval_ms / 1000
        self._wakeups.add(arrived)
        try:
            while True:
                finished = generation.done()
                await self._flush(running, live.stop)
                if finished:
                    break
                arrived.clear()
                waiter = asyncio.ensure_future(arrived.wait())
                await asyncio.wait(
                    [generation, waiter], return_when=asyncio.FIRST_COMPLETED, timeout=interval
                )
                waiter.cancel()
        finally:
            self._wakeups.discard(arrived)
        try:
            results = generation.result()
        finally:
            self.metrics.running_jobs.dec(len(running))
        generated = sum(len(ids) for ids in results)
        self.metrics.generated_tokens.inc(generated)
        self.metrics.tokens_per_second.set(generated / max(1e-6, time.monotonic() - began))
        decode_new(tokenizer, [item.answer for item in running], final=True)
        for item, ids, limit, prompt in zip(running, results, limits, prompts, strict=True):
            if item.answer.stopped:
                item.finish = "stop"
            if item.finish is None and item.job.deadline and time.time() > item.job.deadline:
                item.finish = "deadline"
            reason = item.finish or ("length" if len(ids) >= limit else "eos")
            done = Chunk(
                kind="done",
                text=item.answer.text.strip(),
                finish_reason=reason,
                tokens=len(ids),
                prompt_tokens=len(prompt),
                worker=self.name,
                attempt=item.delivery.attempt,
            )
            await self._finish(item.delivery, done, rest=item.answer.rest())

    async def _flush(self, running: list[_Running], stop: list[bool]) -> None:
        """Stream new text of every job and pick up cancel requests in one round trip.

        All jobs' new ids are decoded together (`streaming.decode_new`). If Redis is
        unreachable, nothing is marked as sent: the next flush sends it again.
        """
        decode_new(self.generator.tokenizer, [item.answer for item in running])
        emitted = [item.answer.emitted for item in running]
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for item in running:
                    piece = item.answer.unsent()
                    if piece:
                        out = self.keys.job_output(item.job.id)
                        pipe.xadd(out, Chunk("token", piece).to_fields())
                for item in running:  # one EXISTS per job: jobs' keys are in different slots
                    pipe.exists(self.keys.job_cancel(item.job.id))
                replies = await pipe.execute()
        except REDIS_DOWN:
            for item, before in zip(running, emitted, strict=True):
                item.answer.emitted = before
            log.warning("Redis unreachable while streaming; holding the text back")
            await asyncio.sleep(0.2)
            return
        now = time.time()
        flags = replies[len(replies) - len(running) :]
        for index, (item, flag) in enumerate(zip(running, flags, strict=True)):
            if item.answer.emitted and not item.first_token_at:
                item.first_token_at = now
                self.metrics.time_to_first_token.observe(max(0.0, now - item.job.created))
            if item.finish is None:
                if item.answer.stopped:
                    item.finish = "stop"
                elif flag or item.job.id in self._cancelled:
                    item.finish = "cancelled"
                elif item.job.deadline and now > item.job.deadline:
                    stop[index] = True  # reported as "deadline" when the batch ends
            if item.finish is not None:
                stop[index] = True

    async def _finish(self, delivery: _Delivery, chunk: Chunk, rest: str = "") -> None:
        """Write the final chunk (after any last text), then acknowledge the job.

        Retries while Redis is briefly away; if it stays away the job stays pending and is
        reclaimed once Redis is back.
        """
        out = self.keys.job_output(delivery.job.id)
        for attempt in range(_FINISH_ATTEMPTS):
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    if rest:
                        pipe.xadd(out, Chunk("token", rest).to_fields())
                    pipe.xadd(out, chunk.to_fields())
                    pipe.expire(out, self.settings.reply_ttl_s)
                    pipe.delete(self.keys.job_cancel(delivery.job.id))
                    pipe.xack(self.keys.jobs, CONSUMER_GROUP, delivery.entry_id)
                    pipe.xdel(self.keys.jobs, delivery.entry_id)
                    await pipe.execute()
                break
            except REDIS_DOWN:
                if attempt == _FINISH_ATTEMPTS - 1:
                    raise
                log.warning("Redis unreachable while finishing job %s; retrying", delivery.job.id)
                await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
        self.jobs_done += 1
        outcome = chunk.finish_reason if chunk.kind == "done" else "failed"
        self.metrics.jobs.labels(outcome or "eos").inc()
        self.metrics.job_latency.observe(max(0.0, time.time() - delivery.job.created))

    # -- health and recovery ------------------------------------------------------------------
    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake up at once when the worker is told to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _heartbeat_loop(self) -> None:
        # Loops end on `_stopping`, not only on cancellation: a cancel that lands inside a
        # Redis call's own timeout can surface as TimeoutError (an OSError), which is handled
        # below like a Redis outage and would swallow the cancel.
        while not self._stopping.is_set():
            try:
                await self.heartbeat()
            except REDIS_DOWN:
                log.warning("heartbeat: Redis unreachable")
            await self._pause(self.settings.heartbeat_s)

    async def heartbeat(self) -> None:
        """Report in (health key with TTL) and keep this worker's running jobs claimed."""
        info = {
            "name": self.name,
            "engine": self.generator.describe(),
            "started": self.started_at,
            "jobs_done": self.jobs_done,
            "running": len(self._running),
            "at": time.time(),
        }
        ttl = self.settings.health_ttl_s
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self.keys.worker_health(self.name), json.dumps(info), ex=ttl)
            pipe.zadd(self.keys.workers, {self.name: now + ttl})
            pipe.zremrangebyscore(self.keys.workers, "-inf", now - 24 * 3600)
            await pipe.execute()
        await self._measure_queue()
        if self._running:
            await self.redis.xclaim(
                self.keys.jobs, CONSUMER_GROUP, self.name, 0, list(self._running), justid=True
            )

    async def _measure_queue(self) -> None:
        try:
            groups = await self.redis.xinfo_groups(self.keys.jobs)
        except ResponseError:
            return
        for group in groups:
            if group["name"] == CONSUMER_GROUP and group.get("lag") is not None:
                self.metrics.queue_depth.set(int(group["lag"]))

    async def _cancel_listener(self) -> None:
        """Hear cancel requests at once (pub/sub); the cancel keys checked at every flush stay
        the fallback when a message is missed."""
        while not self._stopping.is_set():
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.keys.cancel_channel)
                while not self._stopping.is_set():
                    message = await pubsub.get_message(timeout=0.5)
                    if not message:
                        continue
                    data = message["data"]
                    job_id = data.decode() if isinstance(data, bytes) else str(data)
                    if job_id in self._running.values():
                        self._cancelled.add(job_id)
                        for wakeup in self._wakeups:  # the next flush stops it
                            wakeup.set()
            except REDIS_DOWN:
                await self._pause(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _janitor_loop(self) -> None:
        interval = max(0.5, self.settings.claim_idle_ms / 2000)
        while not self._stopping.is_set():
            await self._pause(interval)
            if self._stopping.is_set():
                return
            try:
                await self.reclaim()
            except REDIS_DOWN:
                log.warning("janitor: Redis unreachable")
            except ResponseError as exc:
                log.warning("janitor: %s", exc)

    async def reclaim(self) -> int:
        """Take over jobs another worker left idle too long; dead-letter repeat failures."""
        _, claimed, _ = await self.redis.xautoclaim(
            self.keys.jobs,
            CONSUMER_GROUP,
            self.name,
            self.settings.claim_idle_ms,
            start_id="0-0",
            count=self.settings.max_batch_size,
        )
        for entry_id, fields in claimed:
            entry_id = str(entry_id)
            pending = await self.redis.xpending_range(
                self.keys.jobs, CONSUMER_GROUP, min=entry_id, max=entry_id, count=1
            )
            attempt = int(pending[0]["times_delivered"]) if pending else 2
            delivery = await self._decode(entry_id, fields, attempt=attempt)
            if delivery is None:
                continue
            if attempt > self.settings.max_deliveries:
                log.error("job %s failed %d times: dead-lettered", delivery.job.id, attempt - 1)
                self.metrics.dead_letters.inc()
                await self.redis.xadd(self.keys.dead_letters, fields)
                error = "The engine failed on this question several times and gave up."
                await self._finish(delivery, Chunk(kind="failed", error=error))
                continue
            log.warning("reclaimed job %s (attempt %d)", delivery.job.id, attempt)
            self.metrics.reclaimed.inc()
            self._reclaimed.put_nowait(delivery)
        return len(claimed)
