"""A model directory's files and its manifest (`airoboros.json`), for converted and demo models.

`airoboros-bot convert` and the demo builder write the manifest; the worker reads it when it
loads a model and refuses one whose files disagree with it, or whose tokenizer was built by a
converter known to split text unlike the model's SentencePiece tokenizer.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from airoboros_bot.engine.errors import CONVERT_HINT, ModelError
from airoboros_bot.engine.tokenizer import TOKENIZER_FILE, Tokenizer

MANIFEST_FILE = "airoboros.json"
MODEL_FILES = ("model.bin", "config.json", "vocabulary.json", TOKENIZER_FILE)
"""The files every model directory needs: CTranslate2's weights, config and vocabulary, and the
model's tokenizer."""
CONVERT_BUILDER = "airoboros-bot convert"
TOKENIZER_BUILD = 2
"""Version of the converter's tokenizer.json build, recorded as `tokenizer_build`.

1 (no `tokenizer_build` key): transformers rebuilt the LLaMA tokenizer; with transformers 5 its
BPE merges are ordered by token id instead of SentencePiece score, which splits runs of spaces
and most words unlike SentencePiece. 2: merges from the SentencePiece scores, verified on a
corpus before the model is written.
"""
FIX_TOKENIZER_HINT = "rebuild it in place with `airoboros-bot convert --fix-tokenizer {model_dir}`"

log = logging.getLogger(__name__)


def read_manifest(model_dir: Path) -> dict[str, Any]:
    """The model directory's manifest, or {} if there is none or it is not a JSON object."""
    try:
        data = json.loads((Path(model_dir) / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_manifest(model_dir: Path, manifest: dict[str, Any]) -> None:
    """Write `manifest` into `model_dir` (a temporary file renamed over the old one)."""
    path = Path(model_dir) / MANIFEST_FILE
    tmp = path.with_name(f".{MANIFEST_FILE}.tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def check_model_dir(model_dir: Path) -> None:
    """Raise `ModelError` naming what is missing if `model_dir` is not a model directory."""
    if not model_dir.exists():
        raise ModelError(f"model directory {model_dir} does not exist: {CONVERT_HINT}")
    if not model_dir.is_dir():
        raise ModelError(f"model path {model_dir} is not a directory: {CONVERT_HINT}")
    missing = [name for name in MODEL_FILES if not (model_dir / name).is_file()]
    if missing:
        raise ModelError(f"model directory {model_dir} has no {', '.join(missing)}: {CONVERT_HINT}")


def _major(version: object) -> int | None:
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        return None


def _tokenizer_built_by_transformers(manifest: dict[str, Any]) -> bool:
    """A conversion before `tokenizer_build` 2 that let transformers rebuild tokenizer.json
    from tokenizer.model (`tokenizer_legacy` set; None means the checkpoint's own file)."""
    return (
        manifest.get("builder") == CONVERT_BUILDER
        and "tokenizer_build" not in manifest
        and manifest.get("tokenizer_legacy") is not None
    )


def broken_tokenizer_build(manifest: dict[str, Any]) -> str | None:
    """Why the manifest's tokenizer.json cannot be trusted, or None if nothing is known wrong.

    The known broken build: transformers 5 rebuilt it (`_tokenizer_built_by_transformers`),
    with its BPE merges in token-id order.
    """
    transformers = manifest.get("transformers_version")
    major = _major(transformers)
    if not _tokenizer_built_by_transformers(manifest) or major is None or major < 5:
        return None
    return (
        f"its {TOKENIZER_FILE} was built by an earlier airoboros-bot convert with transformers "
        f"{transformers}, whose BPE merges split text unlike the model's SentencePiece "
        "tokenizer (double and leading spaces, indented code, many words)"
    )


def check_manifest(model_dir: Path, tokenizer: Tokenizer) -> dict[str, Any]:
    """The model's manifest, checked against its tokenizer.

    A directory without one still loads (with a warning); a manifest that is not a JSON object,
    that disagrees with `tokenizer.json`, or that shows a broken tokenizer build raises
    `ModelError` saying how to fix it.
    """
    path = model_dir / MANIFEST_FILE
    if not path.is_file():
        log.warning(
            "%s has no %s, so it is loaded unchecked: %s", model_dir, MANIFEST_FILE, CONVERT_HINT
        )
        return {}
    manifest = read_manifest(model_dir)
    if not manifest:
        raise ModelError(f"{path} is not a valid manifest (a JSON object): {CONVERT_HINT}")
    vocab_size = manifest.get("vocab_size")
    if vocab_size is not None and vocab_size != tokenizer.vocab_size:
        raise ModelError(
            f"{model_dir}: {TOKENIZER_FILE} has {tokenizer.vocab_size} tokens but {MANIFEST_FILE} "
            f"says {vocab_size}: its files come from different conversions; {CONVERT_HINT}"
        )
    context_length = manifest.get("context_length")
    if context_length is not None and (
        not isinstance(context_length, int)
        or isinstance(context_length, bool)
        or context_length < 1
    ):
        raise ModelError(f"{path} has an invalid context_length {context_length!r}: {CONVERT_HINT}")
    broken = broken_tokenizer_build(manifest)
    if broken:
        hint = FIX_TOKENIZER_HINT.format(model_dir=model_dir)
        raise ModelError(f"{model_dir}: {broken}; {hint}")
    if _tokenizer_built_by_transformers(manifest):
        log.warning(
            "%s: its %s was built by transformers %s and never checked against the model's "
            "SentencePiece tokenizer: run `airoboros-bot convert --check-tokenizer %s`",
            model_dir,
            TOKENIZER_FILE,
            manifest.get("transformers_version", "(unknown version)"),
            model_dir,
        )
    return manifest
