"""Asking the model for questions in the airoboros style, parsing its answers, and falling back
to the built-in bank when they fail the checks.

The model writes multiple choice as ``A) ...`` option lines and the key as ``[C, Pluto]``, short
answers as ``Answer: ...`` and anagram riddles as ``This anagram of "silent" is ...``. Nothing it
says is trusted: `validate` checks every question before it is used.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from airoboros_bot.bots.games.bank import QuestionBank, words_text
from airoboros_bot.bots.games.matching import normalize, word_of
from airoboros_bot.bots.games.models import LETTERS, GameKind, Question, QuestionKind
from airoboros_bot.bots.games.validate import InvalidQuestion, check_prefix, validate
from airoboros_bot.bots.games.words import WordList
from airoboros_bot.config.errors import AiroborosError
from airoboros_bot.config.settings import GameSettings

log = logging.getLogger(__name__)


class QuestionModel(Protocol):
    """Anything that answers one instruction (`ChatService.complete` does)."""

    async def complete(
        self, instruction: str, *, max_new_tokens: int = 256, temperature: float = 0.7
    ) -> str:
        """The model's whole answer to ``instruction``."""
        ...


def choice_prompt(topic: str) -> str:
    """The instruction for one multiple-choice question."""
    return (
        f"Write one multiple-choice trivia question about {topic or 'general knowledge'}, with "
        "four options of which exactly one is correct. Use exactly this format:\n"
        "Question: <the question>\nA) <option>\nB) <option>\nC) <option>\nD) <option>\n"
        "Answer: [<letter>, <the correct option>]"
    )


def short_prompt(topic: str) -> str:
    """The instruction for one short-answer question."""
    return (
        f"Write one trivia question about {topic or 'general knowledge'} whose answer is one "
        "to three words. Use exactly this format:\nQuestion: <the question>\nAnswer: <the answer>"
    )


def anagram_prompt() -> str:
    """The instruction for one anagram riddle."""
    return (
        "Write an anagram riddle: pick an English word and another English word made of exactly "
        "the same letters, and describe the second word without naming it. Use exactly this "
        'format:\nRiddle: This anagram of "<first word>" is <a description of the second '
        "word>.\nAnswer: <the second word>"
    )


def _clean(line: str) -> str:
    return " ".join(line.replace("*", "").split()).strip()


_QUESTION = re.compile(r"(?im)^\s*(?:question|q)\s*[:.)-]\s*(.+)$")
_OPTION = re.compile(r"(?m)^\s*\(?([A-Ea-e])\s*[).:\]-]\s*(.+?)\s*$")
_KEY = re.compile(r"\[\s*([A-Ea-e])\s*,\s*([^\]\n]+?)\s*\]")
_ANSWER_LINE = re.compile(r"(?im)^\s*(?:correct\s+)?answer\s*[:.)-]\s*(.+)$")
_RIDDLE = re.compile(r"""(?is)(this\s+anagram\s+of\s+["“'‘]?([A-Za-z]+)["”'’]?\s+.+?)(?:\n|$)""")


def _question_line(text: str) -> str:
    found = _QUESTION.search(text)
    if found:
        return _clean(found.group(1))
    for line in text.splitlines():
        if line.strip().endswith("?"):
            return _clean(line)
    raise InvalidQuestion("no question found in the model's answer")


def parse_choice(text: str, topic: str = "") -> Question:
    """A multiple-choice question from the model's text (the key as ``[C, Pluto]``)."""
    question = _question_line(text)
    options: list[str] = []
    for letter, option in _OPTION.findall(text):
        if LETTERS.index(letter.upper()) == len(options):
            options.append(_clean(option))
    key = _KEY.search(text)
    if key:
        letter, said = key.group(1).upper(), _clean(key.group(2))
    else:
        line = _ANSWER_LINE.search(text)
        found = re.match(r"\s*\(?([A-Ea-e])\b", line.group(1)) if line else None
        if not found:
            raise InvalidQuestion("no answer key like [C, Pluto] in the model's answer")
        letter, said = found.group(1).upper(), ""
    index = LETTERS.index(letter)
    if index >= len(options):
        raise InvalidQuestion(f"the key {letter} is not one of the options")
    if said and normalize(said) != normalize(options[index]):
        raise InvalidQuestion(f"the key [{letter}, {said}] does not match option {letter}")
    return Question(
        QuestionKind.CHOICE, question, options[index], tuple(options), topic=topic, source="model"
    )


