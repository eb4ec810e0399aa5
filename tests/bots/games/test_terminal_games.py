"""Games in the terminal chat, end to end: stdin -> TerminalChat -> GameEngine -> the real
worker on the tiny demo model (whose questions are noise, so the built-in bank stands in)."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from airoboros_bot.bots.core.service import ChatService
from airoboros_bot.bots.games import GameEngine, QuestionKind, ScaledClock
from airoboros_bot.bots.terminal.chat import TerminalChat
from airoboros_bot.config.keys import Keys
from airoboros_bot.config.settings import DEFAULT_SYSTEM_PROMPT, GameSettings
from airoboros_bot.conversations.errors import EmptyPrompt
from airoboros_bot.conversations.models import ConversationKey
from airoboros_bot.conversations.prompt import chat_prompt
from airoboros_bot.engine.protocol import Chunk

KEY = ConversationKey("terminal", "host", "games")


class Player:
    """Types into the terminal chat through a real pipe and reads what it prints."""

    def __init__(self, chat: TerminalChat, writer: io.TextIOWrapper) -> None:
        self.chat = chat
        self.writer = writer

    def type(self, line: str) -> None:
        self.writer.write(line + "\n")
        self.writer.flush()

    async def sees(self, text: str, count: int = 1, timeout: float = 60.0) -> str:
        """Wait until stdout shows ``text`` ``count`` times; returns stdout."""
        stdout = self.chat.stdout
        assert isinstance(stdout, io.StringIO)
        for _ in range(int(timeout / 0.01)):
            if stdout.getvalue().count(text) >= count:
                return stdout.getvalue()
            await asyncio.sleep(0.01)
        raise AssertionError(f"never saw {text!r}:\n{stdout.getvalue()}")


@pytest.fixture
async def engine(
    service: ChatService, redis: aioredis.Redis, key_prefix: str
) -> AsyncIterator[GameEngine]:
    settings = GameSettings(
        question_time_s=20,
        between_rounds_s=2,
        generation_attempts=1,
        generation_max_new_tokens=24,
        words_target=3,
    )
    # Five times faster than real time: 20 s questions last 4 s.
    engine = GameEngine(redis, Keys(key_prefix), service, settings, clock=ScaledClock(5))
    yield engine
    await engine.close()


async def _answer(engine: GameEngine) -> str:
    status = await engine.status(KEY)
    assert status is not None and status.question is not None
    question = status.question
    return f"[{question.key}, {question.answer}]" if question.options else question.answer


async def test_complete_asks_the_real_model_one_single_turn(
    service: ChatService, redis: aioredis.Redis, key_prefix: str
) -> None:
    text = await service.complete("Write a trivia question.", max_new_tokens=8, temperature=0)
    assert isinstance(text, str)
    assert await service.store.history(KEY) == []  # nothing stored
    # The job's reply stream: the prompt was exactly the single-turn template.
    [out_key] = [k async for k in redis.scan_iter(Keys(key_prefix).job_output_pattern)]
    chunks = [Chunk.from_fields(f) for _, f in await redis.xrange(out_key)]
    done = chunks[-1]
    assert done.kind == "done" and done.text == text and done.tokens <= 8
    prompt = chat_prompt(DEFAULT_SYSTEM_PROMPT, (), "Write a trivia question.")
    assert done.prompt_tokens == await service.count_tokens(prompt)
    with pytest.raises(EmptyPrompt):
        await service.complete("   ")


async def test_trivia_anagram_and_words_through_stdin(
    service: ChatService, engine: GameEngine
) -> None:
    read_fd, write_fd = os.pipe()
    stdin, writer = os.fdopen(read_fd, "r"), os.fdopen(write_fd, "w")
    stdout, stderr = io.StringIO(), io.StringIO()
    chat = TerminalChat(service, KEY, stdin, stdout, stderr, games=engine, player="tess")
    player = Player(chat, writer)
    running = asyncio.create_task(chat.run())
    try:
        player.type("!!trivia start science 2")
        await player.sees("Question 1/2")
        assert "Trivia: 2 questions about science (started by tess)." in stdout.getvalue()
        assert "The model's question did not pass the checks" in stdout.getvalue()
        player.type("surely not the answer")
        player.type(await _answer(engine))
        await player.sees("tess got it: ")
        await player.sees("Question 2/2")
        player.type(await _answer(engine))
        out = await player.sees("Trivia over. Final scores:")
        assert out.count("tess got it: ") == 2

        player.type("!!anagram 1")
        await player.sees("Anagram 1/1")
        status = await engine.status(KEY)
        assert status and status.question and status.question.kind is QuestionKind.ANAGRAM
        player.type(await _answer(engine))
        await player.sees("Anagrams over. Final scores:")

        player.type("!!words en")
        await player.sees("Give me 3 words that start with EN.")
        player.type("enter, energy")
        player.type("apple")
        player.type("enjoy")
        await player.sees("All 3 words found: enter (tess), energy (tess), enjoy (tess).")
        await player.sees("Word list over. Final scores:")

        player.type("!!trivia leaderboard")
        board = await engine.leaderboard(KEY)
        assert board.leaderboard[0].name == "tess" and board.leaderboard[0].points >= 3 + 3
        await player.sees(board.text)
        player.type("!!exit")
        assert await asyncio.wait_for(running, 30) == 0
    finally:
        writer.close()
        if not running.done():
            running.cancel()
        stdin.close()
    notes = stderr.getvalue()
    first_note = notes.splitlines()[0]
    assert first_note in ("(not it)", "Answer with a letter from A to D, or with an option's text.")
    assert '"apple" does not start with EN' in notes
    assert "+2: enter, energy (2/3)." in notes


async def test_game_commands_and_their_errors(service: ChatService, engine: GameEngine) -> None:
    script = (
        "!!anagram ²\n"  # a digit to str.isdigit, not to int(): it used to crash the chat
        "!!trivia\n!!trivia start history 0\n!!anagram many\n!!words en un\n!!trivia stop\n"
        "!!words xq\n!!trivia start history 3\n!!trivia start\nwhat is this?\n!!trivia stop\n"
    )
    stdout, stderr = io.StringIO(), io.StringIO()
    chat = TerminalChat(
        service, KEY, io.StringIO(script), stdout, stderr, games=engine, player="al"
    )
    assert await chat.run() == 0
    notes = stderr.getvalue()
    assert "error: Usage: !!trivia start [topic] [rounds]" in notes
    assert "error: Rounds must be between 1 and 30." in notes
    assert notes.count("error: Usage: !!anagram [rounds]") == 2, "² and many"
    assert "error: Usage: !!words [prefix] [rounds]" in notes
    assert "error: No game is running here." in notes
    assert "error: Cannot play 'XQ'" in notes
    assert "error: A Trivia game is already running here" in notes
    assert "Play along, or stop it with !!trivia stop first." in notes
    assert "Trivia over, stopped by al" in stdout.getvalue()
    assert "ASSISTANT:" not in stdout.getvalue(), "lines during a game are answers"

    plain = TerminalChat(service, KEY, io.StringIO("!!anagram\n"), io.StringIO(), io.StringIO())
    await plain.run()
    assert "error: Games are not enabled in this chat." in plain.stderr.getvalue()


async def test_a_game_left_running_resumes_when_the_chat_opens_again(
    service: ChatService, engine: GameEngine, redis: aioredis.Redis, key_prefix: str
) -> None:
    first = TerminalChat(
        service, KEY, io.StringIO("!!trivia start 3\n"), io.StringIO(), io.StringIO(), games=engine
    )
    await first.run()
    assert not engine.running(KEY) and await engine.status(KEY) is not None
    again = GameEngine(redis, Keys(key_prefix), service, engine.settings, clock=ScaledClock(5))
    stdout, stderr = io.StringIO(), io.StringIO()
    read_fd, write_fd = os.pipe()
    stdin, writer = os.fdopen(read_fd, "r"), os.fdopen(write_fd, "w")
    second = TerminalChat(service, KEY, stdin, stdout, stderr, games=again, player="bo")
    running = asyncio.create_task(second.run())
    player = Player(second, writer)
    try:
        await player.sees("Hint: ")  # the timer runs again
        assert "A game was running here: it goes on." in stderr.getvalue()
        player.type("!!trivia stop")
        await player.sees("Trivia over, stopped by bo")
        player.type("!!exit")
        assert await asyncio.wait_for(running, 30) == 0
    finally:
        writer.close()
        stdin.close()
        await again.close()
