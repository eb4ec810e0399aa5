"""Batched incremental decoding (engine/streaming.py) on the demo model's tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airoboros_bot.engine.streaming import AnswerText, decode_new
from airoboros_bot.engine.tokenizer import StreamDecoder, Tokenizer

BYTE_IDS = range(3, 259)  # <0x00>..<0xFF> in the demo vocabulary, as in LLaMA's
EXAMPLES = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def tok(demo_model_dir: Path) -> Tokenizer:
    return Tokenizer.from_dir(demo_model_dir)


def _grow(tok: Tokenizer, sequences: list[list[int]], cuts: list[int], stops=()) -> list[str]:
    """Feed every sequence in steps of `cuts` tokens (all answers decoded together at each
    step), streaming with `unsent`; return what each answer streamed, its rest included."""
    answers = [AnswerText([], stops) for _ in sequences]
    streamed = [""] * len(sequences)
    done = [0] * len(sequences)
    for step in [*cuts, max(map(len, sequences), default=0)]:
        for answer, ids, i in zip(answers, sequences, range(len(sequences)), strict=True):
            answer.ids.extend(ids[done[i] : done[i] + step])
            done[i] = min(len(ids), done[i] + step)
        decode_new(tok, answers)
        for i, answer in enumerate(answers):
            piece = answer.unsent()
            assert all(stop not in streamed[i] + piece for stop in stops)
            assert "\ufffd" not in piece[-1:], "no half character is streamed"
            streamed[i] += piece
    decode_new(tok, answers, final=True)
    for i, answer in enumerate(answers):
        streamed[i] += answer.rest()
        assert streamed[i] == answer.text
    return streamed


ids_strategy = st.lists(
    st.one_of(st.integers(0, 1999), st.sampled_from(BYTE_IDS), st.sampled_from([0, 1, 2])),
    max_size=40,
)
cuts_strategy = st.lists(st.integers(1, 7), max_size=12)


@EXAMPLES
@given(sequences=st.lists(ids_strategy, min_size=1, max_size=4), cuts=cuts_strategy)
def test_batched_text_adds_up_to_a_full_decode(
    tok: Tokenizer, sequences: list[list[int]], cuts: list[int]
) -> None:
    texts = _grow(tok, sequences, cuts)
    for ids, text in zip(sequences, texts, strict=True):
        # A character cut in half at the very end is dropped, as the worker always did.
        assert text == tok.decode(ids).rstrip("\ufffd")


@EXAMPLES
@given(
    text=st.text(
        st.characters(exclude_categories=["Cs"], exclude_characters="\ufffd"), max_size=60
    ),
    cuts=cuts_strategy,
)
def test_batched_text_of_real_text_matches_the_token_by_token_decoder(
    tok: Tokenizer, text: str, cuts: list[int]
) -> None:
    ids = tok._tokenizer.encode(text, add_special_tokens=False).ids
    one_by_one = StreamDecoder(tok)
    expected = "".join(one_by_one.push(i) for i in ids) + one_by_one.finish()
    assert _grow(tok, [ids], cuts) == [expected] == [tok.decode(ids)]


@EXAMPLES
@given(
    words=st.lists(st.sampled_from(["blue", "berries", "USER", ":", "US", "ER:", " ", "é"])),
    cuts=cuts_strategy,
)
def test_stop_strings_cut_the_answer_and_are_never_streamed(
    tok: Tokenizer, words: list[str], cuts: list[int]
) -> None:
    full = "".join(words)
    ids = tok._tokenizer.encode(full, add_special_tokens=False).ids
    decoded = tok.decode(ids)
    (streamed,) = _grow(tok, [ids], cuts, stops=("USER:",))
    assert streamed == decoded.split("USER:")[0]


def test_stop_string_ends_decoding_and_is_reported(tok: Tokenizer) -> None:
    ids = tok._tokenizer.encode("blue berries USER: more text", add_special_tokens=False).ids
    answer = AnswerText([], ("USER:",))
    streamed = ""
    for token in ids:
        answer.ids.append(token)
        decode_new(tok, [answer])
        streamed += answer.unsent()
        assert "USER" not in streamed
    assert answer.stopped
    assert answer.text.strip() == streamed.strip() == "blue berries"


def test_one_flush_decodes_every_answer_in_two_tokenizer_calls(tok: Tokenizer) -> None:
    calls: list[int] = []
    real = tok.decode_batch

    class Counting(Tokenizer):
        def decode_batch(self, sequences: list[list[int]]) -> list[str]:
            calls.append(len(sequences))
            return real(sequences)

        def decode(self, ids: list[int]) -> str:
            raise AssertionError("a flush decodes in batches only")

    counting = Counting.__new__(Counting)
    counting.__dict__.update(tok.__dict__)
    ids = tok._tokenizer.encode("the blueberries are green " * 8, add_special_tokens=False).ids
    answers = [AnswerText(list(ids[: 5 + i])) for i in range(50)]
    decode_new(counting, answers)
    assert calls == [50, 50]
    assert [a.text for a in answers] == [tok.decode(ids[: 5 + i]) for i in range(50)]
    decode_new(counting, answers)  # nothing new: no call at all
    assert calls == [50, 50]
