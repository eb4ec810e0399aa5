"""Game fixtures: a clock moved by hand, a platform that records what it is sent, a model that
says what the test scripted, and the engine on the real Redis server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from airoboros_bot.bots.games import GameEngine, GameMessage, MessageKind
from airoboros_bot.conversations.models import ConversationKey
from tests.bots.conftest import GameEngineFactory

CHANNEL = ConversationKey("test", "w1", "c1")
START = 1_800_000_000.0
# What the model writes, in the airoboros style: a multiple-choice and a short-answer question.
CHOICE = """Question: Which planet is closest to the Sun?
A) Venus
B) Mercury
C) Mars
D) Earth
Answer: [B, Mercury]"""
SHORT = "Question: What is the capital of Kenya?\nAnswer: Nairobi"


class FakeClock:
    """Time that moves only when the test says so."""

    def __init__(self, start: float = START) -> None:
        self._now = start
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    async def sleep_until(self, when: float) -> None:
        if when <= self._now:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (when, future)
        self._sleepers.append(entry)
        try:
            await future
        finally:
            self._sleepers.remove(entry)

    def advance(self, seconds: float) -> None:
        """Move time forward and wake whoever sleeps until then."""
        self._now += seconds
        for when, future in list(self._sleepers):
            if when <= self._now and not future.done():
                future.set_result(None)

    async def idle(self, timeout: float = 5.0) -> None:
        """Wait (real time) until some task sleeps on this clock again."""
        for _ in range(int(timeout / 0.002)):
            if any(w > self._now and not f.done() for w, f in self._sleepers):
                return
            await asyncio.sleep(0.002)
        raise AssertionError("the game loop never went back to sleep")


class RecordingOutput:
    """A platform that keeps every message it is sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[ConversationKey, GameMessage]] = []

    async def send(self, channel: ConversationKey, message: GameMessage) -> None:
        self.sent.append((channel, message))

    def of(self, kind: MessageKind, channel: ConversationKey | None = None) -> list[GameMessage]:
        return [m for c, m in self.sent if m.kind is kind and (channel is None or c == channel)]

    async def wait_for(
        self, kind: MessageKind, count: int = 1, channel: ConversationKey | None = None
    ) -> GameMessage:
        """The ``count``-th message of this kind, waiting (real time) for it to come."""
        for _ in range(2500):
            found = self.of(kind, channel)
            if len(found) >= count:
                return found[count - 1]
            await asyncio.sleep(0.002)
        raise AssertionError(f"no {kind} #{count}; got {[m.kind for _, m in self.sent]}")


class ScriptedModel:
    """Answers each instruction with the next scripted text (or raises the scripted error)."""

    def __init__(self, outputs: list[str | Exception] | None = None) -> None:
        self.outputs = list(outputs or [])
        self.prompts: list[str] = []

    async def complete(
        self, instruction: str, *, max_new_tokens: int = 256, temperature: float = 0.7
    ) -> str:
        self.prompts.append(instruction)
        item = self.outputs.pop(0) if self.outputs else "<nothing scripted>"
        if isinstance(item, Exception):
            raise item
        return item


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def output() -> RecordingOutput:
    return RecordingOutput()


EngineFactory = Callable[..., GameEngine]


@pytest.fixture
def make_engine(
    make_game_engine: GameEngineFactory, clock: FakeClock, output: RecordingOutput
) -> EngineFactory:
    """Engines on the hand-moved clock, posting into ``output``; the model's questions only
    when given one."""

    def build(model: ScriptedModel | None = None, seed: int = 7, **settings: object) -> GameEngine:
        settings.setdefault("use_model", model is not None)
        return make_game_engine(model, clock=clock, output=output, seed=seed, **settings)

    return build
