"""Answer matching: how a player's text is compared with an answer.

Rules: case, accents, punctuation, a leading article (a / an / the) and ``&`` versus ``and`` do
not matter; number words up to twenty equal their digits; a long answer tolerates a small typo
(one edit from 6 letters, two from 12; never in an answer with digits); a short one must be
exact. Whole answers are compared, so a word inside another word never matches ("air" is not
"chair") and neither does an answer buried in a sentence.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Iterable, Sequence

from airoboros_bot.bots.games.models import LETTERS

_ARTICLES = frozenset({"a", "an", "the"})
_NUMBERS = {
    word: str(value)
    for value, word in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ]
    )
}
_APOSTROPHES = re.compile(r"['’‘`´]")
_PUNCTUATION = re.compile(r"[^\w\s]|_")


def normalize(text: str) -> str:
    """The comparable form of an answer: ``"The Tom & Jerry!"`` -> ``"tom and jerry"``."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    plain = _APOSTROPHES.sub("", plain.replace("&", " and "))
    words = _PUNCTUATION.sub(" ", plain).split()
    if len(words) > 1 and words[0] in _ARTICLES:
        words = words[1:]
    return " ".join(_NUMBERS.get(w, w) for w in words)


def typo_budget(normalized_answer: str) -> int:
    """Edits tolerated for this (normalized) answer: 0 below 6 letters or with digits."""
    if any(c.isdigit() for c in normalized_answer):
        return 0
    letters = len(normalized_answer.replace(" ", ""))
    return 0 if letters < 6 else 1 if letters < 12 else 2


def edit_distance(a: str, b: str, limit: int) -> int:
    """Damerau-Levenshtein distance (adjacent swaps count one), or ``limit + 1`` when above."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return min(previous[-1], limit + 1)


def matches(guess: str, answers: Iterable[str]) -> bool:
    """Whether ``guess`` is one of ``answers`` under the rules above."""
    said = normalize(guess)
    if not said:
        return False
    for answer in answers:
        wanted = normalize(answer)
        if not wanted:
            continue
        if said == wanted:
            return True
        budget = typo_budget(wanted)
        if budget and edit_distance(said, wanted, budget) <= budget:
            return True
    return False


_LETTER_ONLY = re.compile(r"\s*[\[(]?\s*([A-Ea-e])\s*[\]).:]?\s*")
_BRACKETED = re.compile(r"\s*\[\s*([A-Ea-e])\s*,[^\]]*\]\s*")
_LETTER_THEN_TEXT = re.compile(r"\s*\(?([A-Ea-e])\s*[).:]\s*\S.*")


def choice_index(guess: str, options: Sequence[str]) -> int | None:
    """Which option a multiple-choice answer picks, or None if it picks none.

    Accepts a letter (``c``, ``C)``, ``(c)``, ``[C]``), the airoboros form ``[C, Pluto]``,
    ``C) Pluto`` (the letter decides) or an option's text (typo rules as above).
    """
    for pattern in (_LETTER_ONLY, _BRACKETED, _LETTER_THEN_TEXT):
        found = pattern.fullmatch(guess)
        if found:
            index = LETTERS.index(found.group(1).upper())
            return index if index < len(options) else None
    picked = [i for i, option in enumerate(options) if normalize(guess) == normalize(option)]
    if not picked:
        picked = [i for i, option in enumerate(options) if matches(guess, [option])]
    return picked[0] if len(picked) == 1 else None


def word_of(text: str) -> str:
    """``text`` as one word of lowercase letters a-z, or "" when it is not a single word."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    words = _PUNCTUATION.sub(" ", _APOSTROPHES.sub("", plain)).split()
    if len(words) != 1 or not (words[0].isascii() and words[0].isalpha()):
        return ""
    return words[0]


def mask(answer: str, revealed: int, seed: str) -> str:
    """The answer with all but ``revealed`` letters hidden: ``l _ _ t _ n``.

    The first letter comes first, then the others in an order fixed by ``seed`` (so a resumed
    game shows the same hints). Words are separated by three spaces.
    """
    positions = [i for i, c in enumerate(answer) if c.isalnum()]
    order = positions[:1] + random.Random(seed).sample(positions[1:], len(positions) - 1)
    shown = set(order[: max(0, revealed)])
    words, current = [], []
    for i, c in enumerate(answer):
        if c == " ":
            if current:
                words.append(" ".join(current))
            current = []
        else:
            current.append(c if (i in shown or not c.isalnum()) else "_")
    if current:
        words.append(" ".join(current))
    return "   ".join(words)


def letters_to_reveal(answer: str, hint: int, hints: int) -> int:
    """How many letters hint number ``hint`` (1-based) of ``hints`` shows; never all of them."""
    count = sum(c.isalnum() for c in answer)
    wanted = -(-count * hint // (hints + 2))  # ceil: 1/4 then 2/4 of the letters for two hints
    return max(0, min(max(1, wanted), count - 1))
