"""The engine worker: claim jobs from the consumer group, micro-batch, stream tokens, ack.

One worker per GPU; any number of workers on any number of hosts share one consumer group.
Execution is at-least-once: a job is acknowledged only after its final chunk is written; a worker
that dies or stalls leaves it pending, and any live worker reclaims it after ``claim_idle_ms``.
Output is exactly-once for readers: each run of a job is an attempt that owns the job's reply
stream (`engine.scripts.begin`, which writes its ``start``/``reset`` chunk), and every later
write checks that ownership atomically (`engine.scripts.emit`), so a worker that lost the job
writes nothing and stops generating it. Jobs a worker holds, running or waiting, are re-claimed
every heartbeat, and only while the stream entry is still its own. After ``max_deliveries``
attempts the job goes to the dead-letter stream and its reader gets a clear error. On `stop()`
running answers get ``shutdown_grace_s`` to finish; the rest are released and queued again at
once for another worker.
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
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from airoboros_bot.config.keys import CONSUMER_GROUP, Keys
from airoboros_bot.config.settings import EngineSettings
from airoboros_bot.engine.generator import Generator, LiveTokens, SamplingParams
from airoboros_bot.engine.metrics import WorkerMetrics
from airoboros_bot.engine.protocol import Chunk, FinishReason, Job
from airoboros_bot.engine.redis_connect import RedisClient
from airoboros_bot.engine.scripts import SUBMITTED_TTL_S, QueueScripts, text
from airoboros_bot.engine.streaming import AnswerText, decode_new

log = logging.getLogger(__name__)
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
# Also retried: a script cache emptied by a Redis restart between loading and running.
TRANSIENT = (*REDIS_DOWN, NoScriptError)
_FINISH_ATTEMPTS = 20  # about 30 s of retries


@dataclass
class _Delivery:
    """A job as delivered to this worker; once begun, one attempt at it.

    ``token`` identifies this delivery as the job's owner. Chunks get their sequence numbers
    when queued in ``outbox`` and keep them until written, so a write repeated after a lost
    reply carries the same numbers and the server drops what it already has.
    """

    entry_id: str
    job: Job
    attempt: int = 0
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    seq: int = 0
    outbox: list[tuple[int, str]] = field(default_factory=list)

    def push(self, chunk: Chunk) -> None:
        """Queue ``chunk`` as the next of this attempt."""
        self.seq += 1
        numbered = Chunk(**{**chunk.__dict__, "attempt": self.attempt, "seq": self.seq})
        self.outbox.append((self.seq, numbered.to_fields()["chunk"]))

    def written(self, last_seq: int) -> None:
        """Forget the queued chunks the server has (up to ``last_seq``)."""
        self.outbox = [(seq, chunk) for seq, chunk in self.outbox if seq > last_seq]


@dataclass
class _Running:
    """A job inside a running batch: its text grows as `streaming.decode_new` decodes the ids
    CTranslate2 appends to ``answer.ids``."""

    delivery: _Delivery
    answer: AnswerText
    finish: FinishReason | None = None
    first_token_at: float = 0.0
    lost: bool = False  # another worker owns the job now: write nothing more
    released: bool = False  # stopped for shutdown: queue it again

    @property
    def job(self) -> Job:
        return self.delivery.job


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


class _NamedLog(logging.LoggerAdapter):
    """Log lines that start with the worker's name (several workers share one log)."""

    def process(self, msg: object, kwargs: Any) -> tuple[object, Any]:
        return f"worker {self.extra['worker']}: {msg}", kwargs


