"""Parsing the model's questions, the checks done by code, and the shipped bank and word list."""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources

import pytest

from airoboros_bot.bots.games.bank import default_bank
from airoboros_bot.bots.games.generate import parse_anagram, parse_choice, parse_short
from airoboros_bot.bots.games.models import Question, QuestionKind
from airoboros_bot.bots.games.validate import (
    InvalidQuestion,
    check_prefix,
    check_word,
    is_anagram,
    validate,
)
from airoboros_bot.bots.games.words import WordList, default_words
from tests.bots.games.conftest import CHOICE

WORDS = default_words()


def test_parse_choice_in_the_airoboros_form() -> None:
    q = validate(parse_choice(CHOICE, "space"), WORDS)
    assert q.kind is QuestionKind.CHOICE and q.source == "model"
    assert q.text == "Which planet is closest to the Sun?"
    assert q.options == ("Venus", "Mercury", "Mars", "Earth")
    assert q.answer == "Mercury" and q.key == "B" and q.shown_answer == "B) Mercury"


def test_parse_choice_accepts_other_option_styles_and_a_bare_key() -> None:
    text = "What is 2+2?\n(a) 3\n(b) 4\n(c) 5\n(d) 22\n(e) 8\nCorrect answer: b"
    q = validate(parse_choice(text), WORDS)
    assert q.options == ("3", "4", "5", "22", "8") and q.answer == "4"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (CHOICE.replace("[B, Mercury]", "[B, Venus]"), "does not match option B"),
        (CHOICE.replace("[B, Mercury]", "[E, Pluto]"), "not one of the options"),
        (CHOICE.replace("Answer: [B, Mercury]", ""), "no answer key"),
        ("Mercury is the closest planet.", "no question"),
        ("Question: Which?\nA) x\nB) y\nAnswer: [A, x]", "2 options"),
        (CHOICE.replace("C) Mars", "C) venus"), "two options are the same"),
    ],
)
def test_bad_choice_questions_are_rejected(text: str, reason: str) -> None:
    with pytest.raises(InvalidQuestion, match=reason):
        validate(parse_choice(text), WORDS)


def test_parse_short() -> None:
    q = validate(parse_short("Question: What is the capital of Kenya?\nAnswer: Nairobi."), WORDS)
    assert (q.text, q.answer, q.kind) == ("What is the capital of Kenya?", "Nairobi", "short")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Question: What is the capital of Kenya?", "no 'Answer:'"),
        ("Question: Who wrote Hamlet?\nAnswer: Hamlet", "gives the answer away"),
        (
            "Question: Who?\nAnswer: a very long answer that is a whole sentence really",
            "too long",
        ),
        ("Question: ?\nAnswer: !!!", "empty"),
    ],
)
def test_bad_short_questions_are_rejected(text: str, reason: str) -> None:
    with pytest.raises(InvalidQuestion, match=reason):
        validate(parse_short(text), WORDS)


def test_parse_anagram_and_check_the_letters_by_code() -> None:
    good = 'Riddle: This anagram of "silent" is what you do when someone talks.\nAnswer: listen'
    q = validate(parse_anagram(good), WORDS)
    assert (q.word, q.answer) == ("silent", "listen")
    assert q.text == 'This anagram of "silent" is what you do when someone talks.'
    for bad, reason in [
        (good.replace("Answer: listen", "Answer: listens"), "exactly the letters"),
        (good.replace("Answer: listen", "Answer: silent"), "exactly the letters"),
        (good.replace("silent", "tlisen"), "not in the word list"),
        ("This is a riddle.\nAnswer: listen", "riddle"),
        ('This anagram of "silent" is listen.\nAnswer: listen', "gives the answer away"),
    ]:
        with pytest.raises(InvalidQuestion, match=reason):
            validate(parse_anagram(bad), WORDS)


