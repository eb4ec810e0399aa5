"""Every text the games show players, built as `GameMessage`s (one module of texts)."""

from __future__ import annotations

from collections.abc import Sequence

from airoboros_bot.bots.games.models import (
    LETTERS,
    Commands,
    GameKind,
    GameMessage,
    LeaderboardRow,
    MessageKind,
    Question,
    QuestionKind,
)


def _s(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 1 else f"{value:.1f} s"


def board_lines(rows: Sequence[LeaderboardRow]) -> str:
    """``1. Alice  16`` lines."""
    width = max((len(r.name) for r in rows), default=0)
    return "\n".join(f"{r.rank:>3}. {r.name:<{width}}  {r.points}" for r in rows)


def start(
    kind: GameKind, rounds: int, topic: str, by: str, seconds: float, commands: Commands
) -> GameMessage:
    """A game begins."""
    what = {
        GameKind.TRIVIA: f"{_s(rounds, 'question')} about {topic or 'anything'}",
        GameKind.ANAGRAM: _s(rounds, "anagram riddle"),
        GameKind.WORDS: _s(rounds, "word-list round"),
    }[kind]
    how = (
        "Write words here: each new valid word scores."
        if kind is GameKind.WORDS
        else f"Answer here: the first right answer wins. Hints come as the {seconds:.0f} s run"
        " down, and each one lowers the points."
    )
    starter = f" (started by {by})" if by else ""
    text = f"{kind.title}: {what}{starter}. {how} Stop with {commands.stop}."
    return GameMessage(MessageKind.START, text, kind, title=f"{kind.title} starts", rounds=rounds)


def question(
    kind: GameKind, q: Question, number: int, rounds: int, seconds: float, points: int
) -> GameMessage:
    """A question opens."""
    label = {
        QuestionKind.CHOICE: "Question",
        QuestionKind.SHORT: "Question",
        QuestionKind.ANAGRAM: "Anagram",
        QuestionKind.WORDS: "Word list",
    }[q.kind]
    title = f"{label} {number}/{rounds}"
    if q.kind is QuestionKind.WORDS:
        head = f"{title} ({_seconds(seconds)}, {_s(points, 'point')} a word): {q.text}"
    else:
        head = f"{title} ({_seconds(seconds)}, {_s(points, 'point')}): {q.text}"
    lines = [head]
    lines += [f"  {LETTERS[i]}) {option}" for i, option in enumerate(q.options)]
    if q.options:
        lines.append(f"Answer with a letter (A-{LETTERS[len(q.options) - 1]}) or the option.")
    return GameMessage(
        MessageKind.QUESTION,
        "\n".join(lines),
        kind,
        title=title,
        round=number,
        rounds=rounds,
        question=q.text,
        options=q.options,
        points=points,
        seconds=seconds,
    )


def hint(
    kind: GameKind, q: Question, number: int, rounds: int, shown: str, points: int, left: float
) -> GameMessage:
    """A hint: letters of the answer, or options ruled out."""
    text = f"Hint: {shown} (now {_s(points, 'point')}, {_seconds(left)} left)"
    return GameMessage(
        MessageKind.HINT,
        text,
        kind,
        title="Hint",
        round=number,
        rounds=rounds,
        question=q.text,
        options=q.options,
        hint=shown,
        points=points,
        seconds=left,
    )


def correct(
    kind: GameKind, q: Question, number: int, rounds: int, user_id: str, name: str, points: int
) -> GameMessage:
    """Someone won the round."""
    text = f"{name} got it: {q.shown_answer} (+{_s(points, 'point')})."
    return GameMessage(
        MessageKind.CORRECT,
        text,
        kind,
        title="Correct",
        round=number,
        rounds=rounds,
        question=q.text,
        points=points,
        user_id=user_id,
        user_name=name,
        answer=q.shown_answer,
    )


def _found_list(found: dict[str, str]) -> str:
    return ", ".join(f"{word} ({who})" for word, who in found.items())


def round_over(
    kind: GameKind, q: Question, number: int, rounds: int, found: dict[str, str]
) -> GameMessage:
    """A word-list round got all its words."""
    text = f"All {q.target} words found: {_found_list(found)}."
    return GameMessage(
        MessageKind.ROUND_OVER,
        text,
        kind,
        title="Round over",
        round=number,
        rounds=rounds,
        question=q.text,
        words=tuple(found),
    )


def reveal(
    kind: GameKind,
    q: Question,
    number: int,
    rounds: int,
    found: dict[str, str] | None = None,
    examples: Sequence[str] = (),
) -> GameMessage:
    """Time ran out."""
    if q.kind is QuestionKind.WORDS:
        got = f"Found {len(found or {})} of {q.target}"
        got += f": {_found_list(found)}." if found else "."
        more = f" Other words: {', '.join(examples)}." if examples else ""
        text = f"Time's up! {got}{more}"
        answer = ""
    else:
        text = f"Time's up! The answer was: {q.shown_answer}."
        answer = q.shown_answer
    return GameMessage(
        MessageKind.REVEAL,
        text,
        kind,
        title="Time's up",
        round=number,
        rounds=rounds,
        question=q.text,
        answer=answer,
        words=tuple(found or ()) + tuple(examples),
    )


def final(
    kind: GameKind, reason: str, rows: Sequence[LeaderboardRow], commands: Commands
) -> GameMessage:
    """The game is over: why, and its scores."""
    head = f"{kind.title} over{reason}."
    if rows:
        text = f"{head} Final scores:\n{board_lines(rows)}"
    else:
        text = f"{head} Nobody scored this time."
    text += f"\nAll-time scores: {commands.leaderboard}"
    return GameMessage(
        MessageKind.SCORES, text, kind, title=f"{kind.title} over", leaderboard=tuple(rows)
    )


def leaderboard(title: str, rows: Sequence[LeaderboardRow]) -> GameMessage:
    """A leaderboard asked for."""
    text = f"{title}:\n{board_lines(rows)}" if rows else f"{title}: nobody has scored yet."
    return GameMessage(MessageKind.SCORES, text, None, title=title, leaderboard=tuple(rows))


def info(kind: GameKind | None, text: str) -> GameMessage:
    """A notice for the channel."""
    return GameMessage(MessageKind.INFO, text, kind, title="Note")
