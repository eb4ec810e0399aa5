"""When hints come, what they show, and what a right answer is worth at a given moment.

Hints are due at fixed fractions of the question time (``hint_at``); each one due lowers the
points (``points``). Points follow the clock, not the posted hints, so a slow loop or a restart
never changes a score. Multiple choice keeps at least two options in play.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from airoboros_bot.bots.games.matching import letters_to_reveal, mask
from airoboros_bot.bots.games.models import LETTERS, Question, QuestionKind


def hint_times(
    question: Question, opened_at: float, deadline: float, hint_at: Sequence[float]
) -> list[float]:
    """The moments this question's hints are due (none for the word list)."""
    if question.kind is QuestionKind.WORDS:
        return []
    fractions = list(hint_at)
    if question.kind is QuestionKind.CHOICE:
        fractions = fractions[: max(0, len(question.options) - 2)]
    return [opened_at + f * (deadline - opened_at) for f in fractions]


def hints_due(times: Sequence[float], now: float) -> int:
    """How many hints are due at ``now``."""
    return sum(1 for t in times if t <= now)


def points_now(times: Sequence[float], now: float, points: Sequence[int]) -> int:
    """What a right answer is worth at ``now``."""
    return points[min(hints_due(times, now), len(points) - 1)]


def hint_text(question: Question, number: int, hints: int, seed: str) -> str:
    """Hint ``number`` (1-based) of ``hints``: letters of the answer, or options ruled out.

    ``seed`` fixes the order, so the same question always gives the same hints.
    """
    if question.kind is QuestionKind.CHOICE:
        wrong = [i for i, option in enumerate(question.options) if option != question.answer]
        out = random.Random(seed).sample(wrong, len(wrong))[:number]
        return ", ".join(f"not {LETTERS[i]}) {question.options[i]}" for i in sorted(out))
    answer = question.answer
    return mask(answer, letters_to_reveal(answer, number, hints), seed)
