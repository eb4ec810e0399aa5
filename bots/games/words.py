"""The shipped English word list (see data/LICENSES.md), most frequent words first."""

from __future__ import annotations

import bisect
import functools
from collections.abc import Iterable
from importlib import resources


class WordList:
    """A set of lowercase a-z words that keeps their frequency rank (0 = most common)."""

    def __init__(self, words: Iterable[str]) -> None:
        self._rank: dict[str, int] = {}
        for word in words:
            word = word.strip().lower()
            if word and word.isascii() and word.isalpha() and word not in self._rank:
                self._rank[word] = len(self._rank)
        self._sorted = sorted(self._rank)

    def __len__(self) -> int:
        return len(self._rank)

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and word.lower() in self._rank

    def rank(self, word: str) -> int:
        """Frequency rank of ``word`` (0 = most common); ``len(self)`` when unknown."""
        return self._rank.get(word.lower(), len(self._rank))

    def is_common(self, word: str, top: int = 20_000) -> bool:
        """Whether ``word`` is among the ``top`` most frequent words."""
        return self.rank(word) < top

    def starting_with(self, prefix: str, *, top: int | None = None) -> list[str]:
        """Words longer than ``prefix`` that start with it, most common first."""
        prefix = prefix.lower()
        start = bisect.bisect_left(self._sorted, prefix)
        found = []
        for word in self._sorted[start:]:
            if not word.startswith(prefix):
                break
            if len(word) > len(prefix) and (top is None or self._rank[word] < top):
                found.append(word)
        return sorted(found, key=self._rank.__getitem__)


@functools.cache
def default_words() -> WordList:
    """The word list shipped in ``bots/games/data/words.txt`` (loaded once)."""
    text = (
        resources.files("airoboros_bot.bots.games")
        .joinpath("data/words.txt")
        .read_text(encoding="utf-8")
    )
    return WordList(text.split())
