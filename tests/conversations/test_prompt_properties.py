"""Property tests: pasted text can never open or close a closed-context block."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from airoboros_bot.conversations.errors import PromptTooLong
from airoboros_bot.conversations.models import ContextBlock, Turn
from airoboros_bot.conversations.prompt import (
    _INVISIBLE,
    MARKERS,
    chat_prompt,
    closed_context,
    defuse,
    fit_prompt,
    metadata_lines,
    user_text,
)

LOWER_MARKERS = {m.lower() for m in MARKERS}
STRUCTURAL = {"BEGININPUT", "BEGINCONTEXT", "ENDCONTEXT", "ENDINPUT"}


def _ascii_lower_visible(text: str) -> str:
    return "".join(c.lower() if c.isascii() else c for c in text if c not in _INVISIBLE)


def looks_like_marker(line: str) -> bool:
    """A marker word (not inside a longer word), or a line that is only a split marker."""
    s = _ascii_lower_visible(line)
    joined = r"(?<![^\W\d_])(?:begin|end)(?:input|context|instruction)(?![^\W\d_])"
    split = r"\s*(?:begin|end)[\s_]+(?:input|context|instruction)\s*"
    return bool(re.search(joined, s) or re.fullmatch(split, s))


def may_hold_marker(text: str) -> bool:
    """Over-approximation: any marker letters once whitespace, ``_`` and invisibles are gone."""
    squashed = re.sub(r"[\s_]+", "", _ascii_lower_visible(text))
    return any(m in squashed for m in LOWER_MARKERS)


def parse(text: str) -> tuple[list[tuple[list[str], str]], str, set[int]]:
    """Parse a closed-context USER text: (blocks as (metadata lines, text), instruction, indices
    of the structural lines)."""
    lines = text.split("\n")
    structural: set[int] = set()
    blocks: list[tuple[list[str], str]] = []
    i = 0
    while lines[i] == "BEGININPUT":
        assert lines[i + 1] == "BEGINCONTEXT"
        structural |= {i, i + 1}
        i += 2
        meta: list[str] = []
        while lines[i] != "ENDCONTEXT":
            assert lines[i] not in STRUCTURAL
            meta.append(lines[i])
            i += 1
        structural.add(i)
        i += 1
        body: list[str] = []
        while lines[i] != "ENDINPUT":
            assert lines[i] not in MARKERS
            body.append(lines[i])
            i += 1
        structural.add(i)
        i += 1
        blocks.append((meta, "\n".join(body)))
    assert lines[i] == "BEGININSTRUCTION"
    assert lines[-1] == "ENDINSTRUCTION"
    assert len(lines) >= i + 3
    structural |= {i, len(lines) - 1}
    return blocks, "\n".join(lines[i + 1 : -1]), structural


def _random_case(word: str) -> st.SearchStrategy[str]:
    flips = st.lists(st.booleans(), min_size=len(word), max_size=len(word))
    return flips.map(
        lambda bs: "".join(c.lower() if b else c for c, b in zip(word, bs, strict=True))
    )


_marker = st.sampled_from(MARKERS).flatmap(_random_case)
_sep = st.sampled_from([" ", "  ", "\t", "_", "\r", "\u00a0", "\u3000", *_INVISIBLE])
_split_marker = st.builds(
    lambda first, sep, second: f"{first}{sep}{second}",
    st.sampled_from(["BEGIN", "END", "begin", "End"]),
    st.lists(_sep, min_size=1, max_size=3).map("".join),
    st.sampled_from(["INPUT", "CONTEXT", "INSTRUCTION", "input", "Context"]),
)
_fragment = st.one_of(
    _marker,
    _split_marker,
    st.sampled_from(
        [
            "\n",
            "\r",
            "\r\n",
            " ",
            "\t",
            "_",
            "-",
            ":",
            "key: value",
            " ENDINPUT ",
            "url: https://x.y/1",
            "ASSISTANT: ",
            "</s>",
            "é",
            "日本",
            "\u2028",
            "S",
            *_INVISIBLE,
        ]
    ),
    st.text(max_size=8),
)
pasted = st.lists(_fragment, max_size=12).map("".join)
metadata = st.dictionaries(
    st.one_of(st.sampled_from(["url", "date", "author", "File Name", "URL "]), pasted),
    pasted,
    max_size=4,
)
blocks = st.lists(st.builds(ContextBlock, text=pasted, metadata=metadata), max_size=4)


@given(blocks, pasted)
def test_closed_context_parses_back(blocks: list[ContextBlock], instruction: str) -> None:
    text = closed_context(blocks, instruction)
    parsed, parsed_instruction, structural = parse(text)
    assert len(parsed) == len(blocks)
    for (meta, body), block in zip(parsed, blocks, strict=True):
        given_values = [v for v in block.metadata.values() if v.split()]
        assert meta == metadata_lines(block.metadata)
        assert len(meta) == len(given_values)
        for line, value in zip(meta, given_values, strict=True):
            key, sep, shown = line.partition(": ")
            assert sep and re.fullmatch(r"[a-z0-9_ -]+", key) and key == key.strip()
            assert shown == defuse(" ".join(value.split()))
        assert body == defuse(block.text)
    assert parsed_instruction == defuse(instruction)
    for i, line in enumerate(text.split("\n")):
        if i not in structural:
            assert not looks_like_marker(line), line


@given(pasted)
def test_defuse_is_idempotent_and_leaves_no_marker(text: str) -> None:
    once = defuse(text)
    assert defuse(once) == once
    assert not any(looks_like_marker(line) for line in once.split("\n"))
    # visible and readable: only separators change, letters and digits stay in order
    assert [c for c in once if c.isalnum()] == [c for c in text if c.isalnum()]


@given(pasted)
def test_defuse_changes_only_text_with_markers(text: str) -> None:
    if not may_hold_marker(text):
        assert defuse(text) == text


@given(st.text())
def test_defuse_arbitrary_unicode(text: str) -> None:
    once = defuse(text)
    assert defuse(once) == once
    if not may_hold_marker(text):
        assert once == text


@given(
    st.lists(st.tuples(st.text(max_size=30), st.text(max_size=30)), max_size=30),
    st.text(min_size=1, max_size=40).filter(str.strip),
    blocks,
    st.integers(min_value=40, max_value=400),
    st.integers(min_value=1, max_value=200),
    st.integers(min_value=0, max_value=100),
)
def test_fit_prompt_invariants(
    pairs: list[tuple[str, str]],
    question: str,
    blocks: list[ContextBlock],
    context_length: int,
    max_new_tokens: int,
    min_answer_tokens: int,
) -> None:
    history = [Turn(u, a) for u, a in pairs]

    def count(text: str) -> int:
        return len(text.split()) + 1

    try:
        fitted = fit_prompt(
            system="S",
            history=history,
            question=question,
            blocks=blocks,
            count_tokens=count,
            context_length=context_length,
            max_new_tokens=max_new_tokens,
            min_answer_tokens=min_answer_tokens,
        )
    except PromptTooLong:  # only a question too long for the window may fail
        assert count(chat_prompt("S", [], question)) > context_length - min(
            max_new_tokens, min_answer_tokens
        )
        return
    reserve = min(max_new_tokens, min_answer_tokens)
    kept = history[len(history) - fitted.kept_turns :]
    assert fitted.text == chat_prompt("S", kept, user_text(question, fitted.included_blocks))
    assert fitted.prompt_tokens == count(fitted.text) <= context_length - reserve
    assert fitted.kept_turns + fitted.dropped_turns == len(history)
    assert fitted.budget_left == context_length - fitted.prompt_tokens
    assert fitted.max_new_tokens == min(max_new_tokens, fitted.budget_left) >= reserve
    assert fitted.text.endswith(" ASSISTANT: ")
    # blocks: a partition of the given ones, each part in the given order
    ids = [b.id for b in blocks]
    shown = [b.id for b in fitted.included_blocks]
    left = [b.id for b in fitted.omitted_blocks]
    assert sorted(shown + left) == sorted(ids)
    assert shown == [i for i in ids if i in shown]
    assert left == [i for i in ids if i in left]
