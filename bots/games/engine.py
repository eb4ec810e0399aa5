"""The game loop: one task per channel with a game, driven by a clock and the state in Redis.

A round: make a question (model, checked, else the bank), post it, post hints as time passes
(each lowers the points), close it on the first right answer or reveal the answer when time
runs out, pause, go on. A game stops after its rounds, on the stop command, or after a stretch
of silence. All state lives in Redis (`GameStore`), so `resume_all` after a restart picks every
game up where it was, timer included.

Adapters implement `GameOutput` and call `start`, `stop`, `leaderboard` and `on_message`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import uuid
from typing import Literal, Protocol

import redis.asyncio as aioredis

from airoboros_bot.bots.games import messages
from airoboros_bot.bots.games.bank import QuestionBank, default_bank
from airoboros_bot.bots.games.clock import Clock, SystemClock
from airoboros_bot.bots.games.generate import QuestionMaker, QuestionModel
from airoboros_bot.bots.games.hints import hint_text, hint_times, hints_due, points_now
from airoboros_bot.bots.games.matching import choice_index, matches
from airoboros_bot.bots.games.models import (
    LETTERS,
    AnswerOutcome,
    AnswerStatus,
    Commands,
    GameError,
    GameKind,
    GameMessage,
    GameStatus,
    Question,
    QuestionKind,
)
from airoboros_bot.bots.games.scores import Scoreboard
from airoboros_bot.bots.games.store import GameState, GameStore
from airoboros_bot.bots.games.validate import COMMON_TOP, InvalidQuestion, check_prefix, check_word
from airoboros_bot.bots.games.words import WordList, default_words
from airoboros_bot.config.keys import Keys
from airoboros_bot.config.settings import GameSettings
from airoboros_bot.conversations.models import ConversationKey
from airoboros_bot.conversations.text import clean_text

log = logging.getLogger(__name__)

MAX_ANSWER_CHARS = 200
MAX_TOPIC_CHARS = 60
MAX_WORDS_PER_MESSAGE = 10
_TOPIC_OK = re.compile(r"[^\w\s'&,.-]")


class GameOutput(Protocol):
    """Where the engine posts what a channel should see (each adapter implements it)."""

    async def send(self, channel: ConversationKey, message: GameMessage) -> None:
        """Show ``message`` in ``channel``; errors are logged and the game goes on."""
        ...


class GameEngine:
    """Runs trivia, anagram and word-list games in any number of channels."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        model: QuestionModel | None,
        settings: GameSettings,
        *,
        output: GameOutput | None = None,
        commands: Commands | None = None,
        clock: Clock | None = None,
        bank: QuestionBank | None = None,
        words: WordList | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.output = output
        self.commands = commands or Commands()
        self.clock: Clock = clock or SystemClock()
        self.words = words or default_words()
        self.rng = rng or random.Random()
        self.store = GameStore(redis, keys)
        self.scores = Scoreboard(self.store)
        self.maker = QuestionMaker(model, bank or default_bank(), self.words, settings, self.rng)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wake: dict[str, asyncio.Event] = {}

    def attach(self, output: GameOutput, commands: Commands | None = None) -> None:
        """Set where messages go (and how the platform spells the commands)."""
        self.output = output
        if commands is not None:
            self.commands = commands

    # -- commands ---------------------------------------------------------------------------
    async def start(
        self,
        channel: ConversationKey,
        kind: GameKind | str,
        *,
        topic: str = "",
        rounds: int | None = None,
        prefix: str = "",
        user_id: str = "",
        user_name: str = "",
    ) -> GameStatus:
        """Start a game in ``channel``: posts the announcement, then runs the rounds.

        Raises `GameError` (with a ``user_message``) when the channel already has a game or an
        argument is wrong; nothing is stored then.
        """
        try:
            kind = GameKind(kind)
        except ValueError:
            raise GameError(f"Unknown game {kind!r}: play trivia, anagram or words.") from None
        if rounds is None:
            rounds = 1 if kind is GameKind.WORDS else self.settings.default_rounds
        if not 1 <= rounds <= self.settings.max_rounds:
            raise GameError(f"Rounds must be between 1 and {self.settings.max_rounds}.")
        topic = " ".join(_TOPIC_OK.sub(" ", topic).split())
        if len(topic) > MAX_TOPIC_CHARS:
            raise GameError(f"That topic is too long: keep it under {MAX_TOPIC_CHARS} characters.")
        prefix = prefix.strip().lower()
        if prefix:
            try:
                check_prefix(prefix, self.settings.words_target, self.words)
            except InvalidQuestion as exc:
                raise GameError(f"Cannot play {prefix.upper()!r}: {exc}.") from None
        existing = await self.store.load(channel)
        if existing is not None:
            raise self._busy(existing)
        now = self.clock.now()
        state = GameState(
            id=uuid.uuid4().hex[:12],
            kind=kind,
            channel=channel,
            topic=topic if kind is GameKind.TRIVIA else "",
            rounds=rounds,
            started_at=now,
            started_by=user_name,
            prefix=prefix if kind is GameKind.WORDS else "",
        )
        if not await self.store.create(state):
            raise self._busy(await self.store.load(channel))
        seconds = self._seconds(kind)
        await self._send(
            channel,
            messages.start(kind, rounds, state.topic, user_name, seconds, self.commands),
        )
        self._spawn(channel)
        return state.status()

    def _busy(self, state: GameState | None) -> GameError:
        if state is None:
            return GameError("A game just started here: join in!")
        where = f"round {state.round} of {state.rounds}" if state.round else "starting"
        return GameError(
            f"A {state.kind.title} game is already running here ({where}). "
            f"Play along, or stop it with {self.commands.stop} first."
        )

    async def stop(self, channel: ConversationKey, *, user_name: str = "") -> GameMessage:
        """Stop the channel's game: reveals the open question and posts the final scores
        (sent through the output, and returned). `GameError` when no game runs."""
        state = await self.store.load(channel)
        if state is None:
            raise GameError("No game is running here.")
        await self._cancel(channel)
        reason = f", stopped by {user_name}" if user_name else ", stopped"
        if (
            state.phase == "open"
            and state.question
            and state.question.kind is not QuestionKind.WORDS
        ):
            reason += f" (the answer was: {state.question.shown_answer})"
        final = await self._finish(state, reason)
        if final is None:
            raise GameError("No game is running here.")
        return final

    async def leaderboard(
        self, channel: ConversationKey, scope: Literal["channel", "workspace"] = "channel"
    ) -> GameMessage:
        """The all-time leaderboard of the channel or of its whole workspace / guild (returned,
        not sent: reply with it)."""
        if scope not in ("channel", "workspace"):
            raise GameError("Leaderboards are per channel or per workspace.")
        rows = await self.scores.leaderboard(channel, scope, self.settings.leaderboard_size)
        where = "this channel" if scope == "channel" else "this workspace"
        return messages.leaderboard(f"Top players in {where} (all time)", rows)

    async def status(self, channel: ConversationKey) -> GameStatus | None:
        """The channel's game, or None."""
        state = await self.store.load(channel)
        return state.status() if state else None

    # -- answers ----------------------------------------------------------------------------
    async def on_message(
        self, channel: ConversationKey, user_id: str, user_name: str, text: str
    ) -> AnswerOutcome:
        """A player's plain message in ``channel``: an answer while a game runs there.

        Returns IGNORED when the channel has no game (and the text is no late answer to the one
        that just ended): the adapter treats it as ordinary chat then.
        """
        text = clean_text(text).strip()
        user_name = clean_text(user_name)
        now = self.clock.now()
        state = await self.store.load(channel)
        if state is None:
            return await self._after_game(channel, user_id, text, now)
        self._spawn(channel)
        if not text:
            return AnswerOutcome(AnswerStatus.WAIT)
        question = state.question
        if state.phase != "open" or question is None:
            return await self._between_rounds(state, user_id, text)
        await self.store.touch(state, now)
        if len(text) > MAX_ANSWER_CHARS:
            return AnswerOutcome(AnswerStatus.WRONG, "That is too long to be an answer.")
        if question.kind is QuestionKind.WORDS:
            return await self._words_answer(state, user_id, user_name, text, now)
        if question.kind is QuestionKind.CHOICE:
            index = choice_index(text, question.options)
            if index is None:
                last = LETTERS[len(question.options) - 1]
                note = f"Answer with a letter from A to {last}, or with an option's text."
                first = await self.store.first_notice(channel, state.qid, f"option:{user_id}")
                return AnswerOutcome(AnswerStatus.NOT_AN_OPTION, note if first else "")
            right, limit = question.options[index] == question.answer, 1
        else:
            right, limit = matches(text, question.answers), self.settings.max_answers_per_question
        tries = await self.store.count_try(channel, state.qid, user_id)
        if tries > limit:
            note = ""
            if tries == limit + 1:
                note = (
                    "You already picked an option for this question."
                    if limit == 1
                    else f"You have used your {limit} tries for this question."
                )
            return AnswerOutcome(AnswerStatus.TOO_MANY, note)
        if not right:
            return AnswerOutcome(AnswerStatus.WRONG)
        points = self._points(state, now)
        won, winner = await self.scores.claim(state, user_id, user_name, points, now)
        if not won:
            return AnswerOutcome(AnswerStatus.TOO_LATE, self._too_late(winner))
        await self._send(
            channel,
            messages.correct(
                state.kind, question, state.round, state.rounds, user_id, user_name, points
            ),
        )
        self._poke(channel)
        return AnswerOutcome(AnswerStatus.CORRECT, f"Right! +{points}.", points)

    def _too_late(self, winner: str) -> str:
        return f"Too late: {winner} got it first." if winner else "Too late: time ran out."

    async def _after_game(
        self, channel: ConversationKey, user_id: str, text: str, now: float
    ) -> AnswerOutcome:
        recent = await self.store.recent(channel, now)
        if recent is None or not self._looks_like_answer(recent[0], text):
            return AnswerOutcome(AnswerStatus.IGNORED)
        first = await self.store.first_notice(channel, recent[1], user_id)
        note = (
            f"This game is over, so no points for that. Start a new one with "
            f"{self.commands.trivia}, {self.commands.anagram} or {self.commands.words}."
        )
        return AnswerOutcome(AnswerStatus.TOO_LATE, note if first else "")

    async def _between_rounds(self, state: GameState, user_id: str, text: str) -> AnswerOutcome:
        question = state.question
        if state.phase == "closed" and question and self._looks_like_answer(question, text):
            first = await self.store.first_notice(state.channel, state.qid, f"late:{user_id}")
            return AnswerOutcome(
                AnswerStatus.TOO_LATE, self._too_late(state.winner_name) if first else ""
            )
        return AnswerOutcome(AnswerStatus.WAIT)

    def _looks_like_answer(self, question: Question, text: str) -> bool:
        if question.kind is QuestionKind.CHOICE:
            return choice_index(text, question.options) is not None
        if question.kind is QuestionKind.WORDS:
            return not check_word(text, question.prefix, self.words)[1]
        return matches(text, question.answers)

    async def _words_answer(
        self, state: GameState, user_id: str, user_name: str, text: str, now: float
    ) -> AnswerOutcome:
        question = state.question
        assert question is not None
        tokens = [t for t in re.split(r"[\s,;/]+", text) if t][:MAX_WORDS_PER_MESSAGE]
        accepted: list[str] = []
        rejected: list[str] = []
        duplicates: list[str] = []
        found, late = 0, False
        points = self.settings.word_points
        for token in dict.fromkeys(tokens):
            word, reason = check_word(token, question.prefix, self.words)
            if reason:
                rejected.append(reason)
                continue
            result, detail = await self.scores.add_word(
                state, user_id, user_name, word, points, now
            )
            if result in ("ok", "done"):
                accepted.append(word)
                found = int(detail)
                if result == "done":
                    done = await self.store.found_words(state.channel, state.qid)
                    await self._send(
                        state.channel,
                        messages.round_over(state.kind, question, state.round, state.rounds, done),
                    )
                    self._poke(state.channel)
            elif result == "dup":
                duplicates.append(f"{word} was already found by {detail}.")
            else:
                late = True
                break
        if rejected and not accepted:
            limit = self.settings.max_answers_per_question
            tries = await self.store.count_try(state.channel, state.qid, user_id)
            if tries > limit:
                note = (
                    f"You have used your {limit} tries for this round."
                    if tries == limit + 1
                    else ""
                )
                return AnswerOutcome(AnswerStatus.TOO_MANY, note)
        notes = " ".join(rejected[:3] + duplicates[:3])
        if accepted:
            gained = points * len(accepted)
            head = f"+{gained}: {', '.join(accepted)} ({found}/{question.target})."
            return AnswerOutcome(
                AnswerStatus.WORD_ACCEPTED, f"{head} {notes}".strip(), gained, tuple(accepted)
            )
        if late:
            return AnswerOutcome(AnswerStatus.TOO_LATE, "Too late: this round is over.")
        if rejected:
            return AnswerOutcome(AnswerStatus.WORD_REJECTED, notes)
        return AnswerOutcome(AnswerStatus.WORD_DUPLICATE, notes)

    # -- scoring and hints ------------------------------------------------------------------
    def _seconds(self, kind: GameKind) -> float:
        s = self.settings
        return s.words_time_s if kind is GameKind.WORDS else s.question_time_s

    def _hint_times(self, state: GameState) -> list[float]:
        assert state.question is not None
        return hint_times(state.question, state.opened_at, state.deadline, self.settings.hint_at)

    def _hints_due(self, state: GameState, now: float) -> int:
        return hints_due(self._hint_times(state), now)

    def _points(self, state: GameState, now: float) -> int:
        return points_now(self._hint_times(state), now, self.settings.points)

    def _hint_text(self, state: GameState, number: int) -> str:
        assert state.question is not None
        return hint_text(state.question, number, len(self._hint_times(state)), state.qid)

    # -- the loop ---------------------------------------------------------------------------
    def _spawn(self, channel: ConversationKey) -> None:
        task = self._tasks.get(channel.id)
        if task is None or task.done():
            self._tasks[channel.id] = asyncio.create_task(
                self._run(channel), name=f"game:{channel.id}"
            )

    def _poke(self, channel: ConversationKey) -> None:
        self._wake.setdefault(channel.id, asyncio.Event()).set()

    async def _cancel(self, channel: ConversationKey) -> None:
        task = self._tasks.pop(channel.id, None)
        if task is not None and task is not asyncio.current_task():
            await _cancel_all([task])

    async def _run(self, channel: ConversationKey) -> None:
        failures = 0
        while True:
            try:
                if await self._step(channel):
                    return
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                log.exception("game in %s: step failed (%d in a row)", channel.id, failures)
                if failures >= 20:
                    return
                await asyncio.sleep(min(30.0, 0.5 * failures))

    async def _wait(self, channel: ConversationKey, until: float) -> None:
        """Sleep until ``until`` or until an answer closes the question."""
        event = self._wake.setdefault(channel.id, asyncio.Event())
        if event.is_set():
            event.clear()
            return
        sleeper = asyncio.ensure_future(self.clock.sleep_until(until))
        waker = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()
        event.clear()

    async def _step(self, channel: ConversationKey) -> bool:
        """One move of a game; True when the game is over (or gone)."""
        state = await self.store.load(channel)
        if state is None:
            return True
        now = self.clock.now()
        if state.phase == "open":
            return await self._step_open(state, now)
        if state.phase == "closed":
            if now - max(state.activity, state.started_at) >= self.settings.silence_stop_s:
                await self._finish(state, ": nobody has answered for a while")
                return True
            if state.round >= state.rounds:
                await self._finish(state, "")
                return True
            resume_at = state.closed_at + self.settings.between_rounds_s
            if now < resume_at:
                await self._wait(channel, resume_at)
                return False
        return await self._open_next(state)

    async def _step_open(self, state: GameState, now: float) -> bool:
        question = state.question
        assert question is not None
        channel = state.channel
        if now >= state.deadline:
            if await self.store.reveal(state, now):
                await self._send(channel, await self._reveal_message(state))
            return False
        due = self._hints_due(state, now)
        if due > state.hints_shown:
            state.hints_shown = due
            if not await self.store.save(state):
                return True
            await self._send(
                channel,
                messages.hint(
                    state.kind,
                    question,
                    state.round,
                    state.rounds,
                    self._hint_text(state, due),
                    self._points(state, now),
                    state.deadline - now,
                ),
            )
        upcoming = [t for t in self._hint_times(state) if t > now]
        await self._wait(channel, min([*upcoming, state.deadline]))
        return False

    async def _reveal_message(self, state: GameState) -> GameMessage:
        question = state.question
        assert question is not None
        if question.kind is not QuestionKind.WORDS:
            return messages.reveal(state.kind, question, state.round, state.rounds)
        found = await self.store.found_words(state.channel, state.qid)
        examples = [
            w for w in self.words.starting_with(question.prefix, top=COMMON_TOP) if w not in found
        ][:5]
        return messages.reveal(state.kind, question, state.round, state.rounds, found, examples)

    async def _open_next(self, state: GameState) -> bool:
        made = await self.maker.make(
            state.kind,
            topic=state.topic,
            prefix=state.prefix if state.round == 0 else "",
            asked=state.asked,
        )
        question = made.question
        if made.note and not state.noted_fallback:
            state.noted_fallback = True
            await self._send(state.channel, messages.info(state.kind, made.note))
        now = self.clock.now()
        seconds = self._seconds(state.kind)
        state.round += 1
        state.question = question
        state.asked.append(question.id)
        state.opened_at = now
        state.hints_shown = 0
        state.qid = f"{state.id}-{state.round}"
        state.deadline = now + seconds
        opened = await self.store.save(
            state, phase="open", qid=state.qid, deadline=state.deadline, winner="", winner_name=""
        )
        if not opened:
            return True
        points = (
            self.settings.word_points
            if question.kind is QuestionKind.WORDS
            else self.settings.points[0]
        )
        await self._send(
            state.channel,
            messages.question(state.kind, question, state.round, state.rounds, seconds, points),
        )
        return False

    async def _finish(self, state: GameState, reason: str) -> GameMessage | None:
        """End the game once (whoever gets here first announces it)."""
        now = self.clock.now()
        await self.store.remember_end(state, now, self.settings.late_answer_window_s)
        if not await self.store.finish(state):
            return None
        channel = state.channel
        rows = await self.scores.leaderboard(
            channel, "game", self.settings.leaderboard_size, game_id=state.id
        )
        await self.scores.drop_game(channel, state.id)
        final = messages.final(state.kind, reason, rows, self.commands)
        await self._send(channel, final)
        self._wake.pop(channel.id, None)
        return final

    async def _send(self, channel: ConversationKey, message: GameMessage) -> None:
        if self.output is None:
            log.debug("no game output attached; dropped %s", message.kind)
            return
        try:
            await self.output.send(channel, message)
        except Exception:
            log.exception("could not post a game message to %s", channel.id)

    # -- life cycle -------------------------------------------------------------------------
    async def resume(self, channel: ConversationKey) -> bool:
        """Pick up the channel's game after a restart; False when it has none."""
        if await self.store.load(channel) is None:
            return False
        self._spawn(channel)
        return True

    async def resume_all(self, platform: str) -> int:
        """Resume every game of ``platform`` stored in Redis; returns how many."""
        count = 0
        for channel in await self.store.active_channels(platform):
            if await self.resume(channel):
                count += 1
            else:
                await self.store.forget_channel(channel)
        return count

    def running(self, channel: ConversationKey) -> bool:
        """Whether this engine runs the channel's game loop right now."""
        task = self._tasks.get(channel.id)
        return task is not None and not task.done()

    async def wait(self, channel: ConversationKey) -> None:
        """Wait until the channel's game loop ends (the game finished or was stopped)."""
        task = self._tasks.get(channel.id)
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def close(self) -> None:
        """Stop every game loop of this engine; the games stay in Redis to be resumed."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        await _cancel_all(tasks)


async def _cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel tasks and wait for them to end. Cancels again while one still runs: Python 3.11's
    ``wait_for`` (used inside the Redis client) can swallow a cancellation that races with a
    reply."""
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.05)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.error("a game loop ended with an error", exc_info=task.exception())
