"""How the games look on Discord: a `GameMessage` as an embed (question with lettered options,
hints, the winner, the reveal, scores), and what a player's answer gets back (a reaction, or a
short reply for notes such as "too late").

Plain functions of the engine's data; sending is `bots.discord.game_output`. Model text and
player names are escaped, so they show as written and never format, link or ping.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import discord

from airoboros_bot.bots.games import (
    AnswerOutcome,
    AnswerStatus,
    GameKind,
    GameMessage,
    LeaderboardRow,
    MessageKind,
)
from airoboros_bot.bots.games.messages import board_lines
from airoboros_bot.bots.games.models import LETTERS

TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FOOTER_LIMIT = 1024
NAME_LIMIT = 64

COLOURS = {
    MessageKind.START: discord.Colour.blurple(),
    MessageKind.QUESTION: discord.Colour.blue(),
    MessageKind.HINT: discord.Colour.gold(),
    MessageKind.CORRECT: discord.Colour.green(),
    MessageKind.ROUND_OVER: discord.Colour.green(),
    MessageKind.REVEAL: discord.Colour.orange(),
    MessageKind.SCORES: discord.Colour.purple(),
    MessageKind.INFO: discord.Colour.light_grey(),
    MessageKind.ERROR: discord.Colour.red(),
}
# Feedback on one player's answer: a reaction (quiet), else the note as a short reply.
REACTIONS = {
    AnswerStatus.CORRECT: "✅",
    AnswerStatus.WRONG: "❌",
    AnswerStatus.WORD_ACCEPTED: "✅",
    AnswerStatus.WORD_REJECTED: "❌",
    AnswerStatus.WORD_DUPLICATE: "🔁",
}
REPLIED = frozenset({AnswerStatus.NOT_AN_OPTION, AnswerStatus.TOO_MANY, AnswerStatus.TOO_LATE})
MEDALS = ("🥇", "🥈", "🥉")

_SPECIALS = re.compile(r"([\\\[\]*_~`|<>])")
_LINE_START = re.compile(r"(?m)^(\s*)([-+#])")


def escape(text: str) -> str:
    """Text that Discord shows as written: no formatting, links, mentions or headings."""
    return _LINE_START.sub(r"\1\\\2", _SPECIALS.sub(r"\\\1", text))


def player(name: str) -> str:
    """A player's name, bold and escaped (shown, never pinged)."""
    return f"**{escape(' '.join(name.split())[:NAME_LIMIT]) or 'someone'}**"


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 1 else f"{value:.1f} s"


def _points(value: int) -> str:
    return f"{value} point" if value == 1 else f"{value} points"


def board(rows: Sequence[LeaderboardRow]) -> str:
    """Leaderboard rows as lines: medal or rank, name, points."""
    lines = []
    for row in rows:
        rank = MEDALS[row.rank - 1] if 1 <= row.rank <= len(MEDALS) else f"`{row.rank:>2}.`"
        lines.append(f"{rank} {player(row.name)} · {_points(row.points)}")
    return "\n".join(lines)


def _question(message: GameMessage) -> tuple[str, str]:
    lines = [escape(message.question)]
    words = message.game is GameKind.WORDS
    if message.options:
        lines.append("")
        lines += [f"**{LETTERS[i]})** {escape(o)}" for i, o in enumerate(message.options)]
        how = f"answer with a letter (A-{LETTERS[len(message.options) - 1]}) or the option"
    elif words:
        how = "write words here, several per message if you like"
    else:
        how = "the first right answer wins"
    each = " a word" if words else ""
    footer = f"{_seconds(message.seconds)} · {_points(message.points)}{each} · {how}"
    return "\n".join(lines), footer


def _hint(message: GameMessage) -> tuple[str, str]:
    shown = message.hint.replace("`", "'")
    body = escape(shown) if message.options else f"`{shown}`"
    return body, f"now {_points(message.points)} · {_seconds(message.seconds)} left"


def _scores(message: GameMessage) -> tuple[str, str]:
    rows = message.leaderboard
    if not rows:
        return escape(message.text), ""
    before, found, after = message.text.partition(board_lines(rows))
    if not found:
        return board(rows), ""
    return f"{escape(before.strip())}\n{board(rows)}", escape(after.strip())


def describe(message: GameMessage) -> tuple[str, str]:
    """The description and footer of ``message``'s embed."""
    if message.kind is MessageKind.QUESTION:
        return _question(message)
    if message.kind is MessageKind.HINT:
        return _hint(message)
    if message.kind is MessageKind.CORRECT:
        answer = escape(message.answer)
        return f"{player(message.user_name)} got it: **{answer}** (+{_points(message.points)})", ""
    if message.kind is MessageKind.SCORES:
        return _scores(message)
    return escape(message.text), ""


def game_embed(message: GameMessage, title: str = "") -> discord.Embed:
    """``message`` as one embed within Discord's limits (``title`` overrides its title)."""
    description, footer = describe(message)
    heading = title or message.title or "Game"
    if message.rounds and message.kind in (MessageKind.CORRECT, MessageKind.REVEAL):
        heading = f"{heading} · round {message.round}/{message.rounds}"
    embed = discord.Embed(
        title=heading[:TITLE_LIMIT],
        description=description[:DESCRIPTION_LIMIT] or "…",
        colour=COLOURS.get(message.kind, discord.Colour.default()),
    )
    if footer:
        embed.set_footer(text=footer[:FOOTER_LIMIT])
    return embed


def leaderboard_embed(title: str, rows: Sequence[LeaderboardRow]) -> discord.Embed:
    """A leaderboard someone asked for."""
    return discord.Embed(
        title=title[:TITLE_LIMIT],
        description=board(rows)[:DESCRIPTION_LIMIT] or "Nobody has scored yet.",
        colour=COLOURS[MessageKind.SCORES],
    )


def reaction(outcome: AnswerOutcome) -> str | None:
    """The reaction an answer gets (None: none)."""
    return REACTIONS.get(outcome.status)


def reply_note(outcome: AnswerOutcome) -> str:
    """The short reply an answer gets ("" = none): only notes such as "too late" or "too many
    answers", and each of them once per player (the engine says so only the first time)."""
    return outcome.message if outcome.status in REPLIED else ""
