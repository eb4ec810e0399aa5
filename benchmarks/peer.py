"""The peer baseline: Hugging Face transformers ``generate`` on the same LLaMA shape.

What ``fastchat.serve.cli`` runs for airoboros: ``LlamaForCausalLM.generate`` in float16 on a
GPU (float32 on a CPU, where float16 matmuls are not what anyone deploys), greedy, random
weights in the benchmark model's exact shape, the same prompts tokenized by the same tokenizer,
left-padded into one batch. ``min_new_tokens`` keeps every answer at its full length, as the
CTranslate2 models' end-of-sequence bias does.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import ModelShape


@dataclass(frozen=True)
class PeerRun:
    """One timed ``generate`` call."""

    tokens: int
    wall_s: float

    @property
    def tokens_per_s(self) -> float:
        """Aggregate throughput."""
        return self.tokens / self.wall_s


def peer_available(device: str) -> str | None:
    """None when torch and transformers can run on `device`, else why not (one line)."""
    for module in ("torch", "transformers"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed"
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            return "torch has no CUDA device"
    return None


class PeerModel:
    """A random-weight ``LlamaForCausalLM`` of `shape` on `device` (float16 on CUDA)."""

    def __init__(self, shape: ModelShape, model_dir: Path, device: str) -> None:
        import torch
        from tokenizers import Tokenizer
        from transformers import LlamaConfig, LlamaForCausalLM

        self._torch = torch
        self.device = device
        self.dtype = torch.float16 if device == "cuda" else torch.float32
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        config = LlamaConfig(
            vocab_size=shape.vocab_size,
            hidden_size=shape.hidden_size,
            intermediate_size=shape.ffn_size or 4 * shape.hidden_size,
            num_hidden_layers=shape.num_layers,
            num_attention_heads=shape.num_heads,
            num_key_value_heads=shape.num_heads,
            max_position_embeddings=2048,
            rms_norm_eps=1e-6,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=0,
        )
        torch.manual_seed(0)
        with torch.device(device):
            self._model = LlamaForCausalLM(config).to(self.dtype).eval()

    def batch(self, prompts: list[str], new_tokens: int) -> PeerRun:
        """One greedy ``generate`` of all prompts, each to exactly `new_tokens` new tokens."""
        torch = self._torch
        ids = [[1, *self._tokenizer.encode(p, add_special_tokens=False).ids] for p in prompts]
        width = max(map(len, ids))
        input_ids = torch.tensor([[0] * (width - len(i)) + i for i in ids], device=self.device)
        mask = torch.tensor(
            [[0] * (width - len(i)) + [1] * len(i) for i in ids], device=self.device
        )
        self._sync()
        started = time.perf_counter()
        with torch.inference_mode():
            out = self._model.generate(
                input_ids=input_ids,
                attention_mask=mask,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=0,
            )
        self._sync()
        wall = time.perf_counter() - started
        return PeerRun(int(out[:, width:].numel()), wall)

    def _sync(self) -> None:
        if self.device == "cuda":
            self._torch.cuda.synchronize()

    def close(self) -> None:
        """Release the model (and the GPU memory it cached)."""
        del self._model
        if self.device == "cuda":
            self._torch.cuda.empty_cache()