class Worker:
    """Runs jobs from the Redis job stream on one `Generator`."""

    def __init__(
        self,
        redis: RedisClient,
        generator: Generator,
        keys: Keys,
        settings: EngineSettings,
        *,
        name: str | None = None,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.redis = redis
        self.scripts = QueueScripts(redis)
        self.metrics = metrics or WorkerMetrics()
        self.generator = generator
        self.keys = keys
        self.settings = settings
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.log = _NamedLog(log, {"worker": self.name})
        # As many batches in flight as the model has replicas (resolved by device when 0).
        self._batch_slots = max(1, settings.inter_threads or generator.inter_threads)
        self._slots = asyncio.Semaphore(self._batch_slots)
        self._held: dict[str, _Delivery] = {}  # entry id -> delivery, waiting or running
        self._lost: set[str] = set()  # held entries another worker has claimed since
        self._reclaimed: deque[_Delivery] = deque()
        self._active_jobs: set[str] = set()  # ids of the jobs in running batches
        self._batches = 0  # batches running now
        self._stopping = asyncio.Event()
        self._closed = asyncio.Event()  # set once every batch has ended
        self._stop_at = 0.0
        self._releasing = False  # the grace period is over: stop and release running jobs
        self._cancelled: set[str] = set()  # ids of running jobs whose reader asked to stop
        self._wakeups: set[asyncio.Event] = set()  # set to flush running batches at once
        self.jobs_done = 0
        self.jobs_released = 0
        self.started_at = time.time()

    # -- life cycle ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve jobs until `stop()` is called."""
        while not self._stopping.is_set():
            try:
                await self._ensure_group()
                break
            except REDIS_DOWN:
                self.log.warning("Redis unreachable; retrying in 1 s")
                await self._pause(1.0)
        background = [
            asyncio.create_task(self._heartbeat_loop(), name="worker-heartbeat"),
            asyncio.create_task(self._janitor_loop(), name="worker-janitor"),
            asyncio.create_task(self._cancel_listener(), name="worker-cancels"),
        ]
        batches: set[asyncio.Task[None]] = set()
        log.info("worker %s ready: %s", self.name, self.generator.describe())
        try:
            while not self._stopping.is_set():
                if not await self._take_slot():
                    break
                try:
                    deliveries = await self._next_batch()
                except REDIS_DOWN:
                    self._slots.release()
                    self.log.warning("Redis unreachable; retrying in 1 s")
                    await self._pause(1.0)
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
                if self._stopping.is_set():  # read while stopping: give them straight back
                    self._reclaimed.extend(deliveries)
                    self._slots.release()
                    break
                task = asyncio.create_task(self._run_deliveries(deliveries))
                batches.add(task)
                task.add_done_callback(batches.discard)
        finally:
            self._stopping.set()
            await self._drain(set(batches))
            self._closed.set()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            with contextlib.suppress(*TRANSIENT):
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.delete(self.keys.worker_health(self.name))
                    pipe.zrem(self.keys.workers, self.name)
                    await pipe.execute()

    async def _take_slot(self) -> bool:
        """Wait for a free batch slot; False (and no slot taken) once the worker is stopping."""
        acquire = asyncio.ensure_future(self._slots.acquire())
        stopping = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({acquire, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not self._stopping.is_set():
            return True
        if acquire.done() and not acquire.cancelled():
            self._slots.release()
        else:
            acquire.cancel()
        return False

    def stop(self) -> None:
        """Stop taking jobs; running answers get ``shutdown_grace_s`` to finish, then they
        are released (queued again for another worker), and `run()` returns."""
        if not self._stopping.is_set():
            self._stop_at = time.monotonic()
        self._stopping.set()

    async def _drain(self, batches: set[asyncio.Task[None]]) -> None:
        """Let running batches finish within the grace period, then release what is left."""
        if batches:
            grace = self._stop_at + self.settings.shutdown_grace_s - time.monotonic()
            _, unfinished = await asyncio.wait(batches, timeout=max(0.0, grace))
            if unfinished:
                self.log.warning("stopping: releasing %d running batch(es)", len(unfinished))
                self._releasing = True
                for wakeup in self._wakeups:  # their next flush stops and releases them
                    wakeup.set()
                await asyncio.gather(*unfinished, return_exceptions=True)
        while self._reclaimed:
            delivery = self._reclaimed.popleft()
            try:
                if delivery.entry_id not in self._lost:
                    await self._release(delivery)
            except TRANSIENT:
                self.log.warning("could not release job %s; it will be reclaimed", delivery.job.id)
            finally:
                self._forget(delivery)

    def _giving_up(self) -> bool:
        """Whether a stopping worker is past the time it may spend on retries."""
        return self._releasing or (
            self._stopping.is_set()
            and time.monotonic() > self._stop_at + self.settings.shutdown_grace_s
        )

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
        deferred: list[_Delivery] = []
        while self._reclaimed and len(deliveries) < limit:
            delivery = self._reclaimed.popleft()
            if delivery.entry_id in self._lost:
                self._forget(delivery)  # another worker took it while it waited here
            elif delivery.job.id in self._active_jobs or any(
                d.job.id == delivery.job.id for d in deliveries
            ):
                deferred.append(delivery)  # the same job twice on the queue: after this run
            else:
                deliveries.append(delivery)
        self._reclaimed.extend(deferred)
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
            if self._stopping.is_set():
                break
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
            delivery = await self._decode(str(entry_id), fields)
            if delivery:
                self._held[delivery.entry_id] = delivery
                deliveries.append(delivery)
        return deliveries

    async def _decode(self, entry_id: str, fields: dict | None) -> _Delivery | None:
        try:
            job = Job.from_fields(fields or {})
        except ValueError as exc:
            self.log.error("dropping malformed job entry %s: %s", entry_id, exc)
            await self.redis.xadd(self.keys.dead_letters, {"entry": entry_id, "error": str(exc)})
            await self.redis.xack(self.keys.jobs, CONSUMER_GROUP, entry_id)
            await self.redis.xdel(self.keys.jobs, entry_id)
            return None
        return _Delivery(entry_id, job)

    def _forget(self, delivery: _Delivery) -> None:
        """This worker no longer holds the delivery's stream entry."""
        if self._held.get(delivery.entry_id) is delivery:
            del self._held[delivery.entry_id]
            self._lost.discard(delivery.entry_id)

    def _queue_ack(self, pipe: Pipeline, delivery: _Delivery) -> None:
        self.scripts.queue(
            pipe, self.scripts.ack, [self.keys.jobs], [CONSUMER_GROUP, self.name, delivery.entry_id]
        )

    async def _ack(self, delivery: _Delivery) -> None:
        await self.scripts.pipeline(lambda pipe: self._queue_ack(pipe, delivery))

    # -- running jobs -------------------------------------------------------------------------
    async def _run_deliveries(self, deliveries: list[_Delivery]) -> None:
        jobs = {d.job.id for d in deliveries}
        self._active_jobs |= jobs
        self._batches += 1
        try:
            runnable = await self._begin(deliveries)
            groups: dict[SamplingParams, list[tuple[_Delivery, list[str], int]]] = defaultdict(list)
            for delivery, prompt, limit in runnable:
                s = delivery.job.sampling
                params = SamplingParams(s.temperature, s.top_k, s.top_p, s.repetition_penalty)
                groups[params].append((delivery, prompt, limit))
            for params, group in groups.items():
                if self._releasing:
                    for delivery, _, _ in group:
                        await self._release(delivery)
                    continue
                await self._run_batch(params, group)
        except TRANSIENT as exc:
            self.log.warning(
                "Redis went away during a batch (%s); its jobs will be reclaimed", _one_line(exc)
            )
        except Exception:
            self.log.exception("batch failed")
        finally:
            for delivery in deliveries:
                self._forget(delivery)
                self._cancelled.discard(delivery.job.id)
            self._active_jobs -= jobs
            self._batches -= 1
            self._slots.release()

    async def _begin(self, deliveries: list[_Delivery]) -> list[tuple[_Delivery, list[str], int]]:
        """Take ownership of each job still held here and settle those that will not run:
        cancelled, expired, too long, already answered, or failed too often.

        Two round trips: the first re-claims the stream entries (dropping any another worker
        has reclaimed meanwhile, e.g. while this process was stalled) and reads the cancel
        flags; the second begins the attempts.
        """
        entries = [d.entry_id for d in deliveries]

        def check(pipe: Pipeline) -> None:
            self.scripts.queue(
                pipe,
                self.scripts.keep_claimed,
                [self.keys.jobs],
                [CONSUMER_GROUP, self.name, *entries],
            )
            for delivery in deliveries:
                pipe.exists(self.keys.job_cancel(delivery.job.id))

        kept, *cancelled = await self.scripts.pipeline(check)
        held = {text(entry) for entry in kept}
        flags = dict(zip(entries, cancelled, strict=True))
        for delivery in deliveries:
            if delivery.entry_id not in held:
                self.log.warning("job %s was reclaimed by another worker", delivery.job.id)
        deliveries = [d for d in deliveries if d.entry_id in held]
        cancelled = [flags[d.entry_id] for d in deliveries]
        window = self.settings.context_length
        now = time.time()
        settled: dict[str, Chunk] = {}
        for delivery, flag in zip(deliveries, cancelled, strict=True):
            if flag:
                settled[delivery.entry_id] = Chunk(kind="done", finish_reason="cancelled")
            elif delivery.job.deadline and now > delivery.job.deadline:
                settled[delivery.entry_id] = Chunk(kind="failed", error="Timed out in the queue.")
        to_run = [d for d in deliveries if d.entry_id not in settled]
        # Off the event loop, which streams the other running batches meanwhile.
        encoded = dict(
            zip(
                (d.entry_id for d in to_run),
                await asyncio.to_thread(
                    self.generator.tokenizer.encode_prompts, [d.job.prompt for d in to_run]
                )
                if to_run
                else [],
                strict=True,
            )
        )
        plans: list[tuple[_Delivery, Chunk | None, list[str], int]] = []
        for delivery in deliveries:
            job = delivery.job
            if delivery.entry_id in settled:
                plans.append((delivery, settled[delivery.entry_id], [], 0))
            else:
                tokens = encoded[delivery.entry_id]
                room = window - len(tokens)
                if room < 1:
                    error = (
                        f"Prompt too long: {len(tokens)} tokens, the model's window is {window}."
                    )
                    plans.append((delivery, Chunk(kind="failed", error=error), tokens, 0))
                else:
                    plans.append((delivery, None, tokens, min(job.max_new_tokens, room)))

        def begin_all(pipe: Pipeline) -> None:
            for delivery, settle, tokens, _ in plans:
                job_id = delivery.job.id
                self.scripts.queue(
                    pipe,
                    self.scripts.begin,
                    [self.keys.job_run(job_id), self.keys.job_output(job_id)],
                    [
                        delivery.token,
                        self.settings.reply_ttl_s,
                        self.settings.max_deliveries,
                        "0" if settle else "1",
                        self.name,
                        len(tokens),
                    ],
                )

        begun = await self.scripts.pipeline(begin_all)
        runnable = []
        for (delivery, settle, tokens, limit), (status, attempt) in zip(plans, begun, strict=True):
            delivery.attempt = int(attempt)
            status = text(status)
            if status == "done":  # answered before; only the acknowledgement was missing
                await self._ack(delivery)
            elif status == "exhausted":
                self.log.error(
                    "job %s failed %d times: dead-lettered", delivery.job.id, delivery.attempt - 1
                )
                self.metrics.dead_letters.inc()
                await self.redis.xadd(self.keys.dead_letters, delivery.job.to_fields())
                error = "The engine failed on this question several times and gave up."
                await self._finish(delivery, Chunk(kind="failed", error=error))
            elif settle is not None:
                await self._finish(delivery, settle)
            else:
                if delivery.attempt > 1:
                    self.log.warning("running job %s again (attempt %d)", delivery.job.id, attempt)
                runnable.append((delivery, tokens, limit))
        return runnable

    async def _run_batch(
        self, params: SamplingParams, group: list[tuple[_Delivery, list[str], int]]
    ) -> None:
        tokenizer = self.generator.tokenizer
        running = [
            _Running(delivery, AnswerText([], delivery.job.stop)) for delivery, _, _ in group
        ]
        prompts = [prompt for _, prompt, _ in group]
        limits = [limit for _, _, limit in group]
        self.metrics.batch_size.observe(len(running))
        self.metrics.running_jobs.inc(len(running))
        began = time.monotonic()
        loop = asyncio.get_running_loop()
        arrived = asyncio.Event()
        # CTranslate2 appends each job's ids to its answer's list with no call into this code per
        # token (the GPU waits for every step's callbacks); the first token of any job wakes the
        # loop (time to first text), the rest are flushed every stream_interval_ms. A job is
        # stopped at its next step once its flag in ``live.stop`` is set (cancelled, past its
        # deadline, at a stop string, lost to another worker, or released on shutdown).
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
        decode_new(tokenizer, [item.answer for item in running if not item.lost], final=True)
        for item, ids, limit, prompt in zip(running, results, limits, prompts, strict=True):
            if item.lost:
                continue
            if item.released:
                await self._release(item.delivery)
                continue
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
            )
            await self._finish(item.delivery, done, rest=item.answer.rest())

    def _emit(self, pipe: Pipeline, delivery: _Delivery, *, final: bool) -> None:
        """Queue on ``pipe`` the fenced write of the delivery's outbox (`scripts.EMIT`: one
        script over the job's slot, replying with the last sequence number written and whether
        the job's reader asked to stop it)."""
        job_id = delivery.job.id
        args: list[str | int] = [delivery.token, self.settings.reply_ttl_s, "1" if final else "0"]
        for seq, chunk in delivery.outbox:
            args += [seq, chunk]
        keys = [
            self.keys.job_run(job_id),
            self.keys.job_output(job_id),
            self.keys.job_cancel(job_id),
        ]
        self.scripts.queue(pipe, self.scripts.emit, keys, args)

    async def _flush(self, running: list[_Running], stop: list[bool]) -> None:
        """Stream new text of every job and pick up cancel requests, in one round trip.

        All jobs' new ids are decoded together (`streaming.decode_new`). A job with text to
        write gets one fenced write (which also reads its cancel flag), any other job one
        EXISTS of its cancel key: one command per job, all pipelined (each command stays in one
        job's slot, so a Redis Cluster takes them too). Text taken for streaming stays queued,
        with its sequence numbers, until Redis has it: if Redis is unreachable the next flush
        sends the same chunks again.
        """
        decode_new(self.generator.tokenizer, [item.answer for item in running if not item.lost])
        writes: list[bool] = []
        for item in running:
            if item.lost:
                writes.append(False)
                continue
            piece = item.answer.unsent()
            delivery = item.delivery
            if piece:
                delivery.push(Chunk("token", piece))
            writes.append(bool(delivery.outbox))

        def flush(pipe: Pipeline) -> None:
            for item, write in zip(running, writes, strict=True):
                if write:
                    self._emit(pipe, item.delivery, final=False)
                else:
                    pipe.exists(self.keys.job_cancel(item.job.id))

        try:
            replies = await self.scripts.pipeline(flush)
        except TRANSIENT:
            self.log.warning("Redis unreachable while streaming; holding the text back")
            await asyncio.sleep(0.2)
            return
        now = time.time()
        releasing = self._releasing
        for index, (item, write, reply) in enumerate(zip(running, writes, replies, strict=True)):
            if write:
                last, flag = int(reply[0]), int(reply[1])
                if last < 0:
                    self._lose(item)
                else:
                    item.delivery.written(last)
            else:
                flag = int(reply)
            if item.delivery.entry_id in self._lost and not item.lost:
                self._lose(item)
            if item.lost:
                stop[index] = True
                continue
            if item.answer.emitted and not item.first_token_at:
                item.first_token_at = now
                self.metrics.time_to_first_token.observe(max(0.0, now - item.job.created))
            if item.finish is None:
                if item.answer.stopped:
                    item.finish = "stop"
                elif flag or item.job.id in self._cancelled:
                    item.finish = "cancelled"
                elif releasing:
                    item.released = True
                    stop[index] = True
                elif item.job.deadline and now > item.job.deadline:
                    stop[index] = True  # reported as "deadline" when the batch ends
            if item.finish is not None:
                stop[index] = True

    def _lose(self, item: _Running) -> None:
        """Another worker owns the job now: stop generating it and write nothing more."""
        if not item.lost:
            self.log.warning(
                "job %s was taken over by another worker; stopping attempt %d",
                item.job.id,
                item.delivery.attempt,
            )
        item.lost = True

    async def _finish(self, delivery: _Delivery, chunk: Chunk, rest: str = "") -> None:
        """Write the final chunk (after any last text), then acknowledge the job.

        Retries while Redis is briefly away (the chunks keep their sequence numbers, so nothing
        lands twice); if it stays away the job stays pending and is reclaimed once Redis is
        back. A delivery that no longer owns its job writes and acknowledges nothing.
        """
        if rest:
            delivery.push(Chunk("token", rest))
        delivery.push(chunk)

        def finish(pipe: Pipeline, delivery: _Delivery) -> None:
            self._emit(pipe, delivery, final=True)
            self._queue_ack(pipe, delivery)

        for attempt in range(_FINISH_ATTEMPTS):
            try:
                # The acknowledgement goes with the final chunk, in the same round trip (it
                # checks on its own that no other worker holds the job's entry now).
                (last, _), _ = await self.scripts.pipeline(lambda pipe: finish(pipe, delivery))
                if int(last) < 0:
                    self.log.warning("job %s was taken over by another worker", delivery.job.id)
                    return
                delivery.written(int(last))
                break
            except TRANSIENT:
                if attempt == _FINISH_ATTEMPTS - 1 or self._giving_up():
                    raise
                self.log.warning(
                    "Redis unreachable while finishing job %s; retrying", delivery.job.id
                )
                await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
        self.jobs_done += 1
        outcome = chunk.finish_reason if chunk.kind == "done" else "failed"
        self.metrics.jobs.labels(outcome or "eos").inc()
        self.metrics.job_latency.observe(max(0.0, time.time() - delivery.job.created))

    async def _release(self, delivery: _Delivery) -> None:
        """Give the job up and queue it again at once (shutdown): another worker takes it
        without waiting for the idle timeout, and the release does not count as a failure."""
        if delivery.attempt:
            released = await self.scripts.release(
                keys=[self.keys.job_run(delivery.job.id)], args=[delivery.token]
            )
            if not int(released):
                return  # finished, or another worker owns it: nothing to give back
        entry = await self.scripts.requeue(
            keys=[self.keys.jobs, self.keys.job_submitted(delivery.job.id)],
            args=[
                CONSUMER_GROUP,
                self.name,
                delivery.entry_id,
                delivery.job.to_fields()["job"],
                SUBMITTED_TTL_S,
            ],
        )
        if entry:
            self.jobs_released += 1
            self.log.info("released job %s for another worker", delivery.job.id)

    # -- health and recovery ------------------------------------------------------------------
    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake up at once when the worker is told to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _heartbeat_loop(self) -> None:
        # Loops end on an event, not only on cancellation: a cancel that lands inside a Redis
        # call's own timeout can surface as TimeoutError (an OSError), which is handled below
        # like a Redis outage and would swallow the cancel. The heartbeat goes on while a
        # stopping worker's batches finish, so their jobs stay claimed.
        while not self._closed.is_set():
            try:
                await self.heartbeat()
            except TRANSIENT:
                self.log.warning("heartbeat: Redis unreachable")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), self.settings.heartbeat_s)

    async def heartbeat(self) -> None:
        """Report in (health key with TTL) and keep this worker's jobs claimed.

        Every job the worker holds, running or waiting for a batch, has its stream entry's idle
        time reset, but only while that entry is still this worker's: an entry another worker
        has reclaimed is never taken back, and its job is marked lost here.
        """
        info = {
            "name": self.name,
            "engine": self.generator.describe(),
            "started": self.started_at,
            "jobs_done": self.jobs_done,
            "running": len(self._held),
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
        held = list(self._held)
        if held:
            kept = await self.scripts.keep_claimed(
                keys=[self.keys.jobs], args=[CONSUMER_GROUP, self.name, *held]
            )
            lost = set(held) - {text(k) for k in kept}
            self._lost |= {entry for entry in lost if entry in self._held}

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
        while not self._closed.is_set():
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.keys.cancel_channel)
                while not self._closed.is_set():
                    message = await pubsub.get_message(timeout=0.5)
                    if not message:
                        continue
                    data = message["data"]
                    job_id = data.decode() if isinstance(data, bytes) else str(data)
                    if job_id in self._active_jobs:
                        self._cancelled.add(job_id)
                        for wakeup in self._wakeups:  # the next flush stops it
                            wakeup.set()
            except REDIS_DOWN:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closed.wait(), 1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _janitor_loop(self) -> None:
        interval = max(0.5, self.settings.claim_idle_ms / 2000)
        while not self._stopping.is_set():
            await self._pause(interval)
            if self._stopping.is_set():
                return
            if self._reclaimed:
                continue  # the ones taken last time have not run yet
            # A worker with no free slot leaves abandoned jobs to idle workers first, and takes
            # them itself only when they have waited twice as long.
            busy = self._batches >= self._batch_slots
            try:
                await self.reclaim(self.settings.claim_idle_ms * (2 if busy else 1))
            except TRANSIENT:
                self.log.warning("janitor: Redis unreachable")
            except ResponseError as exc:
                self.log.warning("janitor: %s", exc)

    async def reclaim(self, min_idle_ms: int | None = None) -> int:
        """Take over jobs left idle longer than ``min_idle_ms`` (default ``claim_idle_ms``) by
        a worker that died or stalled; they wait here, kept claimed, for the next batch.
        Returns how many were taken."""
        _, claimed, *_ = await self.redis.xautoclaim(
            self.keys.jobs,
            CONSUMER_GROUP,
            self.name,
            min_idle_ms or self.settings.claim_idle_ms,
            start_id="0-0",
            count=self.settings.max_batch_size,
        )
        taken = 0
        for entry_id, fields in claimed:
            entry_id = str(entry_id)
            if entry_id in self._held:
                continue  # already ours (a heartbeat came late): never queue it twice
            delivery = await self._decode(entry_id, fields)
            if delivery is None:
                continue
            self.log.warning("reclaimed job %s", delivery.job.id)
            self.metrics.reclaimed.inc()
            self._held[entry_id] = delivery
            self._reclaimed.append(delivery)
            taken += 1
        return taken
