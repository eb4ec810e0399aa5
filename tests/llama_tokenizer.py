"""LLaMA's real SentencePiece tokenizer for tests, rebuilt from PyPI (no model hub needed).

LLaMA-1 and LLaMA-2 share one 32,000-piece SentencePiece BPE vocabulary; airoboros-7b-gpt4 uses
it. The `llama-cpp-python` sdist on PyPI vendors llama.cpp's vocabulary-only GGUF of it
(`ggml-vocab-llama-spm.gguf`: every piece with its score and type) and, beside it, test strings
with the ids llama.cpp expects (`.inp` / `.out`). From the pieces, scores and types, with the
trainer and normalizer settings of Meta's file, `sentencepiece_model` writes a `tokenizer.model`
byte-identical to Meta's (checked: size and sha256 below).

Provenance: https://pypi.org/project/llama-cpp-python/0.3.36/ (MIT), fetched with
`pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36`; only the three files are
kept. The result is cached in ``~/.cache/airoboros-bot/llama-tokenizer`` (or
``$AIROBOROS_TEST_CACHE/llama-tokenizer``), built once under a lock file; a fresh machine needs
PyPI once (a 77 MB download, about 10 s). Why not commit the file: it is Meta's LLaMA tokenizer,
under Meta's license, and this keeps the repository free of it while every test still runs the
exact bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airoboros_bot.engine.model.atomic import build_once

SDIST = ("llama-cpp-python", "0.3.36")
VOCAB_DIR = "vendor/llama.cpp/models/"
VOCAB_FILE = "ggml-vocab-llama-spm.gguf"
SIZE = 499_723
SHA256 = "9e556afd44213b6bd1be2b850ebbbd98f5481437a8021afaf58ee7fb1818d347"
TEST_SEPARATOR = "\n__ggml_vocab_test__\n"

# Meta's trainer_spec and normalizer_spec, field by field as they are set in its file.
TRAINER_SPEC = {
    "input": ["/large_experiments/theorem/datasets/MERGED/all.test1.merged"],
    "model_prefix": "spm_model_32k_200M_charcov099995_allowWSO__v2",
    "model_type": 2,  # BPE
    "vocab_size": 32000,
    "self_test_sample_size": 0,
    "input_format": "text",
    "character_coverage": 0.99995,
    "input_sentence_size": 200000000,
    "seed_sentencepiece_size": 1000000,
    "shrinking_factor": 0.75,
    "num_threads": 80,
    "num_sub_iterations": 2,
    "max_sentence_length": 4192,
    "shuffle_input_sentence": True,
    "max_sentencepiece_length": 16,
    "split_by_unicode_script": True,
    "split_by_whitespace": True,
    "split_by_number": True,
    "treat_whitespace_as_suffix": False,
    "split_digits": True,
    "allow_whitespace_only_pieces": True,
    "vocabulary_output_piece_score": True,
    "hard_vocab_limit": True,
    "use_all_vocab": False,
    "byte_fallback": True,
    "required_chars": "",
    "unk_id": 0,
    "bos_id": 1,
    "eos_id": 2,
    "pad_id": -1,
    "unk_surface": " \u2047 ",
    "unk_piece": "<unk>",
    "bos_piece": "<s>",
    "eos_piece": "</s>",
    "pad_piece": "<pad>",
    "train_extremely_large_corpus": False,
    "enable_differential_privacy": False,
    "differential_privacy_noise_level": 0.0,
    "differential_privacy_clipping_threshold": 0,
}
NORMALIZER_SPEC = {
    "name": "identity",
    "precompiled_charsmap": b"",
    "add_dummy_prefix": True,
    "remove_extra_whitespaces": False,
    "normalization_rule_tsv": "",
}
NORMAL_TYPE = 1


class LlamaTokenizerUnavailable(RuntimeError):
    """The tokenizer could not be fetched or rebuilt; the message says why and what to do."""


@dataclass(frozen=True)
class LlamaTokenizerFiles:
    """Meta's `tokenizer.model`, and llama.cpp's test strings with their expected ids."""

    directory: Path

    @property
    def model(self) -> Path:
        return self.directory / "tokenizer.model"

    def test_strings(self) -> list[tuple[str, list[int]]]:
        """llama.cpp's test strings and the ids (no BOS) SentencePiece gives them."""
        texts = (self.directory / "llama-spm.inp").read_text("utf-8").split(TEST_SEPARATOR)
        lines = (self.directory / "llama-spm.out").read_text("utf-8").split("\n")
        texts, lines = texts[:-1], lines[: len(texts) - 1]  # both end with a separator
        return [(t, [int(i) for i in line.split()]) for t, line in zip(texts, lines, strict=True)]


