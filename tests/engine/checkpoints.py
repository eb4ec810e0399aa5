"""Test helpers: tiny random Hugging Face LLaMA checkpoints and the command line in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def save_tiny_llama(hf_dir: Path, vocab_size: int, *, seed: int = 0) -> None:
    """A tiny random LlamaForCausalLM (LLaMA-1 layout), saved as safetensors into `hf_dir`."""
    import torch
    import transformers

    config = transformers.LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=172,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=2048,
        rms_norm_eps=1e-6,
        initializer_range=0.2,  # spread logits: no near-ties for float rounding to flip
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(config).eval()
    model.save_pretrained(hf_dir, safe_serialization=True)
    config_path = hf_dir / "config.json"
    data = json.loads(config_path.read_text())
    data["_name_or_path"] = "tests/airoboros-tiny"  # as LLaMA-1 era checkpoints carry it
    config_path.write_text(json.dumps(data, indent=2))


def run_cli(
    *args: str, cwd: Path, prelude: str = "", stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m airoboros_bot ARGS`; with `prelude`, that code runs first in the interpreter."""
    command = [sys.executable, "-m", "airoboros_bot", *args]
    if prelude:
        main = "import sys; from airoboros_bot.bots.cli import main; sys.exit(main(sys.argv[1:]))"
        command = [sys.executable, "-c", prelude + main, *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIROBOROS_")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        command, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=240
    )
