"""Splitting answers to platform limits and the cadence of streamed edits."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airoboros_bot.bots.core.render import (
    WRITING_MARKER,
    AnswerView,
    EditBudget,
    split_message,
    stream_answer,
)
from airoboros_bot.bots.core.service import Answer, AnswerEvent, Delta, Restart, Submitted
from airoboros_bot.conversations.models import ContextBlock
from airoboros_bot.engine.client import Queued


def test_short_text_is_one_page() -> None:
    assert split_message("hello world", 2000) == ["hello world"]


def test_pages_break_between_words() -> None:
    text = " ".join(f"word{i}" for i in range(1000))
    pages = split_message(text, 200)
    assert all(len(p) <= 200 for p in pages)
    words = " ".join(pages).split()
    assert words == text.split(), "no word is cut or lost"


def test_code_blocks_are_closed_and_reopened() -> None:
    code = "\n".join(f"print({i})" for i in range(200))
    text = f"Here:\n```python\n{code}\n```\nDone."
    pages = split_message(text, 300)
    assert len(pages) > 2
    for page in pages:
        assert len(page) <= 300
        assert len(re.findall(r"^```", page, re.MULTILINE)) % 2 == 0, page
    assert all(p.startswith("```python\n") for p in pages[1:-1])
    joined = "\n".join(pages)
    assert all(f"print({i})" in joined for i in range(200))


@given(st.text(alphabet=st.sampled_from("ab cd\n`é"), max_size=3000), st.integers(40, 500))
def test_pages_never_exceed_the_limit(text: str, limit: int) -> None:
    pages = split_message(text, limit)
    assert all(len(p) <= limit for p in pages)
    if "`" not in text:
        assert "".join(pages).replace(" ", "").replace("\n", "") == text.replace(" ", "").replace(
            "\n", ""
        )


class RecordingSink:
    def __init__(self) -> None:
        self.calls: list[tuple[float, int, str, bool]] = []
        self.now = 0.0

    async def update(self, index: int, content: str, *, final: bool) -> None:
        self.calls.append((self.now, index, content, final))


async def _events(sink: RecordingSink, items: list[tuple[float, AnswerEvent]]) -> AsyncIterator:
    for at, event in items:
        sink.now = at
        yield event


async def test_edits_are_throttled_and_the_final_state_is_sent() -> None:
    sink = RecordingSink()
    items: list[tuple[float, AnswerEvent]] = [(0.0, Submitted("j", 10, 0, ()))]
    items += [(0.1 * i, Delta(f"w{i} ")) for i in range(1, 40)]  # 4 s of tokens
    items.append((4.0, Answer("w1 w2", "eos", 39, 10, ())))
    await stream_answer(_events(sink, items), sink, AnswerView(2000), clock=lambda: sink.now)
    times = [t for t, *_ in sink.calls]
    assert all(b - a >= 1.0 - 1e-9 for a, b in itertools.pairwise(times[:-1]))
    assert len(sink.calls) <= 6
    assert sink.calls[-1][2:] == ("w1 w2", True)
    assert all(c[2].endswith(WRITING_MARKER) for c in sink.calls[:-1])


async def test_long_answers_continue_in_follow_ups_and_sources_are_shown() -> None:
    sink = RecordingSink()
    long = "word " * 900
    block = ContextBlock("doc", {"url": "https://x/1", "file": "a.md"})
    items = [(0.0, Queued(2)), (1.0, Delta(long)), (2.0, Restart()), (3.0, Delta(long))]
    items.append((4.0, Answer(long.strip(), "eos", 900, 10, (block,))))
    await stream_answer(_events(sink, items), sink, AnswerView(2000), clock=lambda: sink.now)
    assert "Queued, 2 ahead" in sink.calls[0][2]
    final = {index: content for _, index, content, _ in sink.calls}
    assert len(final) == 3
    assert all(len(c) <= 2000 for c in final.values())
    assert final[2].endswith("Sources:\n[1] a.md <https://x/1>")
    assert " ".join(final[i] for i in range(3)).count("word") == 900


def test_view_notes_what_was_left_out() -> None:
    view = AnswerView(2000)
    view.apply(Submitted("j", 10, 3, (ContextBlock("t", {"file": "big.txt"}),)))
    view.apply(Answer("ok", "cancelled", 1, 10, ()))
    body = view.body()
    assert "big.txt" in body and "3 oldest turns" in body and "(stopped)" in body


async def test_edit_budget_refuses_when_empty_and_refills() -> None:
    budget = EditBudget(per_minute=600, burst=2)
    assert await budget.try_take() and await budget.try_take()
    assert not await budget.try_take()
    await budget.take()  # waits about 0.1 s for a refill


async def test_a_paused_edit_budget_gives_nothing_until_the_pause_ends() -> None:
    budget = EditBudget(per_minute=6000, burst=5)
    await budget.pause(0.3)
    assert not await budget.try_take()
    started = time.monotonic()
    await budget.take()
    assert 0.25 <= time.monotonic() - started < 1.0


@pytest.mark.parametrize("limit", [5, 19])
def test_tiny_limits_are_refused(limit: int) -> None:
    with pytest.raises(ValueError):
        split_message("x", limit)


# -- pages that never shrink -------------------------------------------------------------------
def _without_marker(page: str) -> str:
    return page.removesuffix(WRITING_MARKER)


def _stream_pages(pieces: list[str], limit: int, final: Answer | None = None) -> list[list[str]]:
    """The pages of a view after each piece of text (and after ``final``)."""
    view = AnswerView(limit)
    rounds = []
    for piece in pieces:
        view.apply(Delta(piece))
        rounds.append(view.pages())
    if final is not None:
        view.apply(final)
        rounds.append(view.pages())
    return rounds


def _assert_pages_only_grow(rounds: list[list[str]], limit: int) -> None:
    for before, after in itertools.pairwise(rounds):
        assert len(after) >= len(before), "no page disappears"
        for index, page in enumerate(before):
            shown = _without_marker(page)
            assert _without_marker(after[index]).startswith(shown.removesuffix("\n```")), (
                f"page {index} shrank"
            )
            if index < len(before) - 1:
                assert after[index] == page, f"full page {index} changed"
        assert all(len(p) <= limit for p in after)


_WORDS = st.text(alphabet=st.sampled_from("abcdé"), min_size=1, max_size=30)
_SEPARATORS = st.sampled_from([" ", " ", " ", "\n", "\n\n", "\n```python\n", "\n```\n"])


@given(
    st.lists(st.tuples(_WORDS, _SEPARATORS), min_size=1, max_size=400),
    st.lists(st.integers(1, 300), min_size=1, max_size=50),
    st.integers(60, 600),
)
def test_streamed_pages_only_grow_and_lose_nothing(
    words: list[tuple[str, str]], sizes: list[int], limit: int
) -> None:
    text = "".join(word + separator for word, separator in words)
    text += "\n```" if text.count("```") % 2 else ""
    pieces, at = [], 0
    for size in itertools.cycle(sizes):
        if at >= len(text):
            break
        pieces.append(text[at : at + size])
        at += size
    rounds = _stream_pages(pieces, limit, Answer(text, "eos", 1, 1, ()))
    _assert_pages_only_grow(rounds, limit)
    final = rounds[-1]
    assert [w for w in " ".join(final).split() if not w.startswith("```")] == [
        w for w in text.split() if not w.startswith("```")
    ]
    for page in final:
        assert len(re.findall(r"^\s*```", page, re.MULTILINE)) % 2 == 0, "code blocks closed"


def test_a_full_page_keeps_what_it_showed_when_a_paragraph_break_is_earlier() -> None:
    # The answer of the issue: page 1 showed 1,895 characters, then (re-split whole) 1,268.
    first = "word " * 253  # 1,265 characters, then a paragraph break
    second = "more " * 126  # page 1 then shows about 1,900 characters
    text = first.strip() + "\n\n" + second + "rest " * 400
    pieces = [text[i : i + 50] for i in range(0, len(text), 50)]
    rounds = _stream_pages(pieces, 2000, Answer(text.strip(), "eos", 1, 1, ()))
    shown = max(len(r[0]) for r in rounds if len(r) == 1)
    assert shown > 1890
    assert split_message(text, 2000)[0] == first.strip(), "a fresh split cuts at the break"
    assert len(rounds[-1][0]) >= shown - len(WRITING_MARKER), "the page did not shrink"
    _assert_pages_only_grow(rounds, 2000)


class RemovingSink(RecordingSink):
    def __init__(self) -> None:
        super().__init__()
        self.pages: list[str] = []
        self.removed: list[int] = []

    async def update(self, index: int, content: str, *, final: bool) -> None:
        await super().update(index, content, final=final)
        if index == len(self.pages):
            self.pages.append(content)
        self.pages[index] = content

    async def remove(self, index: int) -> None:
        assert index == len(self.pages) - 1, "the last page goes first"
        self.pages.pop()
        self.removed.append(index)


async def test_pages_a_restarted_answer_no_longer_has_are_removed() -> None:
    sink = RemovingSink()
    long = "word " * 900
    items: list[tuple[float, AnswerEvent]] = [(0.0, Delta(long)), (1.0, Restart())]
    items += [(2.0, Delta("Short now.")), (3.0, Answer("Short now.", "eos", 3, 10, ()))]
    await stream_answer(_events(sink, items), sink, AnswerView(2000), clock=lambda: sink.now)
    assert sink.removed == [2, 1]
    assert sink.pages == ["Short now."]