def parse_short(text: str, topic: str = "") -> Question:
    """A short-answer question from the model's text (``Question:`` and ``Answer:`` lines)."""
    question = _question_line(text)
    line = _ANSWER_LINE.search(text)
    if not line:
        raise InvalidQuestion("no 'Answer:' line in the model's answer")
    answer = _clean(line.group(1)).rstrip(".")
    return Question(QuestionKind.SHORT, question, answer, topic=topic, source="model")


def parse_anagram(text: str) -> Question:
    """An anagram riddle from the model's text."""
    riddle = _RIDDLE.search(text)
    line = _ANSWER_LINE.search(text)
    if not riddle or not line:
        raise InvalidQuestion("no 'This anagram of \"...\" is ...' riddle with an answer")
    answer = word_of(_clean(line.group(1)).rstrip("."))
    sentence = _clean(riddle.group(1))
    return Question(
        QuestionKind.ANAGRAM,
        sentence if sentence[-1] in ".?!" else sentence + ".",
        answer,
        word=riddle.group(2).lower(),
        topic="words",
        source="model",
    )


@dataclass(frozen=True)
class Made:
    """A question ready to ask, and a note for players when the bank stood in for the model."""

    question: Question
    note: str = ""


class QuestionMaker:
    """Makes each question: the model first (checked, retried), then the bank."""

    def __init__(
        self,
        model: QuestionModel | None,
        bank: QuestionBank,
        words: WordList,
        settings: GameSettings,
        rng: random.Random,
    ) -> None:
        self.model = model
        self.bank = bank
        self.words = words
        self.settings = settings
        self.rng = rng

    async def make(
        self, game: GameKind, *, topic: str = "", prefix: str = "", asked: Collection[str] = ()
    ) -> Made:
        """The next question of a game; ``asked`` holds the ids already used in it."""
        if game is GameKind.WORDS:
            return Made(self._words_question(prefix, asked))
        if game is GameKind.ANAGRAM:
            kind = QuestionKind.ANAGRAM
        elif self.rng.random() < self.settings.multiple_choice_share:
            kind = QuestionKind.CHOICE
        else:
            kind = QuestionKind.SHORT
        reasons: list[str] = []
        if self.model is not None and self.settings.use_model:
            for _ in range(self.settings.generation_attempts):
                try:
                    return Made(await self._from_model(kind, topic, asked))
                except InvalidQuestion as exc:
                    reasons.append(str(exc))
                    log.info("rejected a generated %s question: %s", kind, exc)
                except AiroborosError as exc:
                    reasons.append(exc.user_message)
                    log.warning("the model could not write a question: %s", exc.user_message)
                    break
                except TimeoutError:
                    reasons.append("the model took too long")
                    break
        question = self.bank.pick([kind], self.rng, topic=topic, asked=asked)
        note = ""
        if reasons:
            note = (
                f"The model's question did not pass the checks ({reasons[-1]}): "
                "using one from the built-in bank."
            )
        return Made(question, note)

    async def _from_model(self, kind: QuestionKind, topic: str, asked: Collection[str]) -> Question:
        assert self.model is not None
        if kind is QuestionKind.CHOICE:
            prompt = choice_prompt(topic)
        elif kind is QuestionKind.SHORT:
            prompt = short_prompt(topic)
        else:
            prompt = anagram_prompt()
        text = await asyncio.wait_for(
            self.model.complete(
                prompt,
                max_new_tokens=self.settings.generation_max_new_tokens,
                temperature=self.settings.generation_temperature,
            ),
            self.settings.generation_timeout_s,
        )
        if kind is QuestionKind.CHOICE:
            question = parse_choice(text, topic)
        elif kind is QuestionKind.SHORT:
            question = parse_short(text, topic)
        else:
            question = parse_anagram(text)
        return validate(question, self.words, asked)

    def _words_question(self, prefix: str, asked: Collection[str]) -> Question:
        target = self.settings.words_target
        if prefix:
            check_prefix(prefix, target, self.words)
        else:
            used = {a.removeprefix("words:") for a in asked if a.startswith("words:")}
            prefix = self.bank.pick_prefix(self.rng, used)
        prefix = prefix.lower()
        return Question(
            QuestionKind.WORDS,
            words_text(prefix, target),
            prefix=prefix,
            target=target,
            topic="words",
            id=f"words:{prefix}",
        )