def llama_checkpoint_configs() -> dict[str, dict[str, object]]:
    """tokenizer_config.json and special_tokens_map.json as LLaMA-1 era checkpoints (such as
    airoboros-7b-gpt4) ship them: no `legacy` key, special tokens as AddedToken objects."""

    def added(content: str) -> dict[str, object]:
        return {
            "__type": "AddedToken",
            "content": content,
            "lstrip": False,
            "normalized": True,
            "rstrip": False,
            "single_word": False,
        }

    return {
        "tokenizer_config.json": {
            "add_bos_token": True,
            "add_eos_token": False,
            "bos_token": added("<s>"),
            "clean_up_tokenization_spaces": False,
            "eos_token": added("</s>"),
            "model_max_length": 2048,
            "pad_token": None,
            "sp_model_kwargs": {},
            "tokenizer_class": "LlamaTokenizer",
            "unk_token": added("<unk>"),
        },
        "special_tokens_map.json": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
    }


def id_ordered_tokenizer(backend: Any) -> Any:
    """`backend` (a tokenizers.Tokenizer) with its BPE merges ordered by the merged piece's id,
    as transformers 5 orders them: what `airoboros-bot convert` wrote before tokenizer_build 2."""
    from tokenizers import Tokenizer as HFTokenizer

    data = json.loads(backend.to_str())
    vocab = data["model"]["vocab"]
    data["model"]["merges"].sort(key=lambda pair: vocab["".join(pair)])
    return HFTokenizer.from_str(json.dumps(data))


def tied_scores_model(model: Path, out: Path) -> Path:
    """LLaMA's tokenizer.model with every normal piece scored 0 (as a model trained with
    `vocabulary_output_piece_score=false` is): SentencePiece then merges the leftmost pair
    first, which no ranking of BPE merges reproduces."""
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model.read_bytes())
    for piece in proto.pieces:
        if piece.type == NORMAL_TYPE:
            piece.score = 0.0
    out.write_bytes(proto.SerializeToString())
    return out


# -- GGUF, the few parts a vocabulary file uses ----------------------------------------------

# GGUF value type -> struct format: uint8 int8 uint16 int16 uint32 int32 float32 bool, 64-bit.
_SCALARS = dict(zip((0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12), "BbHhIif?Qqd", strict=True))
_STRING, _ARRAY = 8, 9


def read_gguf_metadata(path: Path) -> dict[str, object]:
    """The key/value metadata of a GGUF file (version 2 or 3), tensors not read."""
    data = path.read_bytes()
    if data[:4] != b"GGUF":
        raise ValueError(f"{path} is not a GGUF file")
    version, _tensors, count = struct.unpack_from("<IQQ", data, 4)
    if version < 2:
        raise ValueError(f"{path}: GGUF version {version} is not supported")
    offset = 24

    def string() -> str:
        nonlocal offset
        (length,) = struct.unpack_from("<Q", data, offset)
        offset += 8 + length
        return data[offset - length : offset].decode("utf-8")

    def value(kind: int) -> object:
        nonlocal offset
        if kind == _STRING:
            return string()
        if kind == _ARRAY:
            item_kind, length = struct.unpack_from("<IQ", data, offset)
            offset += 12
            if item_kind in _SCALARS:
                fmt = f"<{length}{_SCALARS[item_kind]}"
                items = list(struct.unpack_from(fmt, data, offset))
                offset += struct.calcsize(fmt)
                return items
            return [value(item_kind) for _ in range(length)]
        fmt = "<" + _SCALARS[kind]
        (item,) = struct.unpack_from(fmt, data, offset)
        offset += struct.calcsize(fmt)
        return item

    metadata: dict[str, object] = {}
    for _ in range(count):
        key = string()
        (kind,) = struct.unpack_from("<I", data, offset)
        offset += 4
        metadata[key] = value(kind)
    return metadata


def sentencepiece_model(tokens: list[str], scores: list[float], types: list[int]) -> bytes:
    """A SentencePiece `ModelProto` of LLaMA's settings with these pieces, serialized.

    Meta's trainer wrote normal pieces with their score only, the others (unknown, control,
    byte) with their type and a score of 0: so does this.
    """
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    for token, score, kind in zip(tokens, scores, types, strict=True):
        piece = proto.pieces.add()
        piece.piece = token
        if kind == NORMAL_TYPE:
            piece.score = score
        else:
            piece.type = kind
            piece.score = 0.0
    for name, setting in TRAINER_SPEC.items():
        if isinstance(setting, list):
            getattr(proto.trainer_spec, name).extend(setting)
        else:
            setattr(proto.trainer_spec, name, setting)
    for name, setting in NORMALIZER_SPEC.items():
        setattr(proto.normalizer_spec, name, setting)
    return proto.SerializeToString()