def test_is_anagram() -> None:
    assert is_anagram("silent", "listen")
    assert is_anagram("Dusty", "study")
    assert not is_anagram("silent", "silent")
    assert not is_anagram("silent", "listens")
    assert not is_anagram("air", "chair")


def test_a_repeated_question_is_rejected() -> None:
    q = parse_short("Question: What is the capital of Kenya?\nAnswer: Nairobi")
    with pytest.raises(InvalidQuestion, match="already asked"):
        validate(q, WORDS, asked={q.id})


def test_list_game_words_are_checked_by_code() -> None:
    assert check_word("Enjoy", "en", WORDS) == ("enjoy", "")
    assert check_word("energy!", "EN", WORDS) == ("energy", "")
    assert check_word("apple", "en", WORDS)[1] == '"apple" does not start with EN'
    assert check_word("en", "en", WORDS)[1] == '"en" does not start with EN'
    assert check_word("enxqzt", "en", WORDS)[1] == '"enxqzt" is not in the word list'
    assert "not a single word" in check_word("end game", "en", WORDS)[1]


def test_prefixes_need_enough_common_words() -> None:
    check_prefix("en", 7, WORDS)
    with pytest.raises(InvalidQuestion, match="too few"):
        check_prefix("xq", 7, WORDS)
    with pytest.raises(InvalidQuestion, match="one to four letters"):
        check_prefix("e1", 7, WORDS)


def test_every_bank_question_passes_the_checks() -> None:
    bank = default_bank()
    kinds = Counter(q.kind for q in bank.questions)
    assert kinds[QuestionKind.CHOICE] >= 100 and kinds[QuestionKind.SHORT] >= 100
    assert kinds[QuestionKind.ANAGRAM] >= 50
    assert len({q.id for q in bank.questions}) == len(bank.questions), "duplicate questions"
    assert len({q.topic for q in bank.questions}) >= 10, "varied topics"
    for question in bank.questions:
        validate(question, WORDS)
    for prefix in bank.prefixes:
        check_prefix(prefix, 7, WORDS)


def test_bank_picks_by_topic_and_avoids_repeats() -> None:
    import random

    bank = default_bank()
    rng = random.Random(3)
    science = bank.of_kind([QuestionKind.SHORT, QuestionKind.CHOICE], "Science")
    assert science and all(q.topic == "science" for q in science)
    assert bank.has_topic("animals") and not bank.has_topic("quantum chromodynamics")
    asked: set[str] = set()
    for _ in range(len(science)):
        q = bank.pick([QuestionKind.SHORT, QuestionKind.CHOICE], rng, topic="science", asked=asked)
        assert q.id not in asked
        asked.add(q.id)


def test_word_list_is_shipped_with_its_licence() -> None:
    assert len(WORDS) > 50_000
    for word in ("listen", "silent", "enjoy", "entered", "email", "chair"):
        assert word in WORDS
    assert "qzxv" not in WORDS
    assert "january" not in WORDS and "texas" not in WORDS  # proper nouns left out
    assert WORDS.rank("the") == 0 and WORDS.is_common("house")
    data = resources.files("airoboros_bot.bots.games").joinpath("data")
    licences = data.joinpath("LICENSES.md").read_text(encoding="utf-8")
    for name in ("words.txt", "trivia.json", "anagrams.json", "prefixes.json"):
        assert name in licences
        assert data.joinpath(name).is_file()
    assert json.loads(data.joinpath("trivia.json").read_text(encoding="utf-8"))["items"]


def test_word_list_prefix_search() -> None:
    words = WordList(["the", "enter", "end", "en", "energy", "apple", "Entry", "x1"])
    assert len(words) == 7  # "x1" is not a word; "Entry" is lowercased
    assert words.starting_with("en") == ["enter", "end", "energy", "entry"]
    assert words.starting_with("en", top=3) == ["enter", "end"]
    assert Question(QuestionKind.WORDS, "Give me 7 words that start with EN.").id
