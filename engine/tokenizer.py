"""The model's own tokenizer (a Hugging Face `tokenizer.json`) and incremental detokenization."""

from __future__ import annotations

import re
from pathlib import Path

from tokenizers import Tokenizer as _HFTokenizer

from airoboros_bot.engine.errors import CONVERT_HINT, ModelError

TOKENIZER_FILE = "tokenizer.json"
SPACE_PIECE = "▁"  # SentencePiece's meta symbol for a space
_BYTE_TOKEN = re.compile(r"<0x[0-9A-Fa-f]{2}>")


class Tokenizer:
    """LLaMA-style tokenizer: prompts as token strings for CTranslate2, ids back to text."""

    def __init__(
        self, hf: _HFTokenizer, *, bos_token: str = "<s>", eos_token: str = "</s>"
    ) -> None:
        self._tokenizer = hf
        self.bos_token = bos_token
        self.eos_token = eos_token
        vocab = hf.get_vocab(with_added_tokens=True)
        for role, token in (("beginning-of-sequence", bos_token), ("end-of-sequence", eos_token)):
            if token not in vocab:
                raise ModelError(f"tokenizer has no {role} token {token!r}")
        self.bos_id: int = vocab[bos_token]
        self.eos_id: int = vocab[eos_token]
        self.vocab_size: int = hf.get_vocab_size(with_added_tokens=True)
        # Byte-fallback tokens (<0xE2>): a run of them decodes as one UTF-8 sequence.
        self._byte_ids = frozenset(i for t, i in vocab.items() if _BYTE_TOKEN.fullmatch(t))
        # Special tokens vanish when decoding, so they do not end such a run either.
        self._special_ids = frozenset(
            i for i, added in hf.get_added_tokens_decoder().items() if added.special
        )

    @classmethod
    def from_dir(cls, model_dir: Path) -> Tokenizer:
        """Load `model_dir/tokenizer.json`; raise `ModelError` if it is missing or invalid."""
        path = Path(model_dir) / TOKENIZER_FILE
        if not path.is_file():
            raise ModelError(f"model directory {model_dir} has no {TOKENIZER_FILE}: {CONVERT_HINT}")
        try:
            hf = _HFTokenizer.from_file(str(path))
        except Exception as exc:
            first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise ModelError(f"{path} is not a valid tokenizer file: {first_line}") from exc
        return cls(hf)

    def encode_prompt(self, text: str) -> list[str]:
        """Token strings for CTranslate2: one BOS first, and no trailing lone "▁" token.

        SentencePiece turns the space ending "ASSISTANT: " into a lone "▁" that the model never
        saw before an answer (it belongs to the answer's first word, "▁Blue"), so it is dropped.
        """
        try:
            tokens = self._tokenizer.encode(text, add_special_tokens=False).tokens
        except TypeError:  # lone surrogates (e.g. from a JSON "\ud800" escape)
            clean = text.encode("utf-8", "replace").decode("utf-8")
            tokens = self._tokenizer.encode(clean, add_special_tokens=False).tokens
        return self._as_prompt(tokens)

    def encode_prompts(self, texts: list[str]) -> list[list[str]]:
        """`encode_prompt` of each text, in one call that runs without holding the GIL."""
        try:
            encodings = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        except TypeError:  # a lone surrogate somewhere: one by one, each cleaned if need be
            return [self.encode_prompt(text) for text in texts]
        return [self._as_prompt(e.tokens) for e in encodings]

    def _as_prompt(self, tokens: list[str]) -> list[str]:
        start = 0
        while start < len(tokens) and tokens[start] == self.bos_token:
            start += 1
        end = len(tokens)
        while end > start and tokens[end - 1] == SPACE_PIECE:
            end -= 1
        return [self.bos_token, *tokens[start:end]]

    def count(self, text: str) -> int:
        """Number of tokens `encode_prompt(text)` gives."""
        return len(self.encode_prompt(text))

    def decode(self, ids: list[int]) -> str:
        """Text of token ids, special tokens (BOS, EOS) skipped."""
        return self._tokenizer.decode(list(ids), skip_special_tokens=True)

    def decode_batch(self, sequences: list[list[int]]) -> list[str]:
        """`decode` of each sequence, in one call that runs without holding the GIL."""
        return self._tokenizer.decode_batch(sequences, skip_special_tokens=True)

    def is_byte_token(self, token_id: int) -> bool:
        """Whether the id is a byte-fallback token such as <0xE2>."""
        return token_id in self._byte_ids

    def is_special_token(self, token_id: int) -> bool:
        """Whether the id is a special token (BOS, EOS, UNK), which `decode` skips."""
        return token_id in self._special_ids


class StreamDecoder:
    """Turns generated token ids into text increments as they arrive.

    The pieces always add up to `tokenizer.decode(ids)`. Only a short window is decoded per token
    (as vLLM's incremental detokenizer does): tokens already emitted but kept as left context, so
    the first word's leading-space rule applies exactly as in a full decode. A run of byte-fallback
    tokens is held back until a normal token closes it (special tokens, skipped, do not), since the
    run decodes all at once (an invalid run becomes "\\ufffd"s): no partial character leaks.
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tok = tokenizer
        self._ids: list[int] = []
        self._prefix = 0  # start of the window: context tokens, already emitted
        self._read = 0  # end of the emitted tokens
        self._prefix_text = ""  # decode(ids[prefix:read])
        self._pieces: list[str] = []

    @property
    def text(self) -> str:
        """Everything emitted so far."""
        return "".join(self._pieces)

    @property
    def ids(self) -> list[int]:
        """Every id pushed so far."""
        return list(self._ids)

    def push(self, token_id: int) -> str:
        """Add one generated id; return the text it completes ("" while held back)."""
        self._ids.append(token_id)
        if self._tok.is_byte_token(token_id) or self._tok.is_special_token(token_id):
            return ""  # adds no text of its own; a byte run stays open across it
        return self._emit(final=False)

    def finish(self) -> str:
        """Return whatever is still held back (end of generation)."""
        return self._emit(final=True)

    def _emit(self, *, final: bool) -> str:
        window = self._tok.decode(self._ids[self._prefix :])
        if not window.startswith(self._prefix_text):
            # Not expected with LLaMA-style decoders: compare a full decode with the text so far.
            self._prefix, self._prefix_text = 0, self.text
            window = self._tok.decode(self._ids)
        if len(window) <= len(self._prefix_text):
            return ""
        if not final and window.endswith("\ufffd"):
            return ""  # a byte-level tokenizer's incomplete character: wait for the rest
        piece = window[len(self._prefix_text) :]
        self._prefix, self._read = self._read, len(self._ids)
        self._prefix_text = self._tok.decode(self._ids[self._prefix : self._read])
        return self._add(piece)

    def _add(self, piece: str) -> str:
        if piece:
            self._pieces.append(piece)
        return piece
