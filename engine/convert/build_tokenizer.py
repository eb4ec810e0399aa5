"""Build the worker's `tokenizer.json` from a checkpoint's tokenizer.

LLaMA's tokenizer is a SentencePiece BPE model (`tokenizer.model`). SentencePiece encodes by
merging, again and again, the adjacent pair whose merged piece has the highest score (the
leftmost pair on a tie). A `tokenizers` BPE model merges the pair of lowest rank instead, so the
ranks are built here from the scores: every split of every piece into two pieces is a merge,
ranked by the score of the piece it makes. Ties occur only between pieces of equal score
(LLaMA's sixteen whitespace-only pieces, all -1e9); among them a merge that adds one character
to the piece on its left ranks first, which grows runs of "▁" from the left as SentencePiece
does. transformers is not used: its converter (version 5) orders the merges by token id, which
splits double spaces and many words unlike SentencePiece. Whatever is built here is verified
against SentencePiece itself before it is written (`verify_tokenizer`).

A checkpoint without `tokenizer.model` has its own `tokenizer.json`, which is used as it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airoboros_bot.engine.convert.checkpoint import SENTENCEPIECE_FILE
from airoboros_bot.engine.convert.progress import one_line
from airoboros_bot.engine.errors import ModelError
from airoboros_bot.engine.tokenizer import SPACE_PIECE, TOKENIZER_FILE, Tokenizer

# SentencePiece piece types (sentencepiece_model.proto).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


@dataclass
class BuiltTokenizer:
    """The tokenizer to write as `tokenizer.json`, and where it came from."""

    backend: Any  # tokenizers.Tokenizer
    source: str  # the checkpoint file it was built from
    legacy: bool | None  # LLaMA-1's splitting after special tokens; None: a shipped tokenizer.json


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from `path`, or {} if it is missing or not a JSON object."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_sentencepiece(path: Path) -> Any:
    """The `ModelProto` in a SentencePiece `tokenizer.model`; `ModelError` if unreadable."""
    try:
        from sentencepiece import sentencepiece_model_pb2
    except ImportError as exc:
        raise ModelError(
            f"reading {SENTENCEPIECE_FILE} needs sentencepiece and protobuf, which are not "
            "installed: install the converter extra: pip install '.[convert]'"
        ) from exc
    proto = sentencepiece_model_pb2.ModelProto()
    try:
        proto.ParseFromString(Path(path).read_bytes())
    except Exception as exc:
        raise ModelError(f"{path} is not a SentencePiece model: {one_line(exc)}") from exc
    if not proto.pieces:
        raise ModelError(f"{path} is not a SentencePiece model: it has no pieces")
    return proto


def _check_supported(proto: Any, path: Path) -> None:
    """Refuse what `tokenizer_from_sentencepiece` does not reproduce, naming it."""
    from sentencepiece import sentencepiece_model_pb2

    trainer, normalizer = proto.trainer_spec, proto.normalizer_spec
    problems = []
    if trainer.model_type != sentencepiece_model_pb2.TrainerSpec.BPE:
        name = sentencepiece_model_pb2.TrainerSpec.ModelType.Name(trainer.model_type)
        problems.append(f"a {name} model (LLaMA's is BPE)")
    if normalizer.precompiled_charsmap or normalizer.name not in ("", "identity"):
        problems.append(f"the {normalizer.name or 'custom'} normalization")
    if normalizer.remove_extra_whitespaces:
        problems.append("remove_extra_whitespaces")
    if trainer.treat_whitespace_as_suffix:
        problems.append("treat_whitespace_as_suffix")
    if any(p.type in (USER_DEFINED, UNUSED) for p in proto.pieces):
        problems.append("user-defined or unused pieces")
    if problems:
        raise ModelError(
            f"{path} uses {', '.join(problems)}, which airoboros-bot cannot reproduce exactly: "
            "it converts LLaMA-family tokenizers"
        )


def bpe_merges(proto: Any) -> list[tuple[str, str]]:
    """BPE merges that apply SentencePiece's pieces in SentencePiece's order.

    Ranked by the merged piece's score (highest first); among equal scores, a merge whose right
    part is shorter and left part longer first (so runs of one piece grow from the left, as
    SentencePiece's leftmost-first tie rule does); then by piece id, for a stable order.
    """
    normal = {p.piece: (i, p.score) for i, p in enumerate(proto.pieces) if p.type == NORMAL}
    ranked = []
    for piece, (piece_id, score) in normal.items():
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in normal and right in normal:
                ranked.append((-score, len(right), -len(left), piece_id, left, right))
    ranked.sort()
    return [(left, right) for *_, left, right in ranked]


def tokenizer_from_sentencepiece(path: Path) -> Any:
    """A `tokenizers.Tokenizer` giving the ids of the SentencePiece BPE model in `path`.

    With LLaMA-1's ("legacy") splitting, which airoboros-7b-gpt4 was trained with: the text
    after a special token starts with "▁" as a text of its own (`</s>USER` -> `</s> ▁US ER`).
    BOS is not added here (`build_tokenizer` adds it).
    """
    from tokenizers import AddedToken, decoders, models, normalizers
    from tokenizers import Tokenizer as HFTokenizer

    proto = read_sentencepiece(path)
    _check_supported(proto, path)
    vocab = {p.piece: i for i, p in enumerate(proto.pieces)}
    if len(vocab) != len(proto.pieces):
        raise ModelError(f"{path} has the same piece twice")
    unk = next((p.piece for p in proto.pieces if p.type == UNKNOWN), None)
    model = models.BPE(
        vocab=vocab,
        merges=bpe_merges(proto),
        unk_token=unk,
        byte_fallback=proto.trainer_spec.byte_fallback,
        fuse_unk=True,
    )
    tokenizer = HFTokenizer(model)
    # Each piece of text between special tokens is normalized on its own, as SentencePiece
    # encodes it: the leading "▁" (add_dummy_prefix), then spaces as "▁".
    prefix = proto.normalizer_spec.add_dummy_prefix
    steps = [normalizers.Prepend(SPACE_PIECE)] if prefix else []
    tokenizer.normalizer = normalizers.Sequence([*steps, normalizers.Replace(" ", SPACE_PIECE)])
    steps = [
        decoders.Replace(SPACE_PIECE, " "),
        decoders.ByteFallback(),
        decoders.Fuse(),
    ]
    if prefix:
        steps.append(decoders.Strip(" ", 1, 0))
    tokenizer.decoder = decoders.Sequence(steps)
    specials = [p.piece for p in proto.pieces if p.type in (UNKNOWN, CONTROL)]
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    return tokenizer


def _special_token(config: dict[str, Any], name: str, default: str) -> str:
    value = config.get(name)
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else default


def build_tokenizer(hf_dir: Path) -> BuiltTokenizer:
    """The checkpoint's tokenizer as a `tokenizers.Tokenizer` that adds BOS like LLaMA's.

    Built from `tokenizer.model` when the checkpoint has one (the model was trained on its ids),
    else the checkpoint's `tokenizer.json` as it is. Raises `ModelError` if neither can be read
    or the special tokens are missing.
    """
    from tokenizers import AddedToken, processors
    from tokenizers import Tokenizer as HFTokenizer

    config = read_json(hf_dir / "tokenizer_config.json")
    names = read_json(hf_dir / "special_tokens_map.json") | config
    legacy: bool | None = None
    if (hf_dir / SENTENCEPIECE_FILE).is_file():
        if config.get("legacy") is False:
            raise ModelError(
                f"{hf_dir / 'tokenizer_config.json'} asks for the newer (legacy: false) splitting "
                "after special tokens, which airoboros-bot does not reproduce: it converts "
                "LLaMA-1 models such as airoboros-7b-gpt4, trained with the legacy splitting"
            )
        legacy = True  # LLaMA-1 fine-tunes were trained with SentencePiece's legacy splitting
        backend = tokenizer_from_sentencepiece(hf_dir / SENTENCEPIECE_FILE)
        source = SENTENCEPIECE_FILE
    else:
        try:
            backend = HFTokenizer.from_file(str(hf_dir / TOKENIZER_FILE))
        except Exception as exc:
            raise ModelError(
                f"cannot read the tokenizer of {hf_dir}: {TOKENIZER_FILE}: {one_line(exc)}"
            ) from exc
        source = TOKENIZER_FILE
    bos = _special_token(names, "bos_token", "<s>")
    specials = [
        bos,
        _special_token(names, "eos_token", "</s>"),
        _special_token(names, "unk_token", "<unk>"),
    ]
    missing = [t for t in specials if backend.token_to_id(t) is None]
    if missing:
        raise ModelError(f"the tokenizer of {hf_dir} has no {', '.join(missing)} token")
    # Mark them special (decoding skips them), without changing their ids.
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    bos_id = backend.token_to_id(bos)
    plain = backend.encode("x", add_special_tokens=False).ids
    if backend.encode("x").ids != [bos_id, *plain]:  # LLaMA adds BOS, and only BOS
        backend.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)]
        )
    Tokenizer(backend)  # what the worker checks: BOS and EOS tokens exist
    return BuiltTokenizer(backend, source, legacy)
