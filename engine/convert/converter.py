"""Convert a Hugging Face LLaMA checkpoint (airoboros-7b-gpt4) into a model directory.

`convert` wraps CTranslate2's `TransformersConverter` and adds what the worker needs beside
`model.bin`: the model's own tokenizer as `tokenizer.json` (built from the SentencePiece
`tokenizer.model` and checked id for id against it, `build_tokenizer` and `verify_tokenizer`),
the original tokenizer files, and a manifest (`airoboros.json`) the worker checks on load.
Everything is written into a temporary sibling directory and renamed into place at the end, so a
failed or interrupted conversion leaves nothing half-written. torch and transformers are
imported only here, and only when a conversion runs (the `convert` extra).
"""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path
from typing import Any

from airoboros_bot.engine.convert.build_tokenizer import BuiltTokenizer, build_tokenizer
from airoboros_bot.engine.convert.checkpoint import SENTENCEPIECE_FILE, Checkpoint, read_checkpoint
from airoboros_bot.engine.convert.progress import Progress, Stages, duration, one_line, size
from airoboros_bot.engine.convert.progress import print_progress as _print_progress
from airoboros_bot.engine.convert.verify_tokenizer import check_vocabulary, verify_built_tokenizer
from airoboros_bot.engine.errors import ModelError
from airoboros_bot.engine.model.atomic import move_into_place, staging_dir
from airoboros_bot.engine.model.manifest import (
    CONVERT_BUILDER,
    MANIFEST_FILE,
    TOKENIZER_BUILD,
    write_manifest,
)
from airoboros_bot.engine.tokenizer import TOKENIZER_FILE

QUANTIZATIONS = ("int8", "int8_float16", "float16", "float32")
BUILDER_VERSION = 2
EXTRA_HINT = "install the converter extra: pip install '.[convert]'"
# Tokenizer files copied as they are, beside the tokenizer.json the worker reads.
TOKENIZER_COPIES = (
    SENTENCEPIECE_FILE,
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
)
STAGES = 7
_BYTES_PER_WEIGHT = {"int8": 1, "int8_float16": 1, "float16": 2, "float32": 4}


# -- the output directory --------------------------------------------------------------------


def _looks_like_model_dir(path: Path) -> bool:
    """Whether --force may replace `path`: empty, or a converted model directory."""
    names = {p.name for p in path.iterdir()}
    return not names or "model.bin" in names or MANIFEST_FILE in names


def _check_out_dir(out_dir: Path, hf_dir: Path, *, force: bool) -> None:
    out, src = out_dir.resolve(), hf_dir.resolve()
    if out == src or out in src.parents:
        raise ModelError(f"OUT_DIR {out_dir} would overwrite the checkpoint in {hf_dir}")
    if not out_dir.exists() and not out_dir.is_symlink():
        return
    if not force:
        raise ModelError(f"{out_dir} already exists: use --force to replace it")
    if out_dir.is_symlink() or not out_dir.is_dir():
        raise ModelError(f"{out_dir} exists and is not a directory: remove it or pick another")
    if not _looks_like_model_dir(out_dir):
        raise ModelError(
            f"{out_dir} exists and is not a converted model (no model.bin): "
            "refusing to replace it even with --force; pick another directory"
        )


def _check_disk_space(parent: Path, checkpoint: Checkpoint, quantization: str) -> None:
    needed = checkpoint.parameter_count() * _BYTES_PER_WEIGHT[quantization]
    free = shutil.disk_usage(parent).free
    if needed + 64 * 2**20 > free:
        raise ModelError(
            f"not enough disk space in {parent}: the {quantization} model needs about "
            f"{size(needed)}, {size(free)} free"
        )


def _require(modules: tuple[str, ...], purpose: str) -> None:
    for module in modules:
        try:
            __import__(module)
        except ImportError as exc:
            raise ModelError(
                f"{purpose} needs {module.split('.')[0]}, which is not installed: {EXTRA_HINT}"
            ) from exc


# -- the tokenizer ---------------------------------------------------------------------------


def _prepare_tokenizer(checkpoint: Checkpoint, steps: Stages) -> tuple[BuiltTokenizer, int]:
    """The tokenizer to write, checked against tokenizer.model; and the number of texts checked."""
    tokenizer = build_tokenizer(checkpoint.path)
    if tokenizer.source != SENTENCEPIECE_FILE:
        steps.note(f"using the checkpoint's {TOKENIZER_FILE} as it is (no {SENTENCEPIECE_FILE})")
        return tokenizer, 0
    check = verify_built_tokenizer(tokenizer, checkpoint.path / SENTENCEPIECE_FILE)
    steps.note(check.summary(f"{TOKENIZER_FILE} (from {SENTENCEPIECE_FILE})"))
    return tokenizer, check.texts


def tokenizer_manifest(tokenizer: BuiltTokenizer, checked_texts: int) -> dict[str, Any]:
    """The manifest entries that describe how tokenizer.json was built and checked."""
    return {
        "vocab_size": tokenizer.backend.get_vocab_size(with_added_tokens=True),
        "tokenizer_build": TOKENIZER_BUILD,
        "tokenizer_source": tokenizer.source,
        "tokenizer_legacy": tokenizer.legacy,
        "tokenizer_checked_texts": checked_texts,
    }


# -- the conversion --------------------------------------------------------------------------


