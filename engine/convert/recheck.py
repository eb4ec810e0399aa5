"""Check, or rebuild, the tokenizer of a model directory converted earlier.

`airoboros-bot convert --check-tokenizer MODEL_DIR` runs the conversion's tokenizer check on an
existing model: its `tokenizer.json` against the `tokenizer.model` copied beside it.
`--fix-tokenizer MODEL_DIR` rebuilds `tokenizer.json` from that `tokenizer.model` as a
conversion does today, checks it, and records the new build in the manifest: models converted
by an earlier version are repaired in a second, without the checkpoint or a new conversion.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from airoboros_bot.engine.convert.build_tokenizer import build_tokenizer
from airoboros_bot.engine.convert.check_texts import check_texts
from airoboros_bot.engine.convert.checkpoint import SENTENCEPIECE_FILE
from airoboros_bot.engine.convert.converter import tokenizer_manifest
from airoboros_bot.engine.convert.progress import one_line
from airoboros_bot.engine.convert.verify_tokenizer import (
    SentencePieceReference,
    TokenizerCheck,
    check_tokenizer,
    check_vocabulary,
    verify_built_tokenizer,
)
from airoboros_bot.engine.errors import ModelError
from airoboros_bot.engine.model.manifest import (
    FIX_TOKENIZER_HINT,
    broken_tokenizer_build,
    check_model_dir,
    read_manifest,
    write_manifest,
)
from airoboros_bot.engine.tokenizer import TOKENIZER_FILE


def _sentencepiece_of(model_dir: Path) -> Path:
    check_model_dir(model_dir)
    path = model_dir / SENTENCEPIECE_FILE
    if not path.is_file():
        raise ModelError(
            f"{model_dir} has no {SENTENCEPIECE_FILE} to check its {TOKENIZER_FILE} against "
            f"(its checkpoint shipped only {TOKENIZER_FILE}, which is used as it is)"
        )
    return path


def check_converted_tokenizer(model_dir: Path) -> TokenizerCheck:
    """Check `model_dir/tokenizer.json` against `model_dir/tokenizer.model` on `check_texts`.

    Raises `ModelError` if either is missing or unreadable; mismatches are in the result.
    """
    from tokenizers import Tokenizer as HFTokenizer

    model_dir = Path(model_dir)
    sentencepiece = _sentencepiece_of(model_dir)
    try:
        backend = HFTokenizer.from_file(str(model_dir / TOKENIZER_FILE))
    except Exception as exc:
        raise ModelError(
            f"{model_dir / TOKENIZER_FILE} is not a valid tokenizer file: {one_line(exc)}"
        ) from exc
    reference = SentencePieceReference(sentencepiece)
    return check_tokenizer(backend, reference, check_texts())


def check_or_explain(model_dir: Path) -> str:
    """`check_converted_tokenizer` as one line to print; `ModelError` with the fix if it fails."""
    model_dir = Path(model_dir)
    check = check_converted_tokenizer(model_dir)
    what = str(model_dir / TOKENIZER_FILE)
    hint = FIX_TOKENIZER_HINT.format(model_dir=model_dir)
    check.raise_if_failed(what, hint)
    broken = broken_tokenizer_build(read_manifest(model_dir))
    if broken:  # it passed, but the worker will refuse it until the manifest says otherwise
        return f"{check.summary(what)}; but {broken}: {hint}"
    return check.summary(what)


def fix_converted_tokenizer(model_dir: Path) -> TokenizerCheck:
    """Rebuild `model_dir/tokenizer.json` from `model_dir/tokenizer.model`, check it, and
    record the build in the manifest. Nothing is written unless the check passes."""
    model_dir = Path(model_dir)
    sentencepiece = _sentencepiece_of(model_dir)
    tokenizer = build_tokenizer(model_dir)  # prefers tokenizer.model over the old tokenizer.json
    check = verify_built_tokenizer(tokenizer, sentencepiece)
    check_vocabulary(model_dir, tokenizer.backend)
    tmp = model_dir / f".{TOKENIZER_FILE}.tmp"
    tokenizer.backend.save(str(tmp))
    tmp.replace(model_dir / TOKENIZER_FILE)
    manifest = read_manifest(model_dir) | tokenizer_manifest(tokenizer, check.texts)
    manifest["tokenizer_rebuilt_at"] = datetime.datetime.now(datetime.UTC).isoformat(
        timespec="seconds"
    )
    write_manifest(model_dir, manifest)
    return check
