"""Trivia and word games for any chat platform.

An adapter builds one `GameEngine`, implements `GameOutput` (render a `GameMessage` in a
channel), calls `start` / `stop` / `leaderboard` for its commands, passes players' plain
messages to `on_message`, and calls `resume_all(platform)` at start-up. Typed requests
(``trivia start space 3``) go through one parser, `parse_command` / `parse_post`. See
docs/games.md.
"""

from airoboros_bot.bots.games.clock import Clock, ScaledClock, SystemClock
from airoboros_bot.bots.games.engine import GameEngine, GameOutput
from airoboros_bot.bots.games.generate import QuestionModel
from airoboros_bot.bots.games.models import (
    AnswerOutcome,
    AnswerStatus,
    Commands,
    GameError,
    GameKind,
    GameMessage,
    GameStatus,
    LeaderboardRow,
    MessageKind,
    Question,
    QuestionKind,
)
from airoboros_bot.bots.games.requests import (
    GameRequest,
    GameUsage,
    ShowLeaderboard,
    StartGame,
    StopGame,
    parse_command,
    parse_post,
)

__all__ = [
    "AnswerOutcome",
    "AnswerStatus",
    "Clock",
    "Commands",
    "GameEngine",
    "GameError",
    "GameKind",
    "GameMessage",
    "GameOutput",
    "GameRequest",
    "GameStatus",
    "GameUsage",
    "LeaderboardRow",
    "MessageKind",
    "Question",
    "QuestionKind",
    "QuestionModel",
    "ScaledClock",
    "ShowLeaderboard",
    "StartGame",
    "StopGame",
    "SystemClock",
    "parse_command",
    "parse_post",
]
