"""Slack text for the games: each `GameMessage` as Block Kit, the command spellings and usages.

Everything a player or the model wrote (names, topics, questions, options) is escaped, so a
game message can never ping ``@channel`` or a person, nor make a link. No Slack library here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airoboros_bot.bots.games import Commands, GameKind, GameMessage, LeaderboardRow, MessageKind
from airoboros_bot.bots.slack.format import escape, section

# Backticks: the engine's texts name the commands, and Slack shows them as code.
SLACK_GAME_COMMANDS = Commands(
    trivia="`/trivia start`",
    stop="`/trivia stop`",
    leaderboard="`/trivia leaderboard`",
    anagram="`/anagram`",
    words="`/words`",
)
TRIVIA_USAGE = (
    "Usage: `/trivia start [topic] [rounds]` plays trivia in this channel, `/trivia stop` stops "
    "the game running here, `/trivia leaderboard [workspace]` shows the all-time scores of this "
    "channel (or of the workspace). Word games: `/anagram [rounds]`, `/words [prefix] [rounds]`. "
    "Answer with plain messages in the channel: the first right answer wins."
)
ANAGRAM_USAGE = "Usage: `/anagram [rounds]`, e.g. `/anagram 3`."
WORDS_USAGE = "Usage: `/words [prefix] [rounds]`, e.g. `/words en` (no prefix: a random one)."
TRIVIA_CHANNEL_HINT = (
    "This is a trivia channel: I don't chat here. Post `trivia` (or `trivia space 3`), `anagram` "
    "or `words` to play a round."
)
NO_GAMES = "Games are not enabled in this app."

_EMOJI = {
    MessageKind.START: ":video_game:",
    MessageKind.HINT: ":bulb:",
    MessageKind.CORRECT: ":tada:",
    MessageKind.ROUND_OVER: ":white_check_mark:",
    MessageKind.REVEAL: ":hourglass:",
    MessageKind.SCORES: ":trophy:",
    MessageKind.INFO: ":information_source:",
    MessageKind.ERROR: ":warning:",
}
_MEDALS = {1: ":first_place_medal:", 2: ":second_place_medal:", 3: ":third_place_medal:"}
_LETTERS = "ABCDE"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 1 else f"{value:.1f} s"


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:3000]}]}


def game_text(message: GameMessage) -> str:
    """The message's plain text, escaped: the notification and fallback text."""
    return escape(message.text)


def board_mrkdwn(rows: Sequence[LeaderboardRow]) -> str:
    """Leaderboard rows as mrkdwn lines: medal or rank, name in bold, points."""
    return "\n".join(
        f"{_MEDALS.get(r.rank, f'{r.rank}.')} *{escape(r.name)}*  {_plural(r.points, 'point')}"
        for r in rows
    )


def scores_mrkdwn(message: GameMessage) -> str:
    """A SCORES message (final scores or a leaderboard) as one mrkdwn text."""
    lines = message.text.split("\n")
    head = f"{_EMOJI[MessageKind.SCORES]} *{escape(lines[0])}*"
    parts = [head]
    if message.leaderboard:
        parts.append(board_mrkdwn(message.leaderboard))
    if message.game is not None and len(lines) > 1:  # final scores end with where to find more
        parts.append(escape(lines[-1]))
    return "\n".join(parts)


def _question_blocks(message: GameMessage) -> list[dict[str, Any]]:
    words = message.game is GameKind.WORDS
    worth = (
        f"{_plural(message.points, 'point')} a word" if words else _plural(message.points, "point")
    )
    head = f":question: *{escape(message.title)}*  ·  {_seconds(message.seconds)}  ·  {worth}"
    blocks = [section(f"{head}\n>{escape(' '.join(message.question.split()))}")]
    if message.options:
        options = "\n".join(
            f"*{_LETTERS[i]})* {escape(option)}" for i, option in enumerate(message.options)
        )
        blocks.append(section(options))
        last = _LETTERS[len(message.options) - 1]
        how = f"Answer here with a letter (A–{last}) or the option: one pick each."
    elif words:
        how = "Write words here (several at once is fine): each new valid word scores."
    else:
        how = "Answer here: the first right answer wins."
    blocks.append(_context(how))
    return blocks


def game_blocks(message: GameMessage) -> list[dict[str, Any]]:
    """Block Kit for one game message (sections and a context line, within Slack's limits)."""
    if message.kind is MessageKind.QUESTION:
        return _question_blocks(message)
    if message.kind is MessageKind.SCORES:
        return [section(scores_mrkdwn(message))]
    emoji = _EMOJI.get(message.kind, "")
    if message.kind is MessageKind.CORRECT:
        text = (
            f"{emoji} *{escape(message.user_name)}* got it: *{escape(message.answer)}* "
            f"(+{_plural(message.points, 'point')})."
        )
        if message.rounds:
            return [section(text), _context(f"Round {message.round} of {message.rounds}")]
        return [section(text)]
    if message.kind is MessageKind.START:
        return [section(f"{emoji} *{escape(message.title)}*\n{escape(message.text)}")]
    return [section(f"{emoji} {escape(message.text)}".strip())]
