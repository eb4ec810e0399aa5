"""Convert a Hugging Face LLaMA checkpoint (airoboros-7b-gpt4) into a model directory.

`convert` wraps CTranslate2's `TransformersConverter` and adds what the worker needs beside
`model.bin`: the model's own tokenizer as `tokenizer.json` (built from the sentencepiece
`tokenizer.model` when the checkpoint has no `tokenizer.json`), the original tokenizer files,
and a manifest (`airoboros.json`) the worker checks on load. Everything is written into a
temporary sibling directory and renamed into place at the end, so a failed or interrupted
conversion leaves nothing half-written. torch and transformers are imported only here, and
only when a conversion runs (the `convert` extra).
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airoboros_bot.engine.errors import ModelError
from airoboros_bot.engine.model.manifest import MANIFEST_FILE
from airoboros_bot.engine.tokenizer import TOKENIZER_FILE, Tokenizer

QUANTIZATIONS = ("int8", "int8_float16", "float16", "float32")
BUILDER = "airoboros-bot convert"
BUILDER_VERSION = 1
EXTRA_HINT = "install the converter extra: pip install '.[convert]'"
# Tokenizer files copied as they are, beside the tokenizer.json the worker reads.
TOKENIZER_COPIES = (
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
)
TICK_S = 15.0  # how often a long stage reports that it is still running
STAGES = 7
_BYTES_PER_WEIGHT = {"int8": 1, "int8_float16": 1, "float16": 2, "float32": 4}
_LFS_POINTER = b"version https://git-lfs"
# Sample text for comparing tokenizer.json with the sentencepiece model it was built from.
_TOKENIZER_SAMPLE = (
    "A chat between a curious user and an assistant. USER: What color are blueberries?\n"
    "Über 2023 — naïve café, 3.14 😀 ASSISTANT:"
)

Progress = Callable[[str], None]


def _print_progress(line: str) -> None:
    print(f"convert: {line}", file=sys.stderr, flush=True)


# -- the source checkpoint -------------------------------------------------------------------


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
    if not any((hf_dir / name).is_file() for name in (TOKENIZER_FILE, "tokenizer.model")):
        raise ModelError(f"{hf_dir} has no tokenizer (tokenizer.model or {TOKENIZER_FILE})")
    for path in (*weights, hf_dir / "tokenizer.model", hf_dir / TOKENIZER_FILE):
        if path.is_file() and _is_lfs_pointer(path):
            raise ModelError(
                f"{path} is a Git LFS pointer, not the file itself: run `git lfs pull` in {hf_dir}"
            )
    return Checkpoint(hf_dir, config, weights)


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
            f"{_size(needed)}, {_size(free)} free"
        )


def _size(num_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if num_bytes < 1000 or unit == "GB":
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1000
    raise AssertionError("unreachable")


# -- dependencies ----------------------------------------------------------------------------


def _require(modules: tuple[str, ...], purpose: str) -> None:
    for module in modules:
        try:
            __import__(module)
        except ImportError as exc:
            raise ModelError(
                f"{purpose} needs {module.split('.')[0]}, which is not installed: {EXTRA_HINT}"
            ) from exc


# -- progress --------------------------------------------------------------------------------


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s"


class _Progress:
    """Numbered stage lines, and a line every `tick_s` while a long stage runs."""

    def __init__(self, emit: Progress, *, tick_s: float) -> None:
        self._emit = emit
        self._tick_s = tick_s
        self._number = 0
        self._stage = ""
        self._stage_started = self._started = time.monotonic()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._ticker: threading.Thread | None = None

    def stage(self, text: str) -> None:
        with self._lock:
            self._number += 1
            self._stage, self._stage_started = text, time.monotonic()
        self._emit(f"[{self._number}/{STAGES}] {text}")

    def note(self, text: str) -> None:
        self._emit(f"      {text}")

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    @contextmanager
    def ticking(self) -> Iterator[None]:
        self._ticker = threading.Thread(target=self._tick, name="convert-progress", daemon=True)
        self._ticker.start()
        try:
            yield
        finally:
            self._stopped.set()
            self._ticker.join()

    def _tick(self) -> None:
        while not self._stopped.wait(self._tick_s):
            with self._lock:
                stage, since = self._stage, time.monotonic() - self._stage_started
            self._emit(f"      ... still {stage} ({_duration(since)})")


# -- the tokenizer ---------------------------------------------------------------------------


@dataclass
class _PreparedTokenizer:
    backend: Any  # tokenizers.Tokenizer
    legacy: bool | None  # the sentencepiece conversion's `legacy` setting; None: shipped file


def _special_token(config: dict[str, Any], name: str, default: str) -> str:
    value = config.get(name)
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else default


def _prepare_tokenizer(checkpoint: Checkpoint, progress: _Progress) -> _PreparedTokenizer:
    """The checkpoint's tokenizer as a `tokenizers.Tokenizer` that adds BOS like LLaMA's.

    A shipped tokenizer.json is used as it is (transformers 5 would rebuild a LlamaTokenizer's
    pipeline its own way). Otherwise transformers converts the sentencepiece tokenizer.model.
    """
    from tokenizers import AddedToken, normalizers, processors
    from tokenizers import Tokenizer as HFTokenizer

    hf_dir = checkpoint.path
    names = _read_json(hf_dir / "special_tokens_map.json") | _read_json(
        hf_dir / "tokenizer_config.json"
    )
    legacy: bool | None = None
    try:
        if (hf_dir / TOKENIZER_FILE).is_file():
            backend = HFTokenizer.from_file(str(hf_dir / TOKENIZER_FILE))
        else:
            from transformers import AutoTokenizer

            # LLaMA-1 fine-tunes (airoboros-7b-gpt4 included) were trained with sentencepiece's
            # "legacy" behaviour, which transformers 4 kept by default: every piece of text
            # between special tokens starts with "▁" (</s>USER -> </s> ▁US ER). transformers 5
            # defaults to legacy=False; keep what the model saw unless the checkpoint says so.
            legacy = bool(_read_json(hf_dir / "tokenizer_config.json").get("legacy", True))
            backend = AutoTokenizer.from_pretrained(str(hf_dir), legacy=legacy).backend_tokenizer
            if legacy:  # transformers 4's LLaMA pipeline, which splits text as sentencepiece
                backend.normalizer = normalizers.Sequence(
                    [normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]
                )
                backend.pre_tokenizer = None
    except Exception as exc:
        raise ModelError(f"cannot read the tokenizer of {hf_dir}: {_one_line(exc)}") from exc
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
    _compare_with_sentencepiece(checkpoint, backend, progress)
    return _PreparedTokenizer(backend, legacy)


def _compare_with_sentencepiece(checkpoint: Checkpoint, backend: Any, progress: _Progress) -> None:
    """Warn if tokenizer.json splits a sample text unlike the sentencepiece model."""
    model_file = checkpoint.path / "tokenizer.model"
    if not model_file.is_file():
        return
    try:
        import sentencepiece
    except ImportError:
        return
    try:
        processor = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
        expected = processor.encode(_TOKENIZER_SAMPLE, out_type=str)
    except Exception as exc:
        progress.note(f"warning: cannot read {model_file} to compare: {_one_line(exc)}")
        return
    got = backend.encode(_TOKENIZER_SAMPLE, add_special_tokens=False).tokens
    if got != expected:
        at = next((i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b), None)
        at = at if at is not None else min(len(got), len(expected))
        progress.note(
            f"warning: {TOKENIZER_FILE} splits text unlike tokenizer.model "
            f"(from token {at}: {got[at : at + 3]} vs {expected[at : at + 3]})"
        )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _check_vocabulary(model_dir: Path, backend: Any, checkpoint: Checkpoint) -> int:
    """Ids must mean the same tokens in CTranslate2's vocabulary and in tokenizer.json."""
    path = model_dir / "vocabulary.json"
    if not path.is_file():  # a CTranslate2 version that stores it elsewhere: nothing to compare
        return checkpoint.vocab_size
    vocabulary = json.loads(path.read_text("utf-8"))
    for token_id, token in enumerate(vocabulary[: backend.get_vocab_size(with_added_tokens=True)]):
        if backend.id_to_token(token_id) != token:
            raise ModelError(
                f"the converted vocabulary and the tokenizer disagree at id {token_id} "
                f"({token!r} vs {backend.id_to_token(token_id)!r})"
            )
    return len(vocabulary)


