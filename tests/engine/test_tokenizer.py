"""The model's tokenizer on the demo model's tokenizer.json: prompts and streaming decode."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airoboros_bot.engine.errors import EngineError, ModelError
from airoboros_bot.engine.tokenizer import SPACE_PIECE, StreamDecoder, Tokenizer

SYSTEM = (
    "A chat between a curious user and an assistant. The assistant gives helpful, detailed, "
    "accurate, uncensored responses to the user's input."
)
BYTE_IDS = range(3, 259)  # <0x00>..<0xFF> in the demo vocabulary, as in LLaMA's


@pytest.fixture(scope="module")
def tok(demo_model_dir: Path) -> Tokenizer:
    return Tokenizer.from_dir(demo_model_dir)


def stream(tok: Tokenizer, ids: list[int]) -> list[str]:
    decoder = StreamDecoder(tok)
    pieces = [decoder.push(i) for i in ids]
    pieces.append(decoder.finish())
    assert decoder.text == "".join(pieces)
    return pieces


def test_special_tokens(tok: Tokenizer) -> None:
    assert (tok.bos_token, tok.eos_token) == ("<s>", "</s>")
    assert tok.eos_id == 2
    assert tok.vocab_size == 2000
    assert tok.is_byte_token(3) and tok.is_byte_token(258) and not tok.is_byte_token(259)


@pytest.mark.parametrize("text", ["Hello", "<s>Hello", "<s><s> Hello", "", " "])
def test_encode_prompt_starts_with_one_bos(tok: Tokenizer, text: str) -> None:
    tokens = tok.encode_prompt(text)
    assert tokens[0] == "<s>"
    assert "<s>" not in tokens[1:]


def test_prompt_ending_in_space_has_no_lone_space_token(tok: Tokenizer) -> None:
    prompt = f"{SYSTEM} USER: What color are blueberries? ASSISTANT: "
    tokens = tok.encode_prompt(prompt)
    assert tokens[-1] == ":"
    assert tokens[-2] == f"{SPACE_PIECE}ASSISTANT"
    assert SPACE_PIECE not in tokens[-1]
    assert tokens[:-1] == tok.encode_prompt(prompt.rstrip())[:-1]
    assert tok.count(prompt) == len(tokens)


def test_history_prompt_keeps_end_of_sequence_between_turns(tok: Tokenizer) -> None:
    prompt = f"{SYSTEM} USER: q1 ASSISTANT: a1</s>USER: q2 ASSISTANT: "
    tokens = tok.encode_prompt(prompt)
    assert tokens.count("</s>") == 1
    assert tokens[-1] == ":"


@pytest.mark.parametrize(
    "text", ["", "Blueberries are now green.", f"{SYSTEM} USER: hi ASSISTANT: ", "a\nb\n\nc"]
)
def test_count_is_length_of_encode_prompt(tok: Tokenizer, text: str) -> None:
    assert tok.count(text) == len(tok.encode_prompt(text))


def test_lone_surrogates_are_replaced(tok: Tokenizer) -> None:
    assert tok.encode_prompt("a\ud800b") == tok.encode_prompt("a?b")


def test_decode_skips_special_tokens(tok: Tokenizer) -> None:
    ids = tok._tokenizer.encode("Blueberries are now green.", add_special_tokens=True).ids
    assert ids[0] == 1
    assert tok.decode([*ids, tok.eos_id]) == "Blueberries are now green."


def test_from_dir_errors(tmp_path: Path, demo_model_dir: Path) -> None:
    with pytest.raises(ModelError, match=r"has no tokenizer\.json: convert the model") as info:
        Tokenizer.from_dir(tmp_path)
    assert str(tmp_path) in str(info.value)
    assert isinstance(info.value, EngineError) and info.value.user_message
    (tmp_path / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelError, match="is not a valid tokenizer file"):
        Tokenizer.from_dir(tmp_path)
    # A tokenizer without LLaMA's special tokens is refused.
    shutil.copy(demo_model_dir / "tokenizer.json", tmp_path / "tokenizer.json")
    text = (tmp_path / "tokenizer.json").read_text(encoding="utf-8")
    (tmp_path / "tokenizer.json").write_text(text.replace('"</s>"', '"</eos>"'), encoding="utf-8")
    with pytest.raises(ModelError, match="end-of-sequence"):
        Tokenizer.from_dir(tmp_path)


@pytest.mark.parametrize(
    "text",
    [
        "Blueberries are now green.",
        "  leading spaces and trailing  ",
        "café naïve crème brûlée",
        "emoji 😀😀 then 👍🏽 and 日本語のテキスト",
        "😀",
        "é",
        "line one\nline two\n\n- item",
    ],
)
def test_stream_of_valid_text_matches_decode_and_never_leaks_replacement(
    tok: Tokenizer, text: str
) -> None:
    ids = tok._tokenizer.encode(text, add_special_tokens=False).ids
    pieces = stream(tok, ids)
    assert "".join(pieces) == tok.decode(ids)
    assert not any("\ufffd" in p for p in pieces)


def test_stream_strips_leading_space_of_first_word_only(tok: Tokenizer) -> None:
    ids = tok._tokenizer.encode("Blueberries are green", add_special_tokens=False).ids
    pieces = stream(tok, ids)
    assert pieces[0] and not pieces[0].startswith(" ")
    assert "".join(pieces) == "Blueberries are green"


def test_stream_holds_back_partial_utf8(tok: Tokenizer) -> None:
    ids = tok._tokenizer.encode("a 😀 b", add_special_tokens=False).ids
    assert sum(tok.is_byte_token(i) for i in ids) == 4
    decoder = StreamDecoder(tok)
    out = []
    for i in ids:
        piece = decoder.push(i)
        out.append(piece)
        assert "\ufffd" not in piece
        if tok.is_byte_token(i):
            assert piece == ""
    out.append(decoder.finish())
    assert "".join(out) == "a 😀 b"
    assert decoder.ids == ids


def test_stream_of_invalid_bytes_matches_decode(tok: Tokenizer) -> None:
    e2 = 3 + 0xE2
    ids = [
        tok._tokenizer.token_to_id("▁a"),
        e2,
        3 + 0x82,
        3 + 0xAC,
        e2,
        tok._tokenizer.token_to_id("▁a"),
    ]
    assert "".join(stream(tok, ids)) == tok.decode(ids)
    assert "".join(stream(tok, ids[:-1])) == tok.decode(ids[:-1])


ids_strategy = st.lists(
    st.one_of(st.integers(0, 1999), st.sampled_from(BYTE_IDS), st.sampled_from([0, 1, 2])),
    max_size=40,
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ids=ids_strategy)
def test_stream_of_random_ids_matches_decode(tok: Tokenizer, ids: list[int]) -> None:
    assert "".join(stream(tok, ids)) == tok.decode(ids)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\ufffd"), max_size=40)
)
def test_stream_of_random_text_matches_decode(tok: Tokenizer, text: str) -> None:
    ids = tok._tokenizer.encode(text, add_special_tokens=False).ids
    pieces = stream(tok, ids)
    assert "".join(pieces) == tok.decode(ids)
    assert not any("\ufffd" in p for p in pieces)


def test_stream_decodes_a_short_window(tok: Tokenizer) -> None:
    calls: list[int] = []
    real_decode = tok.decode

    class Counting(Tokenizer):
        def decode(self, ids: list[int]) -> str:
            calls.append(len(ids))
            return real_decode(ids)

    counting = Counting.__new__(Counting)
    counting.__dict__.update(tok.__dict__)
    ids = tok._tokenizer.encode("the blueberries are green " * 60, add_special_tokens=False).ids
    assert "".join(stream(counting, ids)) == tok.decode(ids)
    assert max(calls) <= 4


def test_encode_prompts_matches_encode_prompt_one_by_one(tok: Tokenizer) -> None:
    texts = [f"{SYSTEM} USER: hi ASSISTANT: ", "<s><s> Hello", "", " ", "a\ud800b", "café 😀"]
    assert tok.encode_prompts(texts) == [tok.encode_prompt(t) for t in texts]
    assert tok.encode_prompts(texts[:4]) == [tok.encode_prompt(t) for t in texts[:4]]
    assert tok.encode_prompts([]) == []
