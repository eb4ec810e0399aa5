"""Speed of an exact LLaMA-7B shape on a GPU, through the whole path and raw, side by side.

The model has random weights (speed does not depend on their values) in the exact shape of
LLaMA-7B: 32 layers, hidden 4096, FFN 11008, 32 heads, vocabulary 32000. It is built locally,
nothing downloaded, with the int8 weights written directly (int8 values and per-row scales, as
``spec.optimize(quantization="int8_float16")`` would store them) and the other weights in
float16, so the build needs about 7 GB of host memory and a minute. A -10,000 bias on the
``</s>`` logit makes every answer run to its full length.

Figures: tokens/s of one request alone (batch 1) and aggregate tokens/s of N concurrent
requests at each ``--concurrency`` level (default 64), each through client -> Redis -> worker ->
reply streams, as `Generator.generate` and as one raw ``generate_batch``; then transformers
float16 ``generate`` on the same shape (the peer, what ``fastchat.serve.cli`` runs) when torch
sees the GPU. ``ratio`` = path aggregate over raw aggregate at the first level. Goals on one
H100: >= 150 tok/s at batch 1, >= 3,000 tok/s aggregate; on one H200: path / raw >= 0.95 at 64,
128 and 256, >= 10,000 tok/s at 512.

    python -m benchmarks.gpu_7b                    # CUDA, int8_float16, the 7B shape
    python -m benchmarks.gpu_7b --concurrency 64 128 256 512
    python -m benchmarks.gpu_7b --suite            # every GPU figure, one JSON file, < 8 min
    python -m benchmarks.gpu_7b --small            # a small shape on CPU (keeps the code tested)
    python -m benchmarks.gpu_7b --small --quick    # smoke test: tiny shape, 8 requests x 8 tokens
    python -m benchmarks.gpu_7b --suite --small --quick   # the suite's code on CPU
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import ctranslate2
import numpy as np
from ctranslate2.specs import common_spec

from airoboros_bot.engine.client import EngineClient
from airoboros_bot.engine.model.demo import (
    BUILDER,
    CONTEXT_LENGTH,
    random_llama_spec,
    train_demo_tokenizer,
)
from airoboros_bot.engine.model.manifest import MANIFEST_FILE
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
    default_cache_dir,
    interleaved,
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
MAX_BATCH = 256
"""The largest batch a worker takes (AIROBOROS_ENGINE_MAX_BATCH_SIZE's limit)."""
SUITE_LEVELS = ("64", "128", "256", "512")
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

    spec = random_llama_spec(
        vocab,
        hidden_size=hidden,
        ffn_size=ffn,
        num_layers=shape.num_layers,
        num_heads=shape.num_heads,
        set_weight=int8_weights,
        dtype=np.float16,
        eos_bias=NO_EOS_BIAS,
    )
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
    (out_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
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
        "LLaMA-7B-shaped random model: batch-1 and concurrent tokens/s, whole path beside raw "
        "generate_batch and transformers generate; --suite runs every GPU figure in one go.",
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
        "--concurrency",
        type=int,
        nargs="+",
        default=None,
        help="concurrent requests, one or more levels (default 64; 8 with --quick)",
    )
    parser.add_argument(
        "--inter-threads",
        type=int,
        default=None,
        help="the worker's batches in flight (default: enough batches of at most 256 for the "
        "largest level)",
    )
    parser.add_argument(
        "--new-tokens", type=int, default=None, help="tokens each (default 128; 64 with --small)"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="repeats of each measurement (default 3)"
    )
    parser.add_argument(
        "--peer",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time transformers generate on the same shape (default: when torch and "
        "transformers are installed and, on CUDA, see the GPU)",
    )
    parser.add_argument(
        "--suite",
        action="store_true",
        help="everything the GPU figures need, in one command: benchmarks.replica_memory, this "
        "benchmark at 64, 128, 256 and 512 concurrent (and batch 1), then benchmarks.serving "
        "with 1, 2 and 4 batches in flight; one JSON file (see --out)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="--suite: the JSON file (default gpu_suite.json)"
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=480.0,
        help="--suite: stop starting steps after this many seconds (default %(default)s)",
    )
    return parser


@dataclass(frozen=True)
class Level:
    """One concurrency level: aggregate tok/s raw, with the step callback, through the path."""

    concurrency: int
    raw: float
    generator: float
    path: float
    batches: float
    tokens: int

    @property
    def ratio(self) -> float:
        """Path over raw."""
        return self.path / self.raw


async def _level(
    client: EngineClient,
    raw: RawModel,
    gen: EngineGenerator,
    concurrency: int,
    new_tokens: int,
    repeats: int,
) -> Level:
    prompts = chat_prompts(concurrency)
    say(f"{concurrency} concurrent ({repeats} repeats, interleaved) ...")
    many_raw, many_gen, many_path = await interleaved(
        client, raw, gen, prompts, new_tokens, repeats
    )
    level = Level(
        concurrency,
        median([r.tokens_per_s for r in many_raw]),
        median([r.tokens_per_s for r in many_gen]),
        median([r.tokens_per_s for r in many_path]),
        median([r.batches for r in many_path]),
        sum(r.tokens for r in many_path),
    )
    say(
        f"  raw {level.raw:10,.0f}  Generator.generate {level.generator:10,.0f}  whole path "
        f"{level.path:10,.0f} tok/s  path/raw {level.ratio:.3f}  ({level.batches:g} batches)"
    )
    return level


def _peer(
    shape: ModelShape, model_dir: Path, device: str, levels: list[int], new_tokens: int
) -> dict[str, object]:
    """transformers generate at batch 1 and at each level (one call each, after a warm-up)."""
    from benchmarks.peer import PeerModel

    say(f"transformers generate on the same shape ({device}) ...")
    model = PeerModel(shape, model_dir, device)
    try:
        model.batch(chat_prompts(2), 2)  # warm-up
        figures: dict[str, object] = {"peer_dtype": str(model.dtype).removeprefix("torch.")}
        for level in [1, *levels]:
            run = model.batch(chat_prompts(level), new_tokens)
            figures[f"peer_{level}_tok_s"] = run.tokens_per_s
            say(f"  {level:>4} concurrent: {run.tokens_per_s:10,.0f} tok/s")
        return figures
    finally:
        model.close()


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
    levels = args.concurrency or [8 if args.quick else 64]
    new_tokens = args.new_tokens or (8 if args.quick else 64 if args.small else 128)
    repeats = args.repeats or (1 if args.quick else 3)
    inter = args.inter_threads or -(-max(levels) // MAX_BATCH)
    peer_skip = None if args.peer is not False else "--no-peer"
    if peer_skip is None:
        from benchmarks.peer import peer_available

        peer_skip = peer_available(device)
        if peer_skip and args.peer:
            raise SystemExit(f"gpu_7b: --peer: {peer_skip}")
    cache_dir = args.cache_dir or default_cache_dir()
    say(f"gpu_7b: model {shape.label} (random weights), {device} {compute_type}")
    say(f"  building or reusing the model in {cache_dir} ...")
    model_dir, build_s = await asyncio.to_thread(ensure_llama_model, cache_dir, shape)
    engine = EngineConfig.from_args(
        model_dir,
        args,
        device=device,
        compute_type=compute_type,
        max_batch_size=min(MAX_BATCH, -(-max(levels) // inter)),
        inter_threads=inter,
    )
    prompts = chat_prompts(max(levels))
    say(f"  {levels} concurrent x {new_tokens} new tokens; worker: {args.worker}")
    say(f"  {engine.describe()}")
    async with one_worker(engine, args.worker, RawModel, EngineGenerator) as (client, (raw, gen)):
        # Once, at the largest level: first calls allocate buffers and threads (later, smaller
        # batches reuse them), and the client opens one connection per concurrent reader.
        await warm_up(client, (raw, gen), prompts, new_tokens)
        say(f"batch 1 ({repeats} repeats, interleaved) ...")
        single_raw, single_path = [], []
        for i in range(repeats):
            prompt = prompts[i % len(prompts)]
            single_raw.append(await asyncio.to_thread(raw.batch, [prompt], new_tokens))
            single_path.append(await ask(client, prompt, new_tokens))
        measured = [await _level(client, raw, gen, level, new_tokens, repeats) for level in levels]
    peer = (
        await asyncio.to_thread(_peer, shape, model_dir, device, levels[:1], new_tokens)
        if peer_skip is None
        else {"peer_skipped": peer_skip}
    )

    report = Report("gpu_7b")
    b1_raw = median([r.tokens_per_s for r in single_raw])
    b1_path = median([a.tokens / a.latency_s for a in single_path])
    first = measured[0]
    full = shape == LLAMA_7B and device == "cuda"
    report.add("ratio", first.ratio)
    report.add("device", device)
    report.add("compute_type", compute_type)
    report.add("model", shape.label)
    report.add("llama_7b_shape", shape == LLAMA_7B)
    report.add("concurrency", first.concurrency)
    report.add("new_tokens", new_tokens)
    report.add("worker", args.worker)
    report.add("batch_wait_ms", args.batch_wait_ms)
    report.add("inter_threads", inter)
    say("batch 1 (one request alone):")
    report.add("batch1_raw_tok_s", b1_raw, "raw generate_batch", "tok/s")
    report.add("batch1_path_tok_s", b1_path, "whole path, submit to done", "tok/s")
    report.add(
        "batch1_path_ttft_ms",
        1000 * median([a.ttft_s for a in single_path]),
        "whole path, submit to first text",
        "ms",
    )
    say(f"{first.concurrency} concurrent requests (aggregate):")
    report.add("aggregate_raw_tok_s", first.raw, "raw generate_batch", "tok/s")
    report.add("aggregate_generator_tok_s", first.generator, "Generator.generate", "tok/s")
    report.add("aggregate_path_tok_s", first.path, "whole path", "tok/s")
    report.add("path_batches", first.batches, "whole path: worker batches")
    report.add("batch1_ratio", b1_path / b1_raw)
    report.add("levels", [asdict(level) | {"ratio": level.ratio} for level in measured])
    for key, value in peer.items():
        report.add(key, value)
    if "peer_1_tok_s" in peer:
        say("transformers generate (peer):")
        report.add("peer_batch1_tok_s", peer["peer_1_tok_s"], "batch 1", "tok/s")
        peer_first = peer[f"peer_{first.concurrency}_tok_s"]
        report.add("peer_aggregate_tok_s", peer_first, f"{first.concurrency} concurrent", "tok/s")
        report.add("path_vs_peer", first.path / peer_first, "whole path / peer", "x")  # type: ignore[operator]
    tokens = sum(level.tokens for level in measured) + sum(a.tokens for a in single_path)
    report.add("tokens_generated", tokens, "tokens generated (path)")
    report.add("expected_tokens", new_tokens * repeats * (sum(levels) + 1))
    report.add("goal_batch1_tok_s", GOAL_BATCH1_TOK_S)
    report.add("goal_aggregate_tok_s", GOAL_AGGREGATE_TOK_S)
    report.add(
        "meets_goals",
        (b1_path >= GOAL_BATCH1_TOK_S and first.path >= GOAL_AGGREGATE_TOK_S) if full else None,
    )
    report.add("model_build_s", build_s)
    say("path / raw by concurrency:")
    for level in measured:
        say(f"  {level.concurrency:>4} concurrent  {level.path:10,.0f} tok/s  {level.ratio:.3f}")
    if full:
        say(
            f"  goals: batch 1 >= {GOAL_BATCH1_TOK_S:g} tok/s, "
            f"aggregate >= {GOAL_AGGREGATE_TOK_S:,.0f} tok/s (whole path)"
        )
    return report


def _suite(args: argparse.Namespace) -> int:
    """Run every GPU figure as subprocesses (each frees its GPU memory), under a time budget;
    write their JSON figures into one file and print it as the last line."""
    started = time.monotonic()
    common = ["--cache-dir", str(args.cache_dir)] if args.cache_dir else []
    if args.small:
        small = ["--small", *(["--quick"] if args.quick else [])]
        levels = ["4", "8"] if args.quick else ["16", "32", "64"]
        steps = {
            "replica_memory": ["benchmarks.replica_memory", "--quick"],
            "gpu_7b": ["benchmarks.gpu_7b", *small, "--repeats", "1", "--concurrency", *levels],
            "serving": ["benchmarks.serving", *(["--quick"] if args.quick else [])]
            + ([] if args.quick else ["--setups", "1x2", "2x2", "4x2", "--load", "0.5", "0.9"]),
        }
    else:
        steps = {
            "replica_memory": ["benchmarks.replica_memory", "--device", "cuda"],
            "gpu_7b": ["benchmarks.gpu_7b", "--repeats", "1", "--concurrency", *SUITE_LEVELS],
            "serving": [
                "benchmarks.serving",
                "--device",
                "cuda",
                "--setups",
                "1x2",
                "2x2",
                "4x2",
                "--load",
                "0.5",
                "0.9",
                "--requests",
                "120",
            ],
        }
    results: dict[str, object] = {"suite": "gpu_7b --suite", "small": args.small}
    failed = False
    for name, command in steps.items():
        left = args.budget_s - (time.monotonic() - started)
        if left <= 5:
            results[name] = {"error": f"not run: the {args.budget_s:g} s budget was spent"}
            failed = True
            continue
        say(f"== {name}: python -m {' '.join(command + common)} (at most {left:.0f} s)")
        step_started = time.monotonic()
        figures, error = _run_step([sys.executable, "-m", *command, *common], left)
        results[name] = figures if error is None else {"error": error, **(figures or {})}
        results[f"{name}_s"] = round(time.monotonic() - step_started, 1)
        failed = failed or error is not None
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    out = args.out or Path("gpu_suite.json")
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    say(f"suite: {results['elapsed_s']} s; figures written to {out}")
    print(json.dumps(results), flush=True)
    return 1 if failed else 0


def _run_step(command: list[str], timeout_s: float) -> tuple[dict | None, str | None]:
    """Run one benchmark, echoing its output; its JSON figures, or why there are none."""
    lines: list[str] = []
    try:
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as process:
            deadline = time.monotonic() + timeout_s
            assert process.stdout is not None
            for line in process.stdout:
                print(line, end="", flush=True)
                lines.append(line)
                if time.monotonic() > deadline:
                    process.kill()
                    return None, f"timed out after {timeout_s:.0f} s"
            process.wait()
    except OSError as exc:
        return None, str(exc)
    last = lines[-1].strip() if lines else ""
    try:
        figures = json.loads(last)
    except json.JSONDecodeError:
        figures = None
    if process.returncode != 0 or not isinstance(figures, dict):
        return None, f"exit status {process.returncode}: {last[-300:]}"
    return figures, None


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or the suite); the last printed line is its JSON figures."""
    args = _parser().parse_args(argv)
    if args.suite:
        return _suite(args)
    return run_benchmark("gpu_7b", _run(args))


if __name__ == "__main__":
    sys.exit(main())