# -- the conversion --------------------------------------------------------------------------


def _staged_converter(progress: _Progress, checkpoint: Checkpoint, quantization: str) -> Any:
    """A `TransformersConverter` that reports each stage of its `convert`."""
    from ctranslate2.converters import TransformersConverter

    class _Spec:
        """Delegates to the model spec, reporting the stages `Converter.convert` runs."""

        def __init__(self, spec: Any) -> None:
            self._spec = spec

        def __getattr__(self, name: str) -> Any:
            return getattr(self._spec, name)

        def optimize(self, quantization: str | None = None) -> None:
            progress.stage(f"quantizing the weights to {quantization}")
            self._spec.optimize(quantization=quantization)

        def save(self, output_dir: str) -> None:
            progress.stage("writing model.bin")
            self._spec.save(output_dir)

    class StagedConverter(TransformersConverter):
        def load_model(self, model_class: Any, model_name_or_path: str, **kwargs: Any) -> Any:
            dtype = "float16" if self._load_as_float16 else "the checkpoint's dtype"
            progress.stage(f"loading the weights ({dtype}) from {checkpoint.path}")
            return super().load_model(model_class, model_name_or_path, **kwargs)

        def load_tokenizer(self, tokenizer_class: Any, model_name_or_path: str, **kw: Any) -> Any:
            tokenizer = super().load_tokenizer(tokenizer_class, model_name_or_path, **kw)
            progress.stage("converting the layers to CTranslate2's layout")
            return tokenizer

        def _load(self) -> Any:
            return _Spec(super()._load())

    return StagedConverter(
        str(checkpoint.path),
        load_as_float16=quantization != "float32",
        low_cpu_mem_usage=True,
    )


