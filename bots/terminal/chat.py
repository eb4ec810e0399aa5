"""The terminal adapter: a local chat in the spirit of ``fastchat.serve.cli``.

The answer goes to stdout; banners, queue positions and notices go to stderr, so piping
``airoboros-bot chat`` gives clean answers. Games (``!!trivia``, ``!!anagram``, ``!!words``)
print their questions, hints and scores to stdout and the feedback on your own answers to
stderr; while a game runs, every plain line is an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import signal
import sys
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from redis.exceptions import RedisError

from airoboros_bot.bots.core.render import plain_sources
from airoboros_bot.bots.core.service import (
    Answer,
    AnswerEvent,
    ChatService,
    Delta,
    Restart,
    Submitted,
)
from airoboros_bot.bots.games import (
    AnswerStatus,
    Commands,
    GameEngine,
    GameKind,
    GameMessage,
    GameUsage,
    StartGame,
    StopGame,
    parse_command,
)
from airoboros_bot.config.errors import AiroborosError
from airoboros_bot.conversations.errors import ChatError
from airoboros_bot.conversations.models import ConversationKey
from airoboros_bot.conversations.text import clean_text
from airoboros_bot.engine.client import Queued

HELP = """Commands:
  !!exit                 leave (end of input does too)
  !!reset                forget this conversation's history
  !!regen                answer the last question again
  !!mode [history|no-history]   show or switch the mode
  !!context <text>       attach text as a context block
  !!context file PATH    attach a .txt / .md file as a context block
  !!context list         show the context blocks and the window they use
  !!context clear        remove all context blocks
  !!trivia start [topic] [rounds]   play trivia; while a game runs, lines are answers
  !!anagram [rounds]     play anagram riddles
  !!words [prefix] [rounds]         play the word list (words that start with a prefix)
  !!trivia stop          stop the game (any of the three)
  !!trivia leaderboard [all]        all-time scores here (all: every terminal chat)
  !!help                 this list
