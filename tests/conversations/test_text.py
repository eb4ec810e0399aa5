"""Any text a user can send becomes text that can be stored, counted and prompted with."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from airoboros_bot.conversations.text import clean_text


def test_lone_surrogates_become_replacement_characters() -> None:
    assert clean_text("hello \udcff world") == "hello \ufffd world"
    assert clean_text("\ud83d\ude00 joined") == "\U0001f600 joined"  # a pair in halves


def test_control_characters_go_and_line_breaks_stay() -> None:
    assert clean_text("a\x00b\x1b[31mred\x1b[0m\x7f") == "ab[31mred[0m"
    assert clean_text("one\r\ntwo\rthree\tfour\n") == "one\ntwo\nthree\tfour\n"


@given(st.text(alphabet=st.characters(codec=None, exclude_categories=())))
def test_the_result_always_encodes_and_holds_no_control_characters(text: str) -> None:
    cleaned = clean_text(text)
    cleaned.encode("utf-8")
    assert all(c in "\t\n" or not (ord(c) < 32 or 127 <= ord(c) < 160) for c in cleaned)
    assert clean_text(cleaned) == cleaned