def _staged_converter(steps: Stages, checkpoint: Checkpoint, quantization: str) -> Any:
    """A `TransformersConverter` that reports each stage of its `convert`."""
    from ctranslate2.converters import TransformersConverter

    class _Spec:
        """Delegates to the model spec, reporting the stages `Converter.convert` runs."""

        def __init__(self, spec: Any) -> None:
            self._spec = spec

        def __getattr__(self, name: str) -> Any:
            return getattr(self._spec, name)

        def optimize(self, quantization: str | None = None) -> None:
            steps.stage(f"quantizing the weights to {quantization}")
            self._spec.optimize(quantization=quantization)

        def save(self, output_dir: str) -> None:
            steps.stage("writing model.bin")
            self._spec.save(output_dir)

    class StagedConverter(TransformersConverter):
        def load_model(self, model_class: Any, model_name_or_path: str, **kwargs: Any) -> Any:
            dtype = "float16" if self._load_as_float16 else "the checkpoint's dtype"
            steps.stage(f"loading the weights ({dtype}) from {checkpoint.path}")
            return super().load_model(model_class, model_name_or_path, **kwargs)

        def load_tokenizer(self, tokenizer_class: Any, model_name_or_path: str, **kw: Any) -> Any:
            tokenizer = super().load_tokenizer(tokenizer_class, model_name_or_path, **kw)
            steps.stage("converting the layers to CTranslate2's layout")
            return tokenizer

        def _load(self) -> Any:
            return _Spec(super()._load())

    return StagedConverter(
        str(checkpoint.path),
        load_as_float16=quantization != "float32",
        low_cpu_mem_usage=True,
    )


def _manifest(
    checkpoint: Checkpoint,
    tokenizer: BuiltTokenizer,
    checked_texts: int,
    quantization: str,
    model_vocab: int,
) -> dict[str, Any]:
    import ctranslate2
    import transformers

    return {
        "builder": CONVERT_BUILDER,
        "builder_version": BUILDER_VERSION,
        "demo": False,
        "source": checkpoint.source,
        "quantization": quantization,
        **tokenizer_manifest(tokenizer, checked_texts),
        "model_vocab_size": model_vocab,
        "context_length": checkpoint.context_length,
        "hidden_size": checkpoint.hidden_size,
        "num_layers": checkpoint.num_layers,
        "num_heads": checkpoint.num_heads,
        "ffn_size": checkpoint.ffn_size,
        "parameters": checkpoint.parameter_count(),
        "ctranslate2_version": ctranslate2.__version__,
        "transformers_version": transformers.__version__,
        "converted_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def convert(
    hf_dir: Path,
    out_dir: Path,
    *,
    quantization: str = "int8",
    force: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Convert the Hugging Face LLaMA checkpoint in `hf_dir` into `out_dir`; return `out_dir`.

    `quantization` is one of `QUANTIZATIONS` (int8 for CPU, int8_float16 for GPU; float32
    keeps the weights exact). `force` replaces an existing converted model in `out_dir`.
    Stage lines go to `progress` (default: stderr). Raises `ModelError` (one line) for a
    directory that is not a LLaMA checkpoint, a missing torch/transformers, a tokenizer that
    does not give SentencePiece's ids, or a failed conversion; `out_dir` is then left as it was.
    """
    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    if quantization not in QUANTIZATIONS:
        raise ModelError(
            f"unknown quantization {quantization!r}: choose one of {', '.join(QUANTIZATIONS)}"
        )
    # Everything that can be checked quickly is checked before the first line of output.
    checkpoint = read_checkpoint(hf_dir)
    _check_out_dir(out_dir, hf_dir, force=force)
    _require(("torch", "transformers"), "converting a model")
    if (hf_dir / SENTENCEPIECE_FILE).is_file():
        _require(("sentencepiece", "google.protobuf"), f"reading {SENTENCEPIECE_FILE}")
    parent = out_dir.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    _check_disk_space(parent, checkpoint, quantization)
    steps = Stages(progress or _print_progress, total=STAGES)
    steps.stage(f"{hf_dir}: {checkpoint.describe()}")

    with staging_dir(out_dir, "convert") as staging:
        model_dir = staging / "model"
        with steps.ticking():
            if (hf_dir / SENTENCEPIECE_FILE).is_file():
                steps.stage(f"building the tokenizer, checked against {SENTENCEPIECE_FILE}")
            else:
                steps.stage(f"reading the tokenizer ({TOKENIZER_FILE})")
            tokenizer, checked_texts = _prepare_tokenizer(checkpoint, steps)
            try:
                converter = _staged_converter(steps, checkpoint, quantization)
                converter.convert(str(model_dir), quantization=quantization, force=True)
            except MemoryError as exc:
                ram = checkpoint.parameter_count() * (4 if quantization == "float32" else 2)
                raise ModelError(
                    f"out of memory while converting {hf_dir}: loading it takes about "
                    f"{size(ram)} of RAM"
                ) from exc
            except (ModelError, KeyboardInterrupt):
                raise
            except Exception as exc:
                raise ModelError(f"converting {hf_dir} failed: {one_line(exc)}") from exc
            steps.stage(f"writing {TOKENIZER_FILE}, the tokenizer files and {MANIFEST_FILE}")
            tokenizer.backend.save(str(model_dir / TOKENIZER_FILE))
            for name in TOKENIZER_COPIES:
                if (hf_dir / name).is_file():
                    shutil.copy2(hf_dir / name, model_dir / name)
            model_vocab = check_vocabulary(model_dir, tokenizer.backend) or checkpoint.vocab_size
            manifest = _manifest(checkpoint, tokenizer, checked_texts, quantization, model_vocab)
            write_manifest(model_dir, manifest)
        try:
            move_into_place(model_dir, out_dir, replace=force)
        except FileExistsError:
            raise ModelError(
                f"{out_dir} appeared while converting: use --force to replace it"
            ) from None
    steps.note(
        f"done: {out_dir} ({size(_dir_size(out_dir))}, {quantization}) in {duration(steps.elapsed)}"
    )
    return out_dir
