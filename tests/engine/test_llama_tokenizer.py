"""The converter's tokenizer on LLaMA's real SentencePiece vocabulary (airoboros-7b-gpt4's).

The reference is SentencePiece itself running Meta's `tokenizer.model` (rebuilt byte for byte by
tests/llama_tokenizer.py). The tokenizer.json `airoboros-bot convert` builds must give the same
ids on llama.cpp's test strings, on the converter's check texts and on hypothesis's text.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import sentencepiece
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airoboros_bot.engine.convert.build_tokenizer import BuiltTokenizer, build_tokenizer
from airoboros_bot.engine.convert.check_texts import check_texts
from airoboros_bot.engine.convert.verify_tokenizer import (
    SentencePieceReference,
    check_tokenizer,
    verify_built_tokenizer,
)
from airoboros_bot.engine.errors import ModelError
from tests.llama_tokenizer import (
    SHA256,
    SIZE,
    LlamaTokenizerFiles,
    id_ordered_tokenizer,
    tied_scores_model,
)

# Where the transformers-5 tokenizer.json and SentencePiece part ways (from the issue).
ISSUE_EXAMPLES = {
    "I ate blueberries.  What color are they?": [".", "▁", "▁What", "▁color"],
    "\n    def f": ["<0x0A>", "▁▁▁", "▁def", "▁f"],
}


@pytest.fixture(scope="module")
def sp(llama_files: LlamaTokenizerFiles) -> sentencepiece.SentencePieceProcessor:
    return sentencepiece.SentencePieceProcessor(model_file=str(llama_files.model))


@pytest.fixture(scope="module")
def reference(llama_files: LlamaTokenizerFiles) -> SentencePieceReference:
    return SentencePieceReference(llama_files.model)


@pytest.fixture(scope="module")
def built(llama_checkpoint_tokenizer: Path) -> BuiltTokenizer:
    return build_tokenizer(llama_checkpoint_tokenizer)


# -- the reference itself --------------------------------------------------------------------


def test_the_rebuilt_tokenizer_model_is_metas(
    llama_files: LlamaTokenizerFiles, sp: sentencepiece.SentencePieceProcessor
) -> None:
    data = llama_files.model.read_bytes()
    assert len(data) == SIZE == 499_723
    assert hashlib.sha256(data).hexdigest() == SHA256
    assert sp.encode("Hello world") == [15043, 3186]
    assert sp.piece_to_id("▁") == 29871
    assert [sp.id_to_piece(i) for i in range(3)] == ["<unk>", "<s>", "</s>"]
    assert sp.get_piece_size() == 32000


def test_llama_cpp_test_strings_give_their_expected_ids(
    llama_files: LlamaTokenizerFiles, sp: sentencepiece.SentencePieceProcessor
) -> None:
    strings = llama_files.test_strings()
    assert len(strings) == 46
    for text, expected in strings:
        assert sp.encode(text) == expected, text


# -- the converter's tokenizer ---------------------------------------------------------------


def test_built_tokenizer_gives_sentencepiece_ids_on_the_issue_examples(
    built: BuiltTokenizer, sp: sentencepiece.SentencePieceProcessor
) -> None:
    assert built.source == "tokenizer.model" and built.legacy is True
    for text, part in ISSUE_EXAMPLES.items():
        tokens = built.backend.encode(text, add_special_tokens=False).tokens
        assert tokens == sp.encode(text, out_type=str)
        assert any(tokens[i : i + len(part)] == part for i in range(len(tokens))), tokens
    assert built.backend.encode("Hello world").ids == [1, 15043, 3186]


def test_built_tokenizer_matches_on_the_check_texts_and_llama_cpp_strings(
    built: BuiltTokenizer, reference: SentencePieceReference, llama_files: LlamaTokenizerFiles
) -> None:
    texts = [*check_texts(), *(text for text, _ in llama_files.test_strings())]
    check = check_tokenizer(built.backend, reference, texts)
    assert check.texts == len(texts) > 3_000
    assert check.mismatches == []
    for text, expected in llama_files.test_strings():  # llama.cpp's own expected ids
        assert built.backend.encode(text).ids == [1, *expected], text


_fragments = st.sampled_from(
    [
        " ",
        "  ",
        "   ",
        "    ",
        " " * 17,
        "\t",
        "\n",
        "\r\n",
        "▁",
        "USER:",
        " ASSISTANT: ",
        "</s>",
        "<s>",
        "<unk>",
        "ENDINPUT",
        "def",
        "blueberries",
        "3.14",
        "日本語",
        "😀",
        "\u200b",
        "\x00",
    ]
)
random_text = st.lists(st.one_of(_fragments, st.text(max_size=12)), max_size=16).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_text)
def test_built_tokenizer_matches_sentencepiece_on_any_text(
    built: BuiltTokenizer, reference: SentencePieceReference, text: str
) -> None:
    check = check_tokenizer(built.backend, reference, [text])
    assert check.mismatches == [], check.summary("tokenizer.json")


def test_the_newer_splitting_after_special_tokens_is_refused(
    llama_checkpoint_tokenizer: Path, tmp_path: Path
) -> None:
    folder = Path(shutil.copytree(llama_checkpoint_tokenizer, tmp_path / "tok"))
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "legacy": False}))
    with pytest.raises(ModelError, match=r"asks for the newer \(legacy: false\) splitting"):
        build_tokenizer(folder)


# -- the check catches a wrong tokenizer -----------------------------------------------------


def test_the_check_catches_merges_in_token_id_order(
    llama_files: LlamaTokenizerFiles, reference: SentencePieceReference, built: BuiltTokenizer
) -> None:
    wrong = id_ordered_tokenizer(built.backend)
    check = check_tokenizer(wrong, reference, check_texts())
    assert len(check.mismatches) > 1_000
    summary = check.summary("tokenizer.json")
    assert summary.startswith(f"tokenizer.json splits {len(check.mismatches)} of {check.texts}")
    assert "where SentencePiece gives" in summary
    for text, part in ISSUE_EXAMPLES.items():
        [mismatch] = check_tokenizer(wrong, reference, [text]).mismatches
        assert any(mismatch.expected[i : i + len(part)] == part for i in range(len(part) + 9))


def test_a_tokenizer_model_it_cannot_reproduce_fails_the_check(
    llama_checkpoint_tokenizer: Path, tmp_path: Path
) -> None:
    folder = Path(shutil.copytree(llama_checkpoint_tokenizer, tmp_path / "tok"))
    tied_scores_model(folder / "tokenizer.model", folder / "tokenizer.model")
    with pytest.raises(ModelError) as info:
        verify_built_tokenizer(build_tokenizer(folder), folder / "tokenizer.model")
    message = info.value.user_message
    assert "splits" in message and "check texts unlike SentencePiece" in message
    assert "where SentencePiece gives" in message
    assert message.endswith("nothing was written")
    assert "\n" not in message
