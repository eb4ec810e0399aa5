"""Token generation with CTranslate2: the only module that runs a ctranslate2 model."""

from __future__ import annotations

import atexit
import ctypes
import logging
import math
import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import ctranslate2

from airoboros_bot.engine.cuda_libs import gpu_memory_mib, load_cublas
from airoboros_bot.engine.errors import ModelError
from airoboros_bot.engine.model.manifest import check_manifest, check_model_dir
from airoboros_bot.engine.tokenizer import Tokenizer

log = logging.getLogger(__name__)

OnToken = Callable[[int, int], bool]
"""on_token(batch_index, token_id) -> True to stop that item."""


@dataclass
class LiveTokens:
    """A running batch's token ids as they are made, for another thread to read.

    `Generator.generate` appends item i's new ids to ``ids[i]`` on CTranslate2's thread without
    calling back into the caller's code, and stops item i at its next step once ``stop[i]`` is
    set. Reading the lists from another thread is safe: appends and slices are atomic under the
    GIL. `on_first_token` (optional, on CTranslate2's thread) runs when any item gets its first
    token, so a reader can stream it at once.
    """

    ids: list[list[int]]
    stop: list[bool]
    on_first_token: Callable[[], object] | None = field(default=None, repr=False)

    @classmethod
    def for_batch(cls, size: int, on_first_token: Callable[[], object] | None = None) -> LiveTokens:
        """Empty lists and cleared stop flags for a batch of `size` items."""
        return cls([[] for _ in range(size)], [False] * size, on_first_token)


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


_thread_state = threading.local()  # lives as long as the calling thread's Python thread state


def _keep_thread_state() -> None:
    """Keep the calling native thread's Python thread state alive for the thread's lifetime.

    CTranslate2 calls the step callback from its own C++ threads through pybind11, which creates
    a Python thread state for every call and destroys it afterwards unless one already exists.
    That costs about 8 us per token (half of a tiny model's whole step on a CPU, and time the GPU
    waits for on a large one). One ``PyGILState_Ensure`` that is never released makes the state
    permanent, so later calls only take the GIL. Called from inside the callback; a thread-local
    mark (kept in that state) says it was done, even where a new thread reuses an old one's id.
    """
    if getattr(_thread_state, "kept", False):
        return
    ensure = getattr(getattr(ctypes, "pythonapi", None), "PyGILState_Ensure", None)
    if ensure is not None:  # CPython; elsewhere the callback just stays slower
        ensure()
        _thread_state.kept = True


TWO_BATCHES_GPU_MIB = 40 * 1024
"""GPU memory from which two batches run at once by default: the 7B's weights (6.7 GB in int8)
plus two batches' KV caches (16 sequences x 2,048 tokens x 0.5 MiB = 16 GiB each)."""


def default_inter_threads(device: str, device_index: int = 0) -> int:
    """Batches in flight when not configured (``inter_threads`` 0), by device.

    Two wherever they fit: CTranslate2 has no continuous batching, so with one batch in flight
    a new question waits for the longest answer of the running batch; a second replica (which
    shares the weights) starts it at once. ``benchmarks.serving`` measured it on a CPU: at 90%
    load the same throughput with time to first text p99 55 ms instead of 1.9 s. On a GPU two
    batches of 64 gave 6,706 tok/s against 5,120 for one (issue 13, one H200).
    """
    if device == "cuda":
        memory = gpu_memory_mib(device_index)
        return 2 if memory is not None and memory >= TWO_BATCHES_GPU_MIB else 1
    return 2 if (os.cpu_count() or 1) >= 2 else 1


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
        """Load the model; ``inter_threads`` 0 picks it by device (`default_inter_threads`),
        and on a CPU ``intra_threads`` 0 then shares the cores between the replicas."""
        self.model_dir = Path(model_dir)
        check_model_dir(self.model_dir)
        self.tokenizer = Tokenizer.from_dir(self.model_dir)
        self.manifest: dict = check_manifest(self.model_dir, self.tokenizer)
        if device == "auto":
            device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
        if compute_type == "auto":
            compute_type = "int8_float16" if device == "cuda" else "int8"
        if device == "cuda":
            log.info("cuBLAS 12 from %s", load_cublas())
        first_index = device_index[0] if isinstance(device_index, list) else device_index
        if inter_threads == 0:
            inter_threads = default_inter_threads(device, first_index)
        if device == "cpu" and intra_threads == 0 and inter_threads > 1:
            intra_threads = max(1, (os.cpu_count() or 1) // inter_threads)  # share the cores
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
        self.inter_threads: int = inter_threads
        """Batches this model runs at once (CTranslate2 replicas sharing the weights)."""
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
        *,
        live: LiveTokens | None = None,
    ) -> list[list[int]]:
        """Generate for a batch of prompts (token strings from `Tokenizer.encode_prompt`).

        Runs one `generate_batch` call. `on_token(i, token_id)` is called from CTranslate2's
        thread for each new token of item i, in order, EOS excluded; returning True stops that
        item only. Returns each item's new token ids (no prompt, no EOS), at most
        `max_new_tokens[i]` of them.

        `live` (instead of `on_token`) receives the ids as they are made with no Python call
        into the caller per token (see `LiveTokens`). The result is what the step callback
        saw: exactly `live`'s lists.

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
        if live is not None and (on_token is not None or len(live.ids) != len(prompts)):
            raise ValueError("live needs one list per prompt and no on_token")
        if live is None:
            live = LiveTokens.for_batch(len(prompts))
        step = self._step(live, max_new_tokens, on_token)
        ct2 = self._ct2
        if ct2 is None:
            raise ModelError(f"the model in {self.model_dir} was closed")
        if seed is not None:
            ctranslate2.set_random_seed(seed)
        ct2.generate_batch(
            prompts,
            max_length=max(max_new_tokens),
            end_token=self.tokenizer.eos_token,
            include_prompt_in_result=False,
            beam_size=1,
            callback=step,
            **sampling.ct2_options(),
        )
        return [list(ids) for ids in live.ids]  # the callback saw every token, in order

    def _step(
        self, live: LiveTokens, limits: list[int], on_token: OnToken | None
    ) -> Callable[[ctranslate2.GenerationStepResult], bool]:
        """The step callback: appends each token to its item's list in `live` and stops the item
        at its limit, when ``live.stop`` is set or when `on_token` says so. A few list
        operations per token beside `on_token` (the GPU waits for every callback of a step)."""
        eos_id = self.tokenizer.eos_id
        lists, stop, first_token = live.ids, live.stop, live.on_first_token
        first_call = [True]

        def step(result: ctranslate2.GenerationStepResult) -> bool:
            if first_call[0]:
                first_call[0] = False
                _keep_thread_state()
            i = result.batch_id
            if stop[i]:
                return True
            token = result.token_id
            if token == eos_id:
                return False  # CTranslate2 ends this item itself
            ids = lists[i]
            ids.append(token)
            if len(ids) == 1 and first_token is not None:
                first_token()
            if (on_token is not None and on_token(i, token)) or len(ids) >= limits[i]:
                stop[i] = True
            return stop[i]

        return step
