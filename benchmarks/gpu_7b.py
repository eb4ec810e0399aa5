"""Speed of an exact LLaMA-7B shape on a GPU, through the whole path and raw, side by side.

The model has random weights (speed does not depend on their values) in the exact shape of
LLaMA-7B: 32 layers, hidden 4096, FFN 11008, 32 heads, vocabulary 32000. It is built locally,
nothing downloaded, with the int8 weights written directly (int8 values and per-row scales, as
``spec.optimize(quantization="int8_float16")`` would store them) and the other weights in
float16, so the build needs about 7 GB of host memory and a minute. A -10,000 bias on the
``</s>`` logit makes every answer run to its full length.

Figures: tokens/s of one request alone (batch 1) and aggregate tokens/s of 64 concurrent
requests, each through client -> Redis -> worker -> reply streams and as one raw
``generate_batch``. ``ratio`` = path aggregate over raw aggregate. Goals on one H100: >= 150
tok/s at batch 1, >= 3,000 tok/s aggregate.

    python -m benchmarks.gpu_7b                    # CUDA, int8_float16, the 7B shape
    python -m benchmarks.gpu_7b --small            # a small shape on CPU (keeps the code tested)
    python -m benchmarks.gpu_7b --small --quick    # smoke test: tiny shape, 8 requests x 8 tokens
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import ctranslate2
import numpy as np
from ctranslate2.specs import common_spec

from airoboros_bot.engine.model.demo import (
    BUILDER,
    CONTEXT_LENGTH,
    DEMO_MANIFEST,
    llama_decoder_spec,
    train_demo_tokenizer,
)
from benchmarks.common import (
    NO_EOS_BIAS,
    EngineConfig,
    EngineGenerator,
    ModelShape,
    RawModel,
    Report,
    ask,
    bench_parser,
    cached_build,
    chat_prompts,
    concurrently,
    default_cache_dir,
    median,
    one_worker,
    run_benchmark,
    say,
    warm_up,
)

LLAMA_7B = ModelShape(
    hidden_size=4096, num_layers=32, num_heads=32, vocab_size=32000, ffn_size=11008
)
SMALL = ModelShape(hidden_size=256, num_layers=4, num_heads=4, vocab_size=32000, ffn_size=704)
TINY = ModelShape(hidden_size=128, num_layers=2, num_heads=4, vocab_size=2000, ffn_size=352)
GOAL_BATCH1_TOK_S = 150.0
GOAL_AGGREGATE_TOK_S = 3000.0
WEIGHT_STD = 0.02
INT8_STD = float(np.sqrt((255**2 - 1) / 12))  # std of int8 values uniform over [-127, 127]
STORED_AS = "int8_float16"
"""How the built model is stored: int8 weights, float16 for the rest (loads as any int8 type)."""


def build_random_llama(out_dir: Path, shape: ModelShape, *, seed: int = 0) -> Path:
    """Write a random-weight LLaMA-shaped model (int8 weights, float16 rest) to `out_dir`.

    Each int8 matrix is a slice of one random pool at a random offset, so no two layers share
    values (and none is aliased on save) while generating only a few hundred MB of random
    numbers even for 7B. Its tokenizer is the demo tokenizer padded to the vocabulary size.
    """
    if shape.hidden_size % shape.num_heads:
        raise ValueError("hidden_size must be a multiple of num_heads")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    hidden = shape.hidden_size
    ffn = shape.ffn_size or 4 * hidden
    tok = train_demo_tokenizer(shape.vocab_size)
    vocab = [tok.id_to_token(i) for i in range(tok.get_vocab_size())]
    rng = np.random.default_rng(seed)
    largest = max(3 * hidden * hidden, ffn * hidden, len(vocab) * hidden)
    pool = rng.integers(-127, 128, size=2 * largest, dtype=np.int8)
    scale = np.float32(INT8_STD / WEIGHT_STD)  # CTranslate2 dequantizes as value / scale

    def int8_weights(spec: common_spec.LinearSpec, rows: int, cols: int) -> None:
        start = int(rng.integers(0, pool.size - rows * cols + 1))
        spec.weight = pool[start : start + rows * cols].reshape(rows, cols).copy()
        spec.weight_scale = np.full(rows, scale, dtype=np.float32)

    def ones() -> np.ndarray:
        return np.ones(hidden, dtype=np.float16)

    spec = llama_decoder_spec(shape.num_layers, shape.num_heads)
    decoder = spec.decoder
    int8_weights(decoder.embeddings, len(vocab), hidden)
    decoder.layer_norm.gamma = ones()
    for layer in decoder.layer:
        layer.self_attention.layer_norm.gamma = ones()
        int8_weights(layer.self_attention.linear[0], 3 * hidden, hidden)  # fused q, k, v
        int8_weights(layer.self_attention.linear[1], hidden, hidden)
        layer.ffn.layer_norm.gamma = ones()
        int8_weights(layer.ffn.linear_0, ffn, hidden)  # gate
        int8_weights(layer.ffn.linear_0_noact, ffn, hidden)  # up
        int8_weights(layer.ffn.linear_1, hidden, ffn)  # down
    int8_weights(decoder.projection, len(vocab), hidden)
    bias = np.zeros(len(vocab), dtype=np.float16)
    bias[vocab.index("</s>")] = NO_EOS_BIAS
    decoder.projection.bias = bias
    spec.register_vocabulary(vocab)
    spec.config.bos_token = "<s>"
    spec.config.eos_token = "</s>"
    spec.config.unk_token = "<unk>"
    spec.config.layer_norm_epsilon = 1e-6
    spec.validate()
    spec.save(str(out_dir))
    tok.save(str(out_dir / "tokenizer.json"))
    manifest = {
        "builder": f"{BUILDER} benchmark",
        "demo": True,
        "source": "random weights (benchmark, LLaMA-shaped)",
        "quantization": STORED_AS,
        "vocab_size": len(vocab),
        "context_length": CONTEXT_LENGTH,
        "hidden_size": hidden,
        "num_layers": shape.num_layers,
        "num_heads": shape.num_heads,
        "ffn_size": ffn,
        "seed": seed,
        "eos_bias": NO_EOS_BIAS,
    }
    (out_dir / DEMO_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return out_dir


def ensure_llama_model(cache_dir: Path, shape: ModelShape) -> tuple[Path, float]:
    """The random LLaMA-shaped model of `shape`, built once into `cache_dir`."""
    return cached_build(
        cache_dir / f"llama-{shape.label}-{STORED_AS}-noeos",
        lambda out: build_random_llama(out, shape),
    )


def _parser() -> argparse.ArgumentParser:
    parser = bench_parser(
        "gpu_7b",
        "LLaMA-7B-shaped random model: batch-1 and 64-concurrent tokens/s, "
        "whole path beside raw generate_batch.",
        quick="with --small: tiny shape, 8 requests x 8 tokens",
    )
    parser.add_argument(
        "--small", action="store_true", help="a small shape on CPU instead of 7B on CUDA"
    )
    parser.add_argument("--device", choices=["cuda", "cpu"], default=None)
    parser.add_argument(
        "--compute-type", default=None, help="default: int8_float16 on CUDA, int8 on CPU"
    )
    parser.add_argument(
        "--concurrency", type=int, default=None, help="concurrent requests (default 64)"
    )
    parser.add_argument(
        "--new-tokens", type=int, default=None, help="tokens each (default 128; 64 with --small)"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="repeats of each measurement (default 3)"
    )
    return parser


async def _run(args: argparse.Namespace) -> Report:
    if args.quick and not args.small:
        raise SystemExit("gpu_7b: --quick goes with --small")
    shape = (TINY if args.quick else SMALL) if args.small else LLAMA_7B
    device = args.device or ("cpu" if args.small else "cuda")
    if device == "cuda" and ctranslate2.get_cuda_device_count() < 1:
        raise SystemExit(
            "gpu_7b: no CUDA device visible to CTranslate2; run `python -m benchmarks.gpu_7b "
            "--small` on CPU, or on a machine with an NVIDIA GPU"
        )
    compute_type = args.compute_type or ("int8_float16" if device == "cuda" else "int8")
    concurrency = args.concurrency or (8 if args.quick else 64)
    new_tokens = args.new_tokens or (8 if args.quick else 64 if args.small else 128)
    repeats = args.repeats or (1 if args.quick else 3)
    cache_dir = args.cache_dir or default_cache_dir()
    say(f"gpu_7b: model {shape.label} (random weights), {device} {compute_type}")
    say(f"  building or reusing the model in {cache_dir} ...")
    model_dir, build_s = await asyncio.to_thread(ensure_llama_model, cache_dir, shape)
    engine = EngineConfig.from_args(
        model_dir, args, device=device, compute_type=compute_type, max_batch_size=concurrency
    )
    prompts = chat_prompts(concurrency)
    say(f"  {concurrency} concurrent x {new_tokens} new tokens; worker: {args.worker}")
    say(f"  {engine.describe()}")
    async with one_worker(engine, args.worker, RawModel, EngineGenerator) as (client, (raw, gen)):
        await warm_up(client, (raw, gen), prompts, new_tokens)

        say(f"batch 1 ({repeats} repeats, interleaved) ...")
        single_raw, single_path = [], []
        for i in range(repeats):
            prompt = prompts[i % len(prompts)]
            single_raw.append(await asyncio.to_thread(raw.batch, [prompt], new_tokens))
            single_path.append(await ask(client, prompt, new_tokens))
        say(f"{concurrency} concurrent ({repeats} repeats, interleaved) ...")
        many_raw, many_gen, many_path = [], [], []
        for _ in range(repeats):
            many_raw.append(await asyncio.to_thread(raw.batch, prompts, new_tokens))
            many_gen.append(await asyncio.to_thread(gen.batch, prompts, new_tokens))
            many_path.append(await concurrently(client, prompts, new_tokens))

    report = Report("gpu_7b")
    b1_raw = median([r.tokens_per_s for r in single_raw])
    b1_path = median([a.tokens / a.latency_s for a in single_path])
    agg_raw = median([r.tokens_per_s for r in many_raw])
    agg_gen = median([r.tokens_per_s for r in many_gen])
    agg_path = median([r.tokens_per_s for r in many_path])
    ratio = agg_path / agg_raw
    full = shape == LLAMA_7B and device == "cuda"
    report.add("ratio", ratio)
    report.add("device", device)
    report.add("compute_type", compute_type)
    report.add("model", shape.label)
    report.add("llama_7b_shape", shape == LLAMA_7B)
    report.add("concurrency", concurrency)
    report.add("new_tokens", new_tokens)
    report.add("worker", args.worker)
    report.add("batch_wait_ms", args.batch_wait_ms)
    say("batch 1 (one request alone):")
    report.add("batch1_raw_tok_s", b1_raw, "raw generate_batch", "tok/s")
    report.add("batch1_path_tok_s", b1_path, "whole path, submit to done", "tok/s")
    report.add(
        "batch1_path_ttft_ms",
        1000 * median([a.ttft_s for a in single_path]),
        "whole path, submit to first text",
        "ms",
    )
    say(f"{concurrency} concurrent requests (aggregate):")
    report.add("aggregate_raw_tok_s", agg_raw, "raw generate_batch", "tok/s")
    report.add("aggregate_generator_tok_s", agg_gen, "Generator.generate (step callback)", "tok/s")
    report.add("aggregate_path_tok_s", agg_path, "whole path", "tok/s")
    report.add("path_batches", median([r.batches for r in many_path]), "whole path: worker batches")
    report.add(
        "path_submit_spread_ms",
        1000 * median([r.submit_spread_s for r in many_path]),
        "whole path: first to last job queued",
        "ms",
    )
    report.add("batch1_ratio", b1_path / b1_raw)
    tokens = sum(r.tokens for r in many_path) + sum(a.tokens for a in single_path)
    report.add("tokens_generated", tokens, "tokens generated (path)")
    report.add("expected_tokens", new_tokens * repeats * (concurrency + 1))
    report.add("goal_batch1_tok_s", GOAL_BATCH1_TOK_S)
    report.add("goal_aggregate_tok_s", GOAL_AGGREGATE_TOK_S)
    report.add(
        "meets_goals",
        (b1_path >= GOAL_BATCH1_TOK_S and agg_path >= GOAL_AGGREGATE_TOK_S) if full else None,
    )
    report.add("model_build_s", build_s)
    say(f"  ratio (path / raw aggregate)                 {ratio:.3f}")
    if full:
        say(
            f"  goals: batch 1 >= {GOAL_BATCH1_TOK_S:g} tok/s, "
            f"aggregate >= {GOAL_AGGREGATE_TOK_S:,.0f} tok/s (whole path)"
        )
    return report


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; the last printed line is its JSON figures."""
    args = _parser().parse_args(argv)
    return run_benchmark("gpu_7b", _run(args))


if __name__ == "__main__":
    sys.exit(main())
