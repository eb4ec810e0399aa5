"""The answers this bot process is writing, so `/stop` and Stop buttons can cancel them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from airoboros_bot.conversations.models import ConversationKey


@dataclass(eq=False)
class RunningAnswer:
    """One answer being written: where, for whom, and its job once it is queued."""

    key: ConversationKey
    user_id: int
    job_id: str = ""
    stopping: bool = False


@dataclass
class RunningAnswers:
    """Answers in progress, by conversation and user."""

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
