"""Check a `tokenizer.json` against the SentencePiece model it must reproduce, id for id.

The reference is SentencePiece itself, applied as LLaMA-1's tokenizer applies it: the text is
split at special tokens (`<s>`, `</s>`, `<unk>` give their ids) and each piece between them is
encoded on its own, with the leading "▁" of a new text ("legacy" splitting). BOS comes first. A
check reports every text whose ids differ, and every text (without special tokens) whose
decoding differs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airoboros_bot.engine.convert.build_tokenizer import (
    CONTROL,
    UNKNOWN,
    BuiltTokenizer,
    read_sentencepiece,
)
from airoboros_bot.engine.convert.check_texts import check_texts
from airoboros_bot.engine.errors import ModelError
from airoboros_bot.engine.tokenizer import TOKENIZER_FILE

_SHOWN = 6  # tokens shown from the first difference
_TEXT_CHARS = 60  # characters of the text shown


class SentencePieceReference:
    """Token ids of a text as SentencePiece gives them, with special tokens matched in the text."""

    def __init__(self, model_file: Path) -> None:
        import sentencepiece

        proto = read_sentencepiece(model_file)
        self._sp = sentencepiece.SentencePieceProcessor(model_proto=proto.SerializeToString())
        self.specials = {
            p.piece: i for i, p in enumerate(proto.pieces) if p.type in (UNKNOWN, CONTROL)
        }
        # Leftmost match, longest first at one position, as `tokenizers` matches added tokens.
        ordered = sorted(self.specials, key=len, reverse=True)
        self._special = re.compile("|".join(map(re.escape, ordered)))
        self.bos_id: int = self._sp.bos_id()

    def piece(self, token_id: int) -> str:
        return self._sp.id_to_piece(token_id)

    def encode(self, text: str) -> list[int]:
        """Ids of `text` without BOS; special token strings in it become their ids."""
        ids: list[int] = []
        start = 0
        for match in self._special.finditer(text):
            ids += self._plain(text[start : match.start()])
            ids.append(self.specials[match.group()])
            start = match.end()
        ids += self._plain(text[start:])
        return ids

    def _plain(self, text: str) -> list[int]:
        return self._sp.encode(text) if text else []

    def decode(self, ids: list[int]) -> str:
        return self._sp.decode(ids)

    def has_special(self, text: str) -> bool:
        return self._special.search(text) is not None


@dataclass(frozen=True)
class Mismatch:
    """One text the tokenizer gets wrong: its tokens, and SentencePiece's."""

    text: str
    got: list[str]
    expected: list[str]
    what: str = "ids"  # or "decoded text"

    def describe(self) -> str:
        text = repr(self.text if len(self.text) <= _TEXT_CHARS else self.text[:_TEXT_CHARS] + "…")
        if self.what != "ids":
            return f"{text} decodes as {self.got[0]!r}, not {self.expected[0]!r}"
        at = next(
            (i for i, (a, b) in enumerate(zip(self.got, self.expected, strict=False)) if a != b),
            min(len(self.got), len(self.expected)),
        )
        lo = max(0, at - 2)
        got, expected = self.got[lo : at + _SHOWN], self.expected[lo : at + _SHOWN]
        return f"{text} gives {' '.join(got)} where SentencePiece gives {' '.join(expected)}"


@dataclass
class TokenizerCheck:
    """The result of `check_tokenizer`: how many texts were checked, which ones differ."""

    texts: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def summary(self, what: str) -> str:
        """One line: "WHAT gives SentencePiece's ids for all N check texts" or what differs."""
        if self.ok:
            return f"{what} gives SentencePiece's ids for all {self.texts} check texts"
        return (
            f"{what} splits {len(self.mismatches)} of {self.texts} check texts unlike "
            f"SentencePiece, e.g. {self.mismatches[0].describe()}"
        )

    def raise_if_failed(self, what: str, hint: str) -> None:
        if not self.ok:
            raise ModelError(f"{self.summary(what)}: {hint}")


def check_tokenizer(
    backend: Any, reference: SentencePieceReference, texts: Iterable[str]
) -> TokenizerCheck:
    """Compare `backend` (a `tokenizers.Tokenizer` adding BOS) with SentencePiece on `texts`."""
    texts = list(texts)
    result = TokenizerCheck(texts=len(texts))
    encodings = backend.encode_batch(texts)
    for text, encoding in zip(texts, encodings, strict=True):
        expected = [reference.bos_id, *reference.encode(text)]
        got = list(encoding.ids)
        if got != expected:
            result.mismatches.append(
                Mismatch(text, _pieces(backend, got), [reference.piece(i) for i in expected])
            )
            continue
        if not reference.has_special(text):
            decoded, want = backend.decode(got), reference.decode(expected)
            if decoded != want:
                result.mismatches.append(Mismatch(text, [decoded], [want], "decoded text"))
    return result


def _pieces(backend: Any, ids: Sequence[int]) -> list[str]:
    return [backend.id_to_token(i) or f"#{i}" for i in ids]


def verify_built_tokenizer(tokenizer: BuiltTokenizer, sentencepiece: Path) -> TokenizerCheck:
    """Check `tokenizer` against the SentencePiece model it was built from, on `check_texts`;
    raise `ModelError` naming the first mismatch if any text gets other ids."""
    reference = SentencePieceReference(sentencepiece)
    check = check_tokenizer(tokenizer.backend, reference, check_texts())
    check.raise_if_failed(
        f"the {TOKENIZER_FILE} built from {sentencepiece}",
        "airoboros-bot cannot reproduce this tokenizer.model; nothing was written",
    )
    return check


def check_vocabulary(model_dir: Path, backend: Any) -> int | None:
    """The size of CTranslate2's vocabulary in `model_dir` (None if it has no vocabulary.json),
    after checking that every id of `backend` means the same token in it."""
    path = model_dir / "vocabulary.json"
    if not path.is_file():  # a CTranslate2 version that stores it elsewhere: nothing to compare
        return None
    vocabulary = json.loads(path.read_text("utf-8"))
    for token_id, token in enumerate(vocabulary[: backend.get_vocab_size(with_added_tokens=True)]):
        if backend.id_to_token(token_id) != token:
            raise ModelError(
                f"the converted vocabulary and the tokenizer disagree at id {token_id} "
                f"({token!r} vs {backend.id_to_token(token_id)!r})"
            )
    return len(vocabulary)
