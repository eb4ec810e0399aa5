"""Auditing answers for the exactly-once guarantee: what a reader saw and what Redis holds.

An answer is **lost** when its reader got no ``done``; **duplicated** when the reader saw two
final chunks, or the reply stream holds two final chunks or one (attempt, sequence number) twice;
**garbled** when the text streamed since the last ``start``/``reset`` differs from the final
text, or the reply stream interleaves attempts (a chunk of an older attempt after a newer one).
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from airoboros_bot.config.keys import Keys
from airoboros_bot.engine.client import EngineClient, JobHandle, Queued
from airoboros_bot.engine.errors import EngineError
from airoboros_bot.engine.protocol import Chunk


@dataclass
class AnswerAudit:
    """One answer: the chunks its reader got (with arrival times) and the raw reply stream."""

    job_id: str
    seen: list[tuple[float, Chunk]] = field(default_factory=list)
    raw: list[Chunk] = field(default_factory=list)
    error: str = ""

    @property
    def done(self) -> Chunk | None:
        """The final ``done`` chunk the reader got."""
        finals = [c for _, c in self.seen if c.kind == "done"]
        return finals[-1] if finals else None

    @property
    def lost(self) -> bool:
        """No complete answer reached the reader."""
        return self.done is None

    @property
    def duplicated(self) -> bool:
        """Something reached the reader, or Redis, twice."""
        if sum(c.final for _, c in self.seen) > 1 or sum(c.final for c in self.raw) > 1:
            return True
        numbers = Counter((c.attempt, c.seq) for c in self.raw)
        return any(n > 1 for n in numbers.values())

    @property
    def streamed(self) -> str:
        """Text the reader was shown since the last start or reset."""
        text = ""
        for _, chunk in self.seen:
            if chunk.kind in ("start", "reset"):
                text = ""
            elif chunk.kind == "token":
                text += chunk.text
        return text.strip()

    @property
    def garbled(self) -> bool:
        """The streamed text is not the final text, or two runs' chunks are mixed in Redis."""
        done = self.done
        if done is not None and done.text != self.streamed:
            return True
        attempts = [c.attempt for c in self.raw]
        return attempts != sorted(attempts)

    @property
    def attempts(self) -> int:
        """How many attempts wrote to the reply stream."""
        return len({c.attempt for c in self.raw})

    def recovered_after(self, moment: float) -> float | None:
        """Seconds from ``moment`` to the first ``reset`` the reader got after it."""
        for at, chunk in self.seen:
            if at >= moment and chunk.kind == "reset":
                return at - moment
        return None


async def read_answer(
    client: EngineClient, handle: JobHandle, redis: aioredis.Redis, keys: Keys
) -> AnswerAudit:
    """Read one answer to its end as a bot would, then fetch its raw reply stream."""
    audit = AnswerAudit(handle.job_id)
    try:
        async for chunk in client.stream(handle):
            if not isinstance(chunk, Queued):
                audit.seen.append((time.monotonic(), chunk))
    except EngineError as exc:
        audit.error = exc.user_message
    audit.raw = await raw_chunks(redis, keys, handle.job_id)
    return audit


async def raw_chunks(redis: aioredis.Redis, keys: Keys, job_id: str) -> list[Chunk]:
    """Every chunk on the job's reply stream, in stream order."""
    return [Chunk.from_fields(f) for _, f in await redis.xrange(keys.job_output(job_id))]


@dataclass
class Tally:
    """Figures over many trials, printed as one JSON line for the report."""

    name: str
    trials: int = 0
    answers: int = 0
    lost: int = 0
    duplicated: int = 0
    garbled: int = 0
    rerun: int = 0
    recover_s: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def add(self, audits: list[AnswerAudit], fault_at: float | None = None) -> None:
        """Count one trial's answers."""
        self.trials += 1
        for audit in audits:
            self.answers += 1
            flags = [f for f in ("lost", "duplicated", "garbled") if getattr(audit, f)]
            for flag in flags:
                setattr(self, flag, getattr(self, flag) + 1)
            if flags:
                self.failures.append(f"{audit.job_id}: {flags} {audit.error}")
            if audit.attempts > 1:
                self.rerun += 1
                if fault_at is not None:
                    recovered = audit.recovered_after(fault_at)
                    if recovered is not None:
                        self.recover_s.append(recovered)

    def line(self) -> str:
        """The figures as one JSON object."""
        times = sorted(self.recover_s)
        return json.dumps(
            {
                "test": self.name,
                "trials": self.trials,
                "answers": self.answers,
                "rerun": self.rerun,
                "lost": self.lost,
                "duplicated": self.duplicated,
                "garbled": self.garbled,
                "recover_s_median": round(statistics.median(times), 3) if times else None,
                "recover_s_max": round(times[-1], 3) if times else None,
            }
        )

    def check(self) -> None:
        """Print the figures; fail on any lost, duplicated or garbled answer."""
        print(self.line())
        assert (self.lost, self.duplicated, self.garbled) == (0, 0, 0), self.failures[:5]