# -- fetching and caching --------------------------------------------------------------------


def cache_dir() -> Path:
    root = os.environ.get("AIROBOROS_TEST_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "airoboros-bot"
    return base / "llama-tokenizer"


def _is_complete(directory: Path) -> bool:
    model = directory / "tokenizer.model"
    return (
        model.is_file()
        and hashlib.sha256(model.read_bytes()).hexdigest() == SHA256
        and (directory / "llama-spm.inp").is_file()
        and (directory / "llama-spm.out").is_file()
    )


def _download_sdist(into: Path) -> Path:
    name, version = SDIST
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--no-binary",
        ":all:",
        f"{name}=={version}",
        "-d",
        str(into),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    archives = sorted(into.glob("*.tar.gz"))
    if result.returncode != 0 or not archives:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise LlamaTokenizerUnavailable(
            f"cannot download the {name}=={version} sdist from PyPI, which holds LLaMA's "
            f"tokenizer vocabulary ({' '.join(command[2:])} exited {result.returncode}: "
            f"{' / '.join(tail)}); the real-tokenizer tests need PyPI once, then use the cache "
            f"in {cache_dir()}"
        )
    return archives[0]


def _extract(archive: Path, into: Path) -> dict[str, Path]:
    wanted = {VOCAB_FILE: "vocab.gguf", f"{VOCAB_FILE}.inp": "llama-spm.inp"}
    wanted[f"{VOCAB_FILE}.out"] = "llama-spm.out"
    found: dict[str, Path] = {}
    with tarfile.open(archive, "r|gz") as tar:
        for member in tar:
            folder, _, base = member.name.rpartition("/")
            if base in wanted and f"{folder}/".endswith(VOCAB_DIR) and member.isfile():
                handle = tar.extractfile(member)
                assert handle is not None
                found[base] = into / wanted[base]
                found[base].write_bytes(handle.read())
                if len(found) == len(wanted):
                    break
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise LlamaTokenizerUnavailable(f"{archive.name} has no {VOCAB_DIR}{missing[0]}")
    return found


def _build(staging: Path) -> None:
    archive = _download_sdist(staging / "sdist")
    files = _extract(archive, staging)
    metadata = read_gguf_metadata(files[VOCAB_FILE])
    model = sentencepiece_model(
        metadata["tokenizer.ggml.tokens"],  # type: ignore[arg-type]
        metadata["tokenizer.ggml.scores"],  # type: ignore[arg-type]
        metadata["tokenizer.ggml.token_type"],  # type: ignore[arg-type]
    )
    digest = hashlib.sha256(model).hexdigest()
    if len(model) != SIZE or digest != SHA256:
        raise LlamaTokenizerUnavailable(
            f"the tokenizer.model rebuilt from {archive.name} is {len(model):,} bytes with "
            f"sha256 {digest}, not Meta's {SIZE:,} bytes {SHA256}: the sdist's vocabulary or "
            "the sentencepiece protobuf changed"
        )
    (staging / "tokenizer.model").write_bytes(model)
    provenance = {"sdist": f"{SDIST[0]}=={SDIST[1]}", "member": VOCAB_DIR + VOCAB_FILE}
    (staging / "provenance.json").write_text(json.dumps(provenance, indent=2), "utf-8")
    files[VOCAB_FILE].unlink()
    for leftover in (staging / "sdist").iterdir():
        leftover.unlink()
    (staging / "sdist").rmdir()


def llama_tokenizer() -> LlamaTokenizerFiles:
    """Meta's LLaMA `tokenizer.model` (sha256-checked) and llama.cpp's test strings, cached.

    Raises `LlamaTokenizerUnavailable` saying why when they cannot be had.
    """
    directory = cache_dir()
    try:
        build_once(directory, _build, is_complete=_is_complete)
    except LlamaTokenizerUnavailable:
        raise
    except Exception as exc:
        raise LlamaTokenizerUnavailable(
            f"cannot rebuild LLaMA's tokenizer.model in {directory}: {type(exc).__name__}: {exc}"
        ) from exc
    return LlamaTokenizerFiles(directory)