Ctrl-C stops the answer being written."""

GAME_COMMANDS = Commands(
    trivia="!!trivia start",
    stop="!!trivia stop",
    leaderboard="!!trivia leaderboard",
    anagram="!!anagram",
    words="!!words",
)
GAME_USAGE = GameUsage.of(GAME_COMMANDS, "!!trivia")
GAMES = frozenset(kind.value for kind in GameKind)
_QUIET = {
    AnswerStatus.WRONG: "(not it)",
    AnswerStatus.WAIT: "(no question is open: the next one is coming)",
}


@dataclass
class TerminalChat:
    """Reads questions and ``!!`` commands from a text stream and prints streamed answers."""

    service: ChatService
    key: ConversationKey
    stdin: TextIO = sys.stdin
    stdout: TextIO = sys.stdout
    stderr: TextIO = sys.stderr
    multiline: bool = False
    max_new_tokens: int | None = None
    temperature: float | None = None
    games: GameEngine | None = None
    player: str = ""
    _prompted: bool = field(default=False, init=False, repr=False)

    @property
    def interactive(self) -> bool:
        """Whether a person is typing (prompts are shown only then)."""
        return self.stdin.isatty()

    def _note(self, text: str) -> None:
        print(text, file=self.stderr, flush=True)

    async def _read_message(self) -> str | None:
        """One message; None at end of input. In multiline mode an empty line ends it."""
        if self.interactive:
            self.stdout.write("USER: ")
            self.stdout.flush()
        if not self.multiline:
            self._prompted = self.interactive
            try:
                line = await self._readline()
            finally:
                self._prompted = False
            return None if line == "" else line.rstrip("\n")
        lines: list[str] = []
        while True:
            line = await self._readline()
            if line == "":
                return "\n".join(lines) if lines else None
            if not line.strip() and lines:
                return "\n".join(lines)
            lines.append(line.rstrip("\n"))

    async def _readline(self) -> str:
        """One line of input, read on a daemon thread: a chat told to stop while it waits for
        input exits at once instead of waiting for a line that may never come."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()

        def settle(line: str | None, error: BaseException | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(line or "")

        def read() -> None:
            try:
                line, error = self.stdin.readline(), None
            except Exception as exc:  # handed to the event loop
                line, error = None, exc
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(settle, line, error)

        threading.Thread(target=read, name="terminal-input", daemon=True).start()
        return await future

    async def run(self) -> int:
        """Chat until ``!!exit`` or end of input; returns the exit code.

        A game still running at the end stays stored and resumes the next time this
        conversation is opened.
        """
        self._tolerate_bad_bytes()
        if self.interactive:
            self._note(
                "Type !!help for commands."
                + (" End a message with an empty line." if self.multiline else "")
            )
        if self.games is not None:
            self.games.attach(self, GAME_COMMANDS)
            if await self.games.resume(self.key):
                self._note("A game was running here: it goes on.")
        try:
            while True:
                message = await self._read_message()
                if message is None or message.strip() == "!!exit":
                    return 0
                message = clean_text(message)
                try:
                    if message.strip().startswith("!!"):
                        await self._command(message.strip())
                    elif message.strip() and not await self._play(message):
                        await self._answer(self.service.ask(self.key, message, **self._options()))
                except AiroborosError as exc:
                    self._note(f"error: {exc.user_message}")
                except RedisError as exc:
                    self._note(f"error: Redis failed ({type(exc).__name__}): ask again.")
        finally:
            if self.games is not None:
                await self.games.close()

    def _tolerate_bad_bytes(self) -> None:
        """Read invalid UTF-8 as U+FFFD and write what cannot be encoded escaped, so no input
        or output ends the chat with a traceback."""
        for stream, errors in (
            (self.stdin, "replace"),
            (self.stdout, "backslashreplace"),
            (self.stderr, "backslashreplace"),
        ):
            reconfigure = getattr(stream, "reconfigure", None)
            if reconfigure is not None:
                with contextlib.suppress(ValueError, OSError):
                    reconfigure(errors=errors)

    # -- games --------------------------------------------------------------------------------
    @property
    def player_name(self) -> str:
        """Who plays at this terminal."""
        if not self.player:
            try:
                self.player = getpass.getuser()
            except (KeyError, OSError):
                self.player = "player"
        return self.player

    async def send(self, channel: ConversationKey, message: GameMessage) -> None:
        """`GameOutput`: the game's messages for this conversation, as plain text on stdout."""
        if channel != self.key:
            return
        if self._prompted:  # below the waiting prompt, then the prompt again
            self.stdout.write(f"\n{message.text}\nUSER: ")
        else:
            self.stdout.write(message.text + "\n")
        self.stdout.flush()

    async def _play(self, line: str) -> bool:
        """Treat ``line`` as an answer when a game runs here; False: it is a question."""
        if self.games is None:
            return False
        name = self.player_name
        outcome = await self.games.on_message(self.key, name, name, line)
        if not outcome.handled:
            return False
        note = outcome.message or _QUIET.get(outcome.status, "")
        if note and outcome.status is not AnswerStatus.CORRECT:
            self._note(note)
        return True

    def _engine(self) -> GameEngine:
        if self.games is None:
            raise ChatError("Games are not enabled in this chat.")
        return self.games

    async def _game(self, name: str, arg: str) -> None:
        """``!!trivia ...``, ``!!anagram ...``, ``!!words ...``."""
        engine = self._engine()
        request = parse_command(name, arg, GAME_USAGE)
        if isinstance(request, StartGame):
            await engine.start(
                self.key,
                request.kind,
                topic=request.topic,
                prefix=request.prefix,
                rounds=request.rounds,
                user_id=self.player_name,
                user_name=self.player_name,
            )
        elif isinstance(request, StopGame):
            await engine.stop(self.key, user_name=self.player_name)
        else:
            self.stdout.write((await engine.leaderboard(self.key, request.scope)).text + "\n")
            self.stdout.flush()

    def _options(self) -> dict[str, float | int | None]:
        return {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature}

    async def _command(self, line: str) -> None:
        name, _, arg = line[2:].partition(" ")
        arg = arg.strip()
        if name == "reset":
            dropped = await self.service.reset(self.key)
            self._note(f"Conversation reset ({dropped} turns forgotten).")
        elif name == "regen":
            self._note("Regenerating the last answer...")
            await self._answer(self.service.regenerate(self.key, **self._options()))
        elif name == "mode":
            mode = (
                await self.service.set_mode(self.key, arg)
                if arg
                else await self.service.get_mode(self.key)
            )
            self._note(f"Mode: {mode.value}.")
        elif name == "context":
            await self._context(arg)
        elif name in GAMES:
            await self._game(name, arg)
        elif name == "help":
            self._note(HELP)
        else:
            self._note(f"Unknown command !!{name}: type !!help for the list.")

    async def _context(self, arg: str) -> None:
        verb, _, rest = arg.partition(" ")
        if verb == "list":
            usage = await self.service.context_usage(self.key)
            for number, (block, tokens) in enumerate(
                zip(usage.blocks, usage.block_tokens, strict=True), 1
            ):
                self._note(f"  [{number}] {block.label} ({tokens} tokens)")
            self._note(
                f"{len(usage.blocks)} blocks, {usage.total_tokens} of {usage.window} tokens."
            )
        elif verb == "clear":
            self._note(f"Removed {await self.service.clear_context(self.key)} context blocks.")
        elif verb == "file":
            path = Path(rest).expanduser()
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ChatError(f"Cannot read {path}: {exc.__class__.__name__}") from None
            block, usage = await self.service.add_context(self.key, text, {"file": path.name})
            self._note(f"Added {block.label} ({usage.total_tokens} of {usage.window} tokens used).")
        elif arg:
            block, usage = await self.service.add_context(self.key, arg, {"source": "terminal"})
            self._note(
                f"Added a context block ({usage.total_tokens} of {usage.window} tokens used)."
            )
        else:
            raise ChatError("Usage: !!context <text> | file PATH | list | clear")

    async def _answer(self, events: AsyncIterator[AnswerEvent]) -> None:
        """Print an answer as it streams; Ctrl-C cancels it."""
        task = asyncio.ensure_future(self._render(events))
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGINT, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if not task.cancelled() or (me is not None and me.cancelling()):
                raise  # the whole chat is stopping, not just this answer
            self.stdout.write("\n")
            self._note("(stopped)")
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGINT)

    async def _render(self, events: AsyncIterator[AnswerEvent]) -> None:
        out = self.stdout
        started = False
        async for event in events:
            if isinstance(event, Submitted):
                if event.dropped_turns:
                    self._note(
                        f"(left out the {event.dropped_turns} oldest turns to fit the window)"
                    )
                if event.omitted_blocks:
                    names = ", ".join(b.label for b in event.omitted_blocks)
                    self._note(f"(context blocks that did not fit the window: {names})")
            elif isinstance(event, Queued):
                self._note(f"(queued, {event.ahead} ahead)")
            elif isinstance(event, Delta):
                if not started:
                    out.write("ASSISTANT: ")
                    started = True
                out.write(event.text)
                out.flush()
            elif isinstance(event, Restart):
                if started:
                    out.write("\n")
                self._note("(the engine restarted this answer)")
                started = False
            elif isinstance(event, Answer):
                if not started:
                    out.write("ASSISTANT: " + event.text)
                out.write("\n")
                if event.sources:
                    out.write(plain_sources(event.sources) + "\n")
                out.flush()
