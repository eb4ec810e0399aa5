"""Token generation with CTranslate2: the only module that runs a ctranslate2 model."""

from __future__ import annotations

import atexit
import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ctranslate2

from airoboros_bot.engine.errors import ModelError
from airoboros_bot.engine.model.manifest import check_manifest, check_model_dir
from airoboros_bot.engine.tokenizer import Tokenizer

OnToken = Callable[[int, int], bool]
"""on_token(batch_index, token_id) -> True to stop that item."""


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings of one batch (CTranslate2 applies them batch-wide); hashable.

    temperature 0 means greedy decoding; top_k 0 means no top-k cut.
    """

    temperature: float = 0.7
    top_k: int = 40
    top_p: float = 0.9
    repetition_penalty: float = 1.1

    def __post_init__(self) -> None:
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise ValueError("temperature must be >= 0")
        if self.top_k < 0:
            raise ValueError("top_k must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if not (math.isfinite(self.repetition_penalty) and self.repetition_penalty > 0):
            raise ValueError("repetition_penalty must be > 0")

    @property
    def greedy(self) -> bool:
        """Whether this is greedy decoding (temperature 0)."""
        return self.temperature == 0

    def ct2_options(self) -> dict[str, float | int]:
        """The matching keyword arguments of `ctranslate2.Generator.generate_batch`."""
        if self.greedy:
            topk, topp, temperature = 1, 1.0, 1.0
        else:
            topk, topp, temperature = self.top_k, self.top_p, self.temperature
        return {
            "sampling_topk": topk,
            "sampling_topp": topp,
            "sampling_temperature": temperature,
            "repetition_penalty": self.repetition_penalty,
        }


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


_open_generators: weakref.WeakSet[Generator] = weakref.WeakSet()


@atexit.register
def _close_open_generators() -> None:
    # A CTranslate2 generator that ran a Python step callback and is still alive when the
    # interpreter finalizes can abort the process ("terminate called without an active
    # exception"); releasing it before finalization avoids that.
    for generator in list(_open_generators):
        generator.close()


class Generator:
    """A CTranslate2 LLaMA model and its tokenizer, generating token ids for prompt batches."""

    def __init__(
        self,
        model_dir: Path,
        *,
        device: str = "auto",
        device_index: list[int] | int = 0,
        compute_type: str = "auto",
        inter_threads: int = 1,
        intra_threads: int = 0,
    ) -> None:
        self.model_dir = Path(model_dir)
        check_model_dir(self.model_dir)
        self.tokenizer = Tokenizer.from_dir(self.model_dir)
        self.manifest: dict = check_manifest(self.model_dir, self.tokenizer)
        if device == "auto":
            device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
        if compute_type == "auto":
            compute_type = "int8_float16" if device == "cuda" else "int8"
        try:
            self._ct2: ctranslate2.Generator | None = ctranslate2.Generator(
                str(self.model_dir),
                device=device,
                device_index=device_index,
                compute_type=compute_type,
                inter_threads=inter_threads,
                intra_threads=intra_threads,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelError(
                f"cannot load the model in {self.model_dir} on {device} ({compute_type}): "
                f"{_one_line(exc)}"
            ) from exc
        self.device: str = device
        self.compute_type: str = self._ct2.compute_type  # as resolved by CTranslate2
        _open_generators.add(self)

    def close(self) -> None:
        """Release the model (memory, threads). Later `generate` calls raise `ModelError`."""
        self._ct2 = None
        _open_generators.discard(self)

    @property
    def is_demo(self) -> bool:
        """Whether this is the built-in random-weight demo model."""
        return bool(self.manifest.get("demo"))

    def describe(self) -> str:
        """One line for logs and banners, e.g. "demo model (random weights) on cpu, int8"."""
        what = "demo model (random weights)" if self.is_demo else f"model {self.model_dir.name}"
        return f"{what} on {self.device}, {self.compute_type}"

    def generate(
        self,
        prompts: list[list[str]],
        max_new_tokens: list[int],
        sampling: SamplingParams,
        on_token: OnToken | None = None,
        seed: int | None = None,
    ) -> list[list[int]]:
        """Generate for a batch of prompts (token strings from `Tokenizer.encode_prompt`).

        Runs one `generate_batch` call. `on_token(i, token_id)` is called from CTranslate2's
        thread for each new token of item i, in order, EOS excluded; returning True stops that
        item only. Returns each item's new token ids (no prompt, no EOS), at most
        `max_new_tokens[i]` of them.

        `seed` calls `ctranslate2.set_random_seed`. CTranslate2 seeds each of its threads once,
        at its first sampling, so a seed makes a fresh process reproducible, not each call.
        """
        if len(prompts) != len(max_new_tokens):
            raise ValueError("prompts and max_new_tokens differ in length")
        if not prompts:
            return []
        if any(n < 1 for n in max_new_tokens):
            raise ValueError("max_new_tokens must be >= 1")
        if any(not p for p in prompts):
            raise ValueError("a prompt is empty (it needs at least the BOS token)")
        eos_id = self.tokenizer.eos_id
        counts = [0] * len(prompts)
        stopped = [False] * len(prompts)

        def step(result: ctranslate2.GenerationStepResult) -> bool:
            i = result.batch_id
            if stopped[i]:
                return True
            if result.token_id == eos_id:
                return False  # CTranslate2 ends this item itself
            counts[i] += 1
            stop = counts[i] >= max_new_tokens[i]
            if on_token is not None and on_token(i, result.token_id):
                stop = True
            stopped[i] = stop
            return stop

        ct2 = self._ct2
        if ct2 is None:
            raise ModelError(f"the model in {self.model_dir} was closed")
        if seed is not None:
            ctranslate2.set_random_seed(seed)
        results = ct2.generate_batch(
            prompts,
            max_length=max(max_new_tokens),
            end_token=self.tokenizer.eos_token,
            include_prompt_in_result=False,
            beam_size=1,
            callback=step,
            **sampling.ct2_options(),
        )
        out: list[list[int]] = []
        for result, limit in zip(results, max_new_tokens, strict=True):
            ids = [t for t in result.sequences_ids[0] if t != eos_id]
            out.append(ids[:limit])
        return out
