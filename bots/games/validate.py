"""Checks done by code before a question is used: the model is not trusted with them.

Multiple choice: 4 or 5 distinct options and the key among them. Short answer: a short answer
that the question does not give away. Anagram: both words real, exactly the same letters, not
the same word. Word list: a prefix with enough common words. `check_word` scores list-game words.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

from airoboros_bot.bots.games.matching import normalize, word_of
from airoboros_bot.bots.games.models import Question, QuestionKind
from airoboros_bot.bots.games.words import WordList

MAX_QUESTION_CHARS = 300
MAX_OPTION_CHARS = 80
MAX_ANSWER_WORDS = 4
MAX_ANSWER_CHARS = 40
COMMON_TOP = 20_000  # "common" words: the most frequent ones of the list


class InvalidQuestion(ValueError):
    """A question failed a check; the message says which."""


def is_anagram(first: str, second: str) -> bool:
    """Whether two words use exactly the same letters and are not the same word."""
    a, b = word_of(first), word_of(second)
    return bool(a and b) and a != b and Counter(a) == Counter(b)


def _check_text(question: Question) -> None:
    text = question.text.strip()
    if not text:
        raise InvalidQuestion("the question is empty")
    if len(text) > MAX_QUESTION_CHARS:
        raise InvalidQuestion(f"the question is longer than {MAX_QUESTION_CHARS} characters")


def _check_choice(question: Question) -> None:
    options = question.options
    if not 4 <= len(options) <= 5:
        raise InvalidQuestion(f"{len(options)} options instead of 4 or 5")
    if any(not o.strip() or len(o) > MAX_OPTION_CHARS for o in options):
        raise InvalidQuestion("an option is empty or too long")
    if len({normalize(o) for o in options}) != len(options):
        raise InvalidQuestion("two options are the same")
    if question.answer not in options:
        raise InvalidQuestion("the key is not one of the options")


def _check_short(question: Question) -> None:
    answer = normalize(question.answer)
    if not answer:
        raise InvalidQuestion("the answer is empty")
    if len(answer.split()) > MAX_ANSWER_WORDS or len(question.answer) > MAX_ANSWER_CHARS:
        raise InvalidQuestion("the answer is too long for a short-answer question")
    if f" {answer} " in f" {normalize(question.text)} ":
        raise InvalidQuestion("the question gives the answer away")


def _check_anagram(question: Question, words: WordList) -> None:
    source, answer = word_of(question.word), word_of(question.answer)
    if not source or not answer:
        raise InvalidQuestion("an anagram needs two single words")
    if source not in words or answer not in words:
        raise InvalidQuestion("an anagram word is not in the word list")
    if not is_anagram(source, answer):
        raise InvalidQuestion(f'"{answer}" does not use exactly the letters of "{source}"')
    if f" {answer} " in f" {normalize(question.text)} ":
        raise InvalidQuestion("the riddle gives the answer away")


def check_prefix(prefix: str, target: int, words: WordList) -> None:
    """A word-list prefix must be 1-4 letters with at least 3x ``target`` common words."""
    if not (prefix.isascii() and prefix.isalpha() and 1 <= len(prefix) <= 4):
        raise InvalidQuestion("a prefix is one to four letters a-z")
    found = len(words.starting_with(prefix.lower(), top=COMMON_TOP))
    if found < 3 * target:
        raise InvalidQuestion(
            f'too few common words start with "{prefix.upper()}" ({found}) for {target}'
        )


def validate(question: Question, words: WordList, asked: Collection[str] = ()) -> Question:
    """Return ``question`` when it passes every check of its kind; else `InvalidQuestion`."""
    if question.id in asked:
        raise InvalidQuestion("the question was already asked in this game")
    _check_text(question)
    if question.kind is QuestionKind.CHOICE:
        _check_choice(question)
    elif question.kind is QuestionKind.SHORT:
        _check_short(question)
    elif question.kind is QuestionKind.ANAGRAM:
        _check_anagram(question, words)
    else:
        check_prefix(question.prefix, question.target, words)
    return question


def check_word(text: str, prefix: str, words: WordList) -> tuple[str, str]:
    """A list-game submission: ``(word, "")`` when it scores, else ``(word, reason)``."""
    word = word_of(text)
    if not word:
        return normalize(text), f'"{text.strip()[:40]}" is not a single word'
    if not word.startswith(prefix.lower()) or len(word) <= len(prefix):
        return word, f'"{word}" does not start with {prefix.upper()}'
    if word not in words:
        return word, f'"{word}" is not in the word list'
    return word, ""
