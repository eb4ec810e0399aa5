"""One parser of game requests for every adapter.

The words after a game command (``/trivia start space 3`` in Slack, ``!!words en 2`` in the
terminal) and posts in a trivia channel (``trivia space 3``) become a `GameRequest`:

- ``trivia start [topic] [rounds]``, ``trivia stop``, ``trivia leaderboard [channel | workspace]``
- ``anagram [rounds]``
- ``words [prefix] [rounds]``

Rounds are a trailing number in ASCII digits. Anything that does not fit raises `GameError`
with the platform's usage text (`GameUsage`); no other exception escapes, whatever the text.
The engine checks the values themselves (rounds in range, topic length, playable prefix).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from airoboros_bot.bots.games.models import Commands, GameError, GameKind

Scope = Literal["channel", "workspace"]

POST_ROUNDS = 1  # a game started by a post in a trivia channel, unless the post says how many
MAX_ROUNDS_DIGITS = 9  # longer numbers read as too many rounds (int() refuses > 4,300 digits)
_ROUNDS = re.compile(r"[0-9]+", re.ASCII)
_SCOPES: dict[str, Scope] = {
    "": "channel",
    "channel": "channel",
    "workspace": "workspace",
    "server": "workspace",
    "all": "workspace",
}


@dataclass(frozen=True)
class StartGame:
    """Start a game (``rounds=None``: the game's default)."""

    kind: GameKind
    topic: str = ""
    prefix: str = ""
    rounds: int | None = None


@dataclass(frozen=True)
class StopGame:
    """Stop the game running here."""


@dataclass(frozen=True)
class ShowLeaderboard:
    """The all-time scores of this channel or of the whole workspace (server)."""

    scope: Scope = "channel"


GameRequest = StartGame | StopGame | ShowLeaderboard


@dataclass(frozen=True)
class GameUsage:
    """What a platform tells a player whose request does not fit (shown as written)."""

    trivia: str
    anagram: str
    words: str
    leaderboard: str
    trivia_command: str  # how the trivia command is typed, e.g. ``/trivia``

    @classmethod
    def of(cls, commands: Commands, trivia_command: str) -> GameUsage:
        """Plain usage lines built from how a platform types the commands."""
        return cls(
            trivia=f"Usage: {commands.trivia} [topic] [rounds] | {commands.stop} | "
            f"{commands.leaderboard}",
            anagram=f"Usage: {commands.anagram} [rounds]",
            words=f"Usage: {commands.words} [prefix] [rounds]",
            leaderboard=f"Usage: {commands.leaderboard} [channel | workspace]",
            trivia_command=trivia_command,
        )


def _rounds(words: list[str]) -> int | None:
    """Take a trailing number of rounds off ``words``."""
    if not words or not _ROUNDS.fullmatch(words[-1]):
        return None
    digits = words.pop()
    return int(digits) if len(digits) <= MAX_ROUNDS_DIGITS else 10**MAX_ROUNDS_DIGITS


def _start(kind: GameKind, words: list[str], usage: GameUsage) -> StartGame:
    rounds = _rounds(words)
    if kind is GameKind.TRIVIA:
        return StartGame(kind, topic=" ".join(words), rounds=rounds)
    if kind is GameKind.ANAGRAM and words:
        raise GameError(usage.anagram)
    if kind is GameKind.WORDS and len(words) > 1:
        raise GameError(usage.words)
    return StartGame(kind, prefix=words[0] if words else "", rounds=rounds)


def parse_command(game: GameKind | str, text: str, usage: GameUsage) -> GameRequest:
    """The request of a game command: ``game`` is the command's game (``trivia``, ``anagram``
    or ``words``), ``text`` what was typed after it."""
    try:
        kind = GameKind(str(game).lower())
    except ValueError:
        raise GameError(
            f"Unknown game {str(game)[:30]!r}: play trivia, anagram or words."
        ) from None
    words = text.split()
    if kind is not GameKind.TRIVIA:
        return _start(kind, words, usage)
    verb = words.pop(0).lower() if words else ""
    if verb == "start":
        return _start(kind, words, usage)
    if verb == "stop":
        return StopGame()
    if verb == "leaderboard":
        scope = _SCOPES.get(" ".join(words).lower())
        if scope is None:
            raise GameError(usage.leaderboard)
        return ShowLeaderboard(scope)
    if verb in ("", "help"):
        raise GameError(usage.trivia)
    raise GameError(f"I don't know `{usage.trivia_command} {verb[:30]}`. {usage.trivia}")


def parse_post(text: str, usage: GameUsage) -> StartGame | None:
    """What a post in a trivia channel asks to play: ``trivia [start] [topic] [rounds]``,
    ``anagram [rounds]`` or ``words [prefix] [rounds]`` (any case), one round unless it says.

    None when the post does not begin with a game's name; `GameError` when it does but the
    rest does not fit.
    """
    words = text.split()
    try:
        kind = GameKind(words[0].lower()) if words else None
    except ValueError:
        return None
    if kind is None:
        return None
    rest = words[1:]
    if kind is GameKind.TRIVIA and rest and rest[0].lower() == "start":
        rest.pop(0)
    request = _start(kind, rest, usage)
    if request.rounds is None:
        return StartGame(request.kind, request.topic, request.prefix, POST_ROUNDS)
    return request
