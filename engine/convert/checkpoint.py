"""The Hugging Face LLaMA checkpoint to convert, checked before anything is loaded.

`read_checkpoint` reads only config.json and the file list: a directory that is not a LLaMA
model, lacks weight shards or a tokenizer, or holds Git LFS pointers instead of files is named
in one line before a conversion starts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airoboros_bot.engine.errors import ModelError
from airoboros_bot.engine.tokenizer import TOKENIZER_FILE

SENTENCEPIECE_FILE = "tokenizer.model"
_LFS_POINTER = b"version https://git-lfs"


@dataclass(frozen=True)
class Checkpoint:
    """A Hugging Face LLaMA checkpoint directory, checked without loading its weights."""

    path: Path
    config: dict[str, Any]
    weight_files: tuple[Path, ...]

    @property
    def hidden_size(self) -> int:
        return int(self.config["hidden_size"])

    @property
    def num_layers(self) -> int:
        return int(self.config["num_hidden_layers"])

    @property
    def num_heads(self) -> int:
        return int(self.config["num_attention_heads"])

    @property
    def num_kv_heads(self) -> int:
        return int(self.config.get("num_key_value_heads") or self.num_heads)

    @property
    def ffn_size(self) -> int:
        return int(self.config["intermediate_size"])

    @property
    def vocab_size(self) -> int:
        return int(self.config["vocab_size"])

    @property
    def context_length(self) -> int:
        """max_position_embeddings (LLaMA-1: 2,048 tokens for prompt and answer)."""
        value = self.config.get("max_position_embeddings") or self.config.get(
            "max_sequence_length", 2048
        )
        return int(value)

    @property
    def source(self) -> str:
        """The directory's name, and the `_name_or_path` it was saved with, if any."""
        name = self.path.name
        saved_as = self.config.get("_name_or_path")
        if isinstance(saved_as, str) and saved_as and saved_as != name:
            return f"{name} ({saved_as})"
        return name

    def parameter_count(self) -> int:
        """Number of weights, from the configuration (6.74 billion for LLaMA-7B)."""
        h, layers, ffn, vocab = self.hidden_size, self.num_layers, self.ffn_size, self.vocab_size
        kv = h // self.num_heads * self.num_kv_heads
        per_layer = 2 * h * h + 2 * h * kv + 3 * h * ffn + 2 * h
        lm_head = 0 if self.config.get("tie_word_embeddings") else vocab * h
        return vocab * h + lm_head + layers * per_layer + h

    def describe(self) -> str:
        """One line, e.g. "LLaMA 6.7B parameters: 32 layers, hidden 4096, ..."."""
        count = self.parameter_count()
        size = f"{count / 1e9:.1f}B" if count >= 1e8 else f"{count / 1e6:.2f}M"
        return (
            f"LLaMA {size} parameters: {self.num_layers} layers, hidden {self.hidden_size}, "
            f"{self.num_heads} heads, vocabulary {self.vocab_size}, "
            f"context {self.context_length} tokens"
        )


def _is_lfs_pointer(path: Path) -> bool:
    try:
        if path.stat().st_size > 1024:
            return False
        with path.open("rb") as handle:
            return handle.read(len(_LFS_POINTER)) == _LFS_POINTER
    except OSError:
        return False


def _weight_files(hf_dir: Path) -> tuple[Path, ...]:
    """The checkpoint's weight files; raise `ModelError` if they are missing or incomplete."""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = hf_dir / index_name
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text("utf-8"))["weight_map"].values()))
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ModelError(f"{index} is not a valid weight index: {exc}") from None
            missing = [s for s in shards if not (hf_dir / s).is_file()]
            if missing:
                raise ModelError(
                    f"{hf_dir} is incomplete: {len(missing)} of {len(shards)} weight files "
                    f"listed in {index_name} are missing (first: {missing[0]})"
                )
            return tuple(hf_dir / s for s in shards)
    for pattern in ("*.safetensors", "pytorch_model*.bin"):
        files = sorted(hf_dir.glob(pattern))
        if files:
            return tuple(files)
    if (hf_dir / "params.json").is_file() and any(hf_dir.glob("consolidated.*.pth")):
        raise ModelError(
            f"{hf_dir} is Meta's original LLaMA format: convert it to the Hugging Face format "
            "first (transformers' convert_llama_weights_to_hf.py)"
        )
    raise ModelError(
        f"{hf_dir} has no model weights (*.safetensors or pytorch_model*.bin): "
        "download the whole checkpoint"
    )


def read_checkpoint(hf_dir: Path) -> Checkpoint:
    """Check that `hf_dir` is a complete Hugging Face LLaMA checkpoint, without loading it.

    Raises `ModelError` with a one-line message when it is missing, not a LLaMA model, or lacks
    its weights or tokenizer.
    """
    hf_dir = Path(hf_dir)
    if not hf_dir.exists():
        raise ModelError(f"{hf_dir} does not exist: give the Hugging Face model directory")
    if not hf_dir.is_dir():
        raise ModelError(f"{hf_dir} is not a directory: give the Hugging Face model directory")
    config_path = hf_dir / "config.json"
    if not config_path.is_file():
        raise ModelError(f"{hf_dir} has no config.json: it is not a Hugging Face model directory")
    try:
        config = json.loads(config_path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{config_path} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise ModelError(f"{config_path} is not a JSON object")
    model_type = config.get("model_type")
    architectures = config.get("architectures") or []
    if model_type != "llama" or (architectures and "LlamaForCausalLM" not in architectures):
        what = f"model_type {model_type!r}" + (
            f", architectures {', '.join(map(str, architectures))}" if architectures else ""
        )
        raise ModelError(
            f"{hf_dir} is not a LLaMA checkpoint ({what}): airoboros-bot converts LLaMA "
            "models such as airoboros-7b-gpt4"
        )
    required = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
    missing = [key for key in (*required, "vocab_size") if not isinstance(config.get(key), int)]
    if missing:
        raise ModelError(f"{config_path} lacks {', '.join(missing)}: is it a whole LLaMA config?")
    weights = _weight_files(hf_dir)
    if not any((hf_dir / name).is_file() for name in (TOKENIZER_FILE, SENTENCEPIECE_FILE)):
        raise ModelError(f"{hf_dir} has no tokenizer (tokenizer.model or {TOKENIZER_FILE})")
    for path in (*weights, hf_dir / SENTENCEPIECE_FILE, hf_dir / TOKENIZER_FILE):
        if path.is_file() and _is_lfs_pointer(path):
            raise ModelError(
                f"{path} is a Git LFS pointer, not the file itself: run `git lfs pull` in {hf_dir}"
            )
    return Checkpoint(hf_dir, config, weights)
