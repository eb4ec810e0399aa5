"""The worker's CPU cost per generated token, beside CTranslate2's own, at 64 and 256 answers.

On a GPU the model's work runs on the device, so what the worker process spends on the CPU per
token (the step callback, detokenizing, stop strings, streaming to Redis) decides whether it keeps
up with the GPU: its Python holds the GIL that CTranslate2's thread needs for every token's
callback. This measures that cost on the CPU with a tiny model whose own compute is small:

- ``worker_us_per_token``: CPU time of the worker process (every thread) over a round of N
  concurrent answers through the whole path, divided by the tokens generated;
- ``raw_us_per_token``: the same for one raw ``generate_batch`` of the same N prompts, no
  callback, in this process (the compute the worker cannot avoid);
- ``generator_us_per_token``: `Generator.generate` with a callback that only counts;
- ``python_us_per_token`` = worker - raw: what the worker adds per token.

Both sides run CTranslate2 with one thread (``intra_threads=1``): OpenMP threads that spin while
they wait would otherwise count as CPU time. The worker runs as its own process, as deployed.

    python -m benchmarks.worker_cpu             # 64 and 256 concurrent answers x 128 tokens
    python -m benchmarks.worker_cpu --quick     # 8 and 16 x 16 tokens (smoke test)
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from benchmarks.common import (
    BenchmarkError,
    EngineConfig,
    EngineGenerator,
    ModelShape,
    RawModel,
    Report,
    baselines,
    bench_parser,
    bench_session,
    chat_prompts,
    concurrently,
    default_cache_dir,
    ensure_bench_model,
    median,
    run_benchmark,
    say,
)

FAST_SHAPE = ModelShape(hidden_size=64, num_layers=1, num_heads=4, vocab_size=2000)
"""A model so small that the worker's own work per token, not the model's, is what is measured."""


def process_cpu_s(pid: int) -> float:
    """CPU seconds a process's threads have run so far (Linux: the scheduler's nanosecond
    counts of each live thread; the tick counts of /proc/PID/stat are only 10 ms fine)."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
        return sum(int((t / "schedstat").read_text().split()[0]) for t in tasks) / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError as exc:
        raise BenchmarkError(f"cannot read the CPU time of process {pid}: {exc}") from None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _parser() -> argparse.ArgumentParser:
    parser = bench_parser(
        "worker_cpu",
        "Worker CPU microseconds per generated token, beside raw CTranslate2, at 64 and 256 "
        "concurrent answers.",
        quick="8 and 16 answers x 16 tokens (smoke test)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=None,
        help="concurrent answers per round (default 64 256; 8 16 with --quick)",
    )
    parser.add_argument("--new-tokens", type=int, default=None, help="tokens each (default 128)")
    parser.add_argument(
        "--rounds", type=int, default=None, help="rounds per level, median kept (default 3)"
    )
    return parser


async def _run(args: argparse.Namespace) -> Report:
    if args.worker != "process":
        raise SystemExit("worker_cpu: measures a worker process; run it with --worker process")
    levels = args.concurrency or ([8, 16] if args.quick else [64, 256])
    new_tokens = args.new_tokens or (16 if args.quick else 128)
    rounds = args.rounds or (1 if args.quick else 3)
    if max(levels) > 256 or min(levels) < 1:
        raise SystemExit("worker_cpu: --concurrency values go from 1 to 256 (the largest batch)")
    model_dir, build_s = ensure_bench_model(args.cache_dir or default_cache_dir(), FAST_SHAPE)
    engine = EngineConfig.from_args(model_dir, args, max_batch_size=max(levels), intra_threads=1)
    say(f"worker_cpu: {levels} concurrent x {new_tokens} tokens, model {FAST_SHAPE.label} int8")
    say(f"  {engine.describe()}")
    report = Report("worker_cpu")
    generated = expected = 0
    async with (
        bench_session(args.worker) as session,
        session.path(engine) as path,
        baselines(engine, RawModel, EngineGenerator) as (raw, gen),
    ):
        assert path.pid is not None
        for level in levels:
            prompts = chat_prompts(level)
            await concurrently(path.client, prompts, new_tokens)  # warm-up at full size
            await asyncio.to_thread(raw.batch, prompts, new_tokens)
            await asyncio.to_thread(gen.batch, prompts, new_tokens)
            worker_us, raw_us, gen_us, path_tps, raw_tps = [], [], [], [], []
            for _ in range(rounds):
                before = process_cpu_s(path.pid)
                run = await concurrently(path.client, prompts, new_tokens)
                worker_us.append(1e6 * (process_cpu_s(path.pid) - before) / run.tokens)
                path_tps.append(run.tokens_per_s)
                raw_run = await asyncio.to_thread(raw.batch, prompts, new_tokens)
                raw_us.append(1e6 * raw_run.cpu_s / raw_run.tokens)
                raw_tps.append(raw_run.tokens_per_s)
                gen_run = await asyncio.to_thread(gen.batch, prompts, new_tokens)
                gen_us.append(1e6 * gen_run.cpu_s / gen_run.tokens)
                generated += run.tokens
                expected += level * new_tokens
            say(f"{level} concurrent answers (median of {rounds}):")
            w, r, g = median(worker_us), median(raw_us), median(gen_us)
            report.add(f"worker_us_per_token_{level}", w, "worker process CPU per token", "us")
            report.add(f"raw_us_per_token_{level}", r, "raw generate_batch CPU per token", "us")
            report.add(
                f"generator_us_per_token_{level}", g, "Generator.generate CPU per token", "us"
            )
            report.add(f"python_us_per_token_{level}", w - r, "worker - raw", "us")
            report.add(f"path_tok_s_{level}", median(path_tps), "whole path", "tok/s")
            report.add(f"raw_tok_s_{level}", median(raw_tps), "raw generate_batch", "tok/s")
    top = max(levels)
    report.add("ratio", report.figures[f"worker_us_per_token_{top}"] / max(1e-9, r))
    report.add("levels", levels)
    report.add("new_tokens", new_tokens)
    report.add("worker", args.worker)
    report.add("model", f"{FAST_SHAPE.label}-int8")
    report.add("tokens_generated", generated, "tokens generated (measured rounds)")
    report.add("expected_tokens", expected)
    report.add("model_build_s", build_s)
    say(f"  ratio (worker / raw CPU per token at {top})   {report.figures['ratio']:.2f}x")
    return report


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; the last printed line is its JSON figures."""
    return run_benchmark("worker_cpu", _run(_parser().parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
