"""The built-in question bank shipped in ``bots/games/data`` (written for this project).

Used whenever the model's question fails the checks, so every game is playable with the demo
model too. Every entry passes the same checks as a generated question (tests prove it).
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from airoboros_bot.bots.games.matching import normalize
from airoboros_bot.bots.games.models import Question, QuestionKind


def anagram_text(word: str, clue: str) -> str:
    """The riddle in the airoboros form: ``This anagram of "silent" is <clue>.``"""
    return f'This anagram of "{word}" is {clue.rstrip(".")}.'


def words_text(prefix: str, target: int) -> str:
    """The list-game question: ``Give me 7 words that start with EN.``"""
    return f"Give me {target} words that start with {prefix.upper()}."


def _trivia(item: dict[str, Any]) -> Question:
    options = tuple(item.get("options", ()))
    return Question(
        kind=QuestionKind.CHOICE if options else QuestionKind.SHORT,
        text=item["question"],
        answer=item["answer"],
        options=options,
        aliases=tuple(item.get("aliases", ())),
        topic=item.get("topic", ""),
    )


def _anagram(item: dict[str, Any]) -> Question:
    return Question(
        kind=QuestionKind.ANAGRAM,
        text=anagram_text(item["word"], item["clue"]),
        answer=item["answer"],
        word=item["word"],
        topic="words",
    )


@dataclass(frozen=True)
class QuestionBank:
    """Questions by kind, and the prefixes of the word-list game."""

    questions: tuple[Question, ...]
    prefixes: tuple[str, ...]

    @classmethod
    def from_items(
        cls,
        trivia: Sequence[dict[str, Any]],
        anagrams: Sequence[dict[str, Any]],
        prefixes: Sequence[str],
    ) -> QuestionBank:
        """Build a bank from decoded JSON items (see the files in ``data/``)."""
        questions = [_trivia(i) for i in trivia] + [_anagram(i) for i in anagrams]
        return cls(tuple(questions), tuple(p.lower() for p in prefixes))

    def of_kind(self, kinds: Collection[QuestionKind], topic: str = "") -> list[Question]:
        """Questions of these kinds; about ``topic`` when the bank has any, else all of them."""
        pool = [q for q in self.questions if q.kind in kinds]
        wanted = normalize(topic)
        if wanted:
            about = [
                q
                for q in pool
                if wanted in (normalize(q.topic), normalize(q.topic).rstrip("s"))
                or f" {wanted} " in f" {normalize(q.text)} "
            ]
            if about:
                return about
        return pool

    def has_topic(self, topic: str) -> bool:
        """Whether some trivia question is about ``topic``."""
        kinds = (QuestionKind.CHOICE, QuestionKind.SHORT)
        return len(self.of_kind(kinds, topic)) < len(self.of_kind(kinds))

    def pick(
        self,
        kinds: Collection[QuestionKind],
        rng: random.Random,
        *,
        topic: str = "",
        asked: Collection[str] = (),
    ) -> Question:
        """A random question of these kinds not asked yet (repeats only when all were asked)."""
        pool = self.of_kind(kinds, topic)
        if not pool:
            raise LookupError(f"the bank has no {'/'.join(sorted(kinds))} questions")
        fresh = [q for q in pool if q.id not in asked]
        return rng.choice(fresh or pool)

    def pick_prefix(self, rng: random.Random, asked: Collection[str] = ()) -> str:
        """A random word-list prefix not used yet in this game."""
        fresh = [p for p in self.prefixes if p not in asked]
        return rng.choice(fresh or list(self.prefixes))


def _load(name: str) -> list[Any]:
    text = (
        resources.files("airoboros_bot.bots.games")
        .joinpath(f"data/{name}")
        .read_text(encoding="utf-8")
    )
    return list(json.loads(text)["items"])


@functools.cache
def default_bank() -> QuestionBank:
    """The bank shipped with the project (loaded once)."""
    return QuestionBank.from_items(
        _load("trivia.json"), _load("anagrams.json"), _load("prefixes.json")
    )