def _manifest(
    checkpoint: Checkpoint, tokenizer: _PreparedTokenizer, quantization: str, model_vocab: int
) -> dict[str, Any]:
    import ctranslate2
    import transformers

    return {
        "builder": BUILDER,
        "builder_version": BUILDER_VERSION,
        "demo": False,
        "source": checkpoint.source,
        "quantization": quantization,
        "vocab_size": tokenizer.backend.get_vocab_size(with_added_tokens=True),
        "model_vocab_size": model_vocab,
        "context_length": checkpoint.context_length,
        "hidden_size": checkpoint.hidden_size,
        "num_layers": checkpoint.num_layers,
        "num_heads": checkpoint.num_heads,
        "ffn_size": checkpoint.ffn_size,
        "parameters": checkpoint.parameter_count(),
        "tokenizer_legacy": tokenizer.legacy,
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
    directory that is not a LLaMA checkpoint, a missing torch/transformers, or a failed
    conversion; `out_dir` is then left as it was.
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
    if not (hf_dir / TOKENIZER_FILE).is_file():
        _require(("sentencepiece", "google.protobuf"), "reading tokenizer.model")
    parent = out_dir.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    _check_disk_space(parent, checkpoint, quantization)
    steps = _Progress(progress or _print_progress, tick_s=TICK_S)
    steps.stage(f"{hf_dir}: {checkpoint.describe()}")

    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.convert-", dir=parent))
    model_dir = staging / "model"
    try:
        with steps.ticking():
            steps.stage("reading the tokenizer")
            tokenizer = _prepare_tokenizer(checkpoint, steps)
            try:
                converter = _staged_converter(steps, checkpoint, quantization)
                converter.convert(str(model_dir), quantization=quantization, force=True)
            except MemoryError as exc:
                ram = checkpoint.parameter_count() * (4 if quantization == "float32" else 2)
                raise ModelError(
                    f"out of memory while converting {hf_dir}: loading it takes about "
                    f"{_size(ram)} of RAM"
                ) from exc
            except (ModelError, KeyboardInterrupt):
                raise
            except Exception as exc:
                raise ModelError(f"converting {hf_dir} failed: {_one_line(exc)}") from exc
            steps.stage(f"writing {TOKENIZER_FILE}, the tokenizer files and {MANIFEST_FILE}")
            tokenizer.backend.save(str(model_dir / TOKENIZER_FILE))
            for name in TOKENIZER_COPIES:
                if (hf_dir / name).is_file():
                    shutil.copy2(hf_dir / name, model_dir / name)
            model_vocab = _check_vocabulary(model_dir, tokenizer.backend, checkpoint)
            manifest = _manifest(checkpoint, tokenizer, quantization, model_vocab)
            (model_dir / MANIFEST_FILE).write_text(
                json.dumps(manifest, indent=2) + "\n", encoding="utf-8"
            )
        _move_into_place(model_dir, out_dir, force=force)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    steps.note(
        f"done: {out_dir} ({_size(_dir_size(out_dir))}, {quantization}) "
        f"in {_duration(steps.elapsed)}"
    )
    return out_dir


def _move_into_place(model_dir: Path, out_dir: Path, *, force: bool) -> None:
    """Rename the finished model to `out_dir`, replacing an old one only with `force`."""
    if out_dir.exists():
        if not force:
            raise ModelError(f"{out_dir} appeared while converting: use --force to replace it")
        stale = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(out_dir, stale)
        try:
            os.rename(model_dir, out_dir)
        except OSError:
            os.rename(stale, out_dir)  # put the old model back
            raise
        shutil.rmtree(stale, ignore_errors=True)
    else:
        os.rename(model_dir, out_dir)
