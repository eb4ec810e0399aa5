"""Micro-batching through the whole path: N concurrent chat requests versus the same N in turn.

Both go client -> Redis -> worker -> reply streams. Side by side, in the same run, the same
comparison is made on CTranslate2 alone (one ``generate_batch`` of N versus N single calls), which
is the most batching can give on this machine. ``ratio`` = concurrent tokens/s over one-by-one
tokens/s through the path (target >= 6 for 16 requests of 64 tokens on the CPU model).

    python -m benchmarks.batching            # 16 requests x 64 tokens, hidden 512, 8 layers
    python -m benchmarks.batching --quick    # a tiny model, 4 requests x 8 tokens (smoke test)
    python -m benchmarks.batching --quick --concurrency 1000   # also 1000 answers at once
"""

from __future__ import annotations

import argparse
import asyncio

from benchmarks.common import (
    EngineConfig,
    RawModel,
    Report,
    baselines,
    bench_model,
    bench_parser,
    bench_session,
    chat_prompts,
    concurrently,
    median,
    one_by_one,
    run_benchmark,
    say,
)
from benchmarks.concurrency import add_concurrency_argument, many_at_once, report_concurrency

TARGET = 6.0


def _parser() -> argparse.ArgumentParser:
    parser = bench_parser(
        "batching",
        "Concurrent versus one-by-one chat requests through the whole path.",
        quick="tiny model, 4 requests x 8 tokens (smoke test)",
    )
    parser.add_argument("--requests", type=int, default=None, help="requests (default 16)")
    parser.add_argument("--new-tokens", type=int, default=None, help="tokens each (default 64)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="concurrent rounds, the median is reported (default 3; 1 with --quick)",
    )
    add_concurrency_argument(parser)
    return parser


async def _run(args: argparse.Namespace) -> Report:
    shape, model_dir, build_s = bench_model(args)
    requests = args.requests or (4 if args.quick else 16)
    new_tokens = args.new_tokens or (8 if args.quick else 64)
    rounds_wanted = args.rounds or (1 if args.quick else 3)
    engine = EngineConfig.from_args(model_dir, args, max_batch_size=max(requests, 1))
    prompts = chat_prompts(requests)
    report = Report("batching")
    say(f"batching: {requests} requests x {new_tokens} new tokens, model {shape.label} int8")
    say(f"  worker: {args.worker}, {engine.describe()}")
    async with (
        bench_session(args.worker) as session,
        session.path(engine) as path,
        baselines(engine, RawModel) as (raw,),
    ):
        client = path.client
        # Warm up both at full size: first calls allocate buffers and threads, and the client
        # opens one Redis connection per concurrent reader.
        await concurrently(client, prompts, new_tokens)
        await asyncio.to_thread(raw.batch, prompts, new_tokens)

        say("whole path (client -> Redis -> worker -> reply streams):")
        sequential = await one_by_one(client, prompts, new_tokens)
        rounds = [await concurrently(client, prompts, new_tokens) for _ in range(rounds_wanted)]
        together = sorted(rounds, key=lambda r: r.tokens_per_s)[len(rounds) // 2]
        say("CTranslate2 generate_batch alone (reference):")
        raw_sequential = await asyncio.to_thread(raw.one_by_one, prompts, new_tokens)
        raw_batch = await asyncio.to_thread(raw.batch, prompts, new_tokens)
        if args.concurrency:
            many = await many_at_once(client, session.redis_url, args.concurrency, new_tokens)

    ratio = together.tokens_per_s / sequential.tokens_per_s
    raw_ratio = raw_batch.tokens_per_s / raw_sequential.tokens_per_s
    report.add("ratio", ratio)
    report.add("target", TARGET)
    report.add("meets_target", ratio >= TARGET)
    report.add("requests", requests)
    report.add("new_tokens", new_tokens)
    report.add("model", f"{shape.label}-int8")
    report.add("worker", args.worker)
    report.add("batch_wait_ms", args.batch_wait_ms)
    report.add("path_concurrent_s", together.wall_s, "path, all at once: wall", "s")
    report.add("path_concurrent_tok_s", together.tokens_per_s, "path, all at once", "tok/s")
    report.add("path_concurrent_batches", together.batches, "path, all at once: worker batches")
    report.add(
        "path_submit_spread_ms",
        1000 * together.submit_spread_s,
        "path, all at once: first to last job queued",
        "ms",
    )
    report.add(
        "path_submit_ms",
        1000 * median([a.submit_s for a in sequential.answers]),
        "path, one by one: EngineClient.submit",
        "ms",
    )
    report.add("path_sequential_s", sequential.wall_s, "path, one by one: wall", "s")
    report.add("path_sequential_tok_s", sequential.tokens_per_s, "path, one by one", "tok/s")
    report.add("raw_batch_s", raw_batch.wall_s, "raw, one generate_batch: wall", "s")
    report.add("raw_sequential_s", raw_sequential.wall_s, "raw, single calls in turn: wall", "s")
    report.add("raw_ratio", raw_ratio, "raw ratio (batch / single calls)", "x")
    report.add("tokens_generated", together.tokens + sequential.tokens, "tokens generated (path)")
    report.add("expected_tokens", 2 * requests * new_tokens)
    report.add("path_vs_raw_ratio", ratio / raw_ratio, "path ratio / raw ratio")
    report.add("model_build_s", build_s)
    if args.concurrency:
        report_concurrency(report, *many, args.concurrency, new_tokens)
    say(f"  ratio (path, all at once / one by one)       {ratio:.2f}x  (target >= {TARGET:g}x)")
    return report


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; the last printed line is its JSON figures."""
    args = _parser().parse_args(argv)
    return run_benchmark("batching", _run(args))


if __name__ == "__main__":
    raise SystemExit(main())
