"""The answers this bot process is writing, so `/stop`, Stop buttons and shutdown can stop
them: a stopped answer's job is cancelled as soon as it is queued."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from redis.exceptions import RedisError

from airoboros_bot.conversations.models import ConversationKey

log = logging.getLogger(__name__)

CancelJob = Callable[[str], Awaitable[object]]


@dataclass(eq=False)
class RunningAnswer:
    """One answer being written: where, for whom, and its job once it is queued."""

    key: ConversationKey
    user_id: int
    job_id: str = ""
    stopping: bool = False


@dataclass
class RunningAnswers:
    """Answers in progress, by conversation and user; ``cancel`` cancels a job of the engine."""

    cancel: CancelJob
    _answers: set[RunningAnswer] = field(default_factory=set)
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._idle.set()

    def __len__(self) -> int:
        return len(self._answers)

    def start(self, key: ConversationKey, user_id: int) -> RunningAnswer:
        """Register an answer that is about to be asked for."""
        answer = RunningAnswer(key, user_id)
        self._answers.add(answer)
        self._idle.clear()
        return answer

    def finish(self, answer: RunningAnswer) -> None:
        """The answer is complete (or failed)."""
        self._answers.discard(answer)
        if not self._answers:
            self._idle.set()

    def of_user(self, key: ConversationKey, user_id: int) -> list[RunningAnswer]:
        """The user's answers being written in this conversation."""
        return [a for a in self._answers if a.key == key and a.user_id == user_id]

    def by_job(self, job_id: str) -> RunningAnswer | None:
        """The running answer of a job, if this process is writing it."""
        return next((a for a in self._answers if a.job_id == job_id), None)

    def all(self) -> list[RunningAnswer]:
        """Every answer in progress."""
        return list(self._answers)

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no answer is being written; False if still busy after ``timeout``."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def queued(self, answer: RunningAnswer, job_id: str) -> None:
        """The answer's job is queued: note it, and cancel it if a stop came first."""
        answer.job_id = job_id
        if answer.stopping:
            await self.cancel_job(job_id)

    async def stop(self, answer: RunningAnswer) -> None:
        """Stop an answer being written (its job is cancelled once it is known)."""
        answer.stopping = True
        if answer.job_id:
            await self.cancel_job(answer.job_id)

    async def cancel_job(self, job_id: str) -> None:
        """Cancel a job (of this process or an earlier one); a Redis failure is logged."""
        try:
            await self.cancel(job_id)
        except (RedisError, OSError) as exc:
            log.warning("could not cancel job %s: %s", job_id, type(exc).__name__)
