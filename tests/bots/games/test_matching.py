"""Answer matching rules, as a table of cases."""

from __future__ import annotations

import pytest

from airoboros_bot.bots.games.matching import (
    choice_index,
    edit_distance,
    letters_to_reveal,
    mask,
    matches,
    normalize,
    word_of,
)

CASES = [
    # (guess, answer, accepted, why)
    ("Pluto", "Pluto", True, "same"),
    ("pLuTo", "Pluto", True, "case"),
    ("pluto!", "Pluto", True, "punctuation"),
    ("  Pluto.  ", "Pluto", True, "spaces and a full stop"),
    ("air", "chair", False, "a word inside another word"),
    ("chair", "air", False, "the other way round"),
    ("the air", "chair", False, "article does not help"),
    ("hair", "air", False, "short answers get no typo"),
    ("Tom & Jerry", "Tom and Jerry", True, "& is and"),
    ("tom and jerry", "Tom & Jerry", True, "and is &"),
    ("Beatles", "The Beatles", True, "leading article in the answer"),
    ("the Beatles", "Beatles", True, "leading article in the guess"),
    ("a Beatles", "The Beatles", True, "another article"),
    ("Beatles The", "The Beatles", False, "words in another order"),
    ("Vitamin", "Vitamin A", False, "a trailing A is no article"),
    ("Jupitr", "Jupiter", True, "one typo in a 7-letter answer"),
    ("Jupietr", "Jupiter", True, "swapped letters count as one typo"),
    ("Jpitr", "Jupiter", False, "two typos in a 7-letter answer"),
    ("Mediteranean Sea", "Mediterranean Sea", True, "typo in a long answer"),
    ("Mediteranean See", "Mediterranean Sea", True, "two typos in a 16-letter answer"),
    ("Iraq", "Iran", False, "no typo in a short answer"),
    ("Austria", "Australia", False, "two edits away"),
    ("Brasilia", "Brasília", True, "accents do not matter"),
    ("Hadrians Wall", "Hadrian's Wall", True, "apostrophe"),
    ("1946", "1945", False, "numbers must be exact"),
    ("4", "Four", True, "number words equal digits"),
    ("eighteen", "18", True, "number words equal digits the other way"),
    ("Washington DC", "Washington, D.C.", True, "dots and commas"),
    ("Moby Dick", "Moby-Dick", True, "hyphen"),
    ("it's Pluto", "Pluto", False, "an answer inside a sentence is not the answer"),
    ("", "Pluto", False, "empty"),
    ("!!!", "Pluto", False, "only punctuation"),
]


@pytest.mark.parametrize(("guess", "answer", "accepted", "why"), CASES, ids=[c[3] for c in CASES])
def test_answer_matching(guess: str, answer: str, accepted: bool, why: str) -> None:
    assert matches(guess, [answer]) is accepted, why


def test_aliases_count_as_answers() -> None:
    assert matches("thighbone", ["Femur", "thigh bone", "thighbone"])
    assert not matches("shin", ["Femur", "thigh bone"])


def test_normalize() -> None:
    assert normalize("The Tom & Jerry Show!") == "tom and jerry show"
    assert normalize("  Café  ") == "cafe"
    assert normalize("the") == "the"  # a lone article stays


def test_edit_distance_stops_at_the_limit() -> None:
    assert edit_distance("kitten", "sitting", 5) == 3
    assert edit_distance("kitten", "sitting", 1) == 2
    assert edit_distance("abcd", "abdc", 1) == 1


OPTIONS = ["Venus", "Mercury", "Pluto", "Earth"]
CHOICES = [
    ("c", 2),
    ("C", 2),
    ("C)", 2),
    ("(c)", 2),
    ("[C]", 2),
    ("c.", 2),
    ("[C, Pluto]", 2),
    ("[c, something else]", 2),  # the letter decides
    ("C) Pluto", 2),
    ("pluto", 2),
    ("Mercur", None),  # 7 letters: one typo allowed -> Mercury
    ("E", None),  # no fifth option
    ("Mars", None),
    ("I think it is C", None),
]


@pytest.mark.parametrize(("guess", "index"), CHOICES)
def test_choice_index(guess: str, index: int | None) -> None:
    expected = 1 if guess == "Mercur" else index
    assert choice_index(guess, OPTIONS) == expected


def test_word_of() -> None:
    assert word_of(" Enjoy! ") == "enjoy"
    assert word_of("two words") == ""
    assert word_of("one") == "one"  # no number words here
    assert word_of("café") == "cafe"
    assert word_of("r2d2") == ""


def test_mask_reveals_letters_in_a_fixed_order() -> None:
    assert mask("listen", 0, "q1") == "_ _ _ _ _ _"
    first = mask("listen", 1, "q1")
    assert first == "l _ _ _ _ _"
    two, three = mask("listen", 2, "q1"), mask("listen", 3, "q1")
    assert sum(c != "_" for c in two.replace(" ", "")) == 2
    # Letters shown once stay shown; same seed, same hint.
    assert all(a == "_" or a == b for a, b in zip(two, three, strict=True))
    assert mask("listen", 3, "q1") == three
    assert mask("New York", 2, "q2").count("   ") == 1
    for shown, letter in zip(three.split(" "), "listen", strict=True):
        assert shown in ("_", letter)


def test_hints_never_reveal_the_whole_answer() -> None:
    assert letters_to_reveal("listen", 1, 2) == 2
    assert letters_to_reveal("listen", 2, 2) == 3
    assert letters_to_reveal("air", 2, 2) == 2
    assert letters_to_reveal("L", 1, 2) == 0
