"""What the whole path costs over calling CTranslate2 directly, measured side by side.

Throughput: N concurrent requests through client -> Redis -> worker -> reply streams versus one
``generate_batch`` of the same N prompts; ``ratio`` = path tokens/s over raw tokens/s (target
>= 0.9). Latency: one request at a time, path versus a single raw call; the median difference
is ``added_latency_ms`` (target <= 5 ms). A third column, `engine.generator.Generator.generate`
called directly (raw plus the per-token step callback the worker uses), splits the overhead into
what the callback costs and what the queue, the worker loop and the client cost.

    python -m benchmarks.overhead            # 16 requests x 64 tokens, hidden 512, 8 layers
    python -m benchmarks.overhead --quick    # a tiny model (smoke test)
    python -m benchmarks.overhead --quick --concurrency 1000   # also 1000 answers at once
"""

from __future__ import annotations

import argparse
import asyncio

from benchmarks.common import (
    EngineConfig,
    EngineGenerator,
    RawModel,
    Report,
    ask,
    baselines,
    bench_model,
    bench_parser,
    bench_session,
    chat_prompts,
    interleaved,
    median,
    run_benchmark,
    say,
    warm_up,
)
from benchmarks.concurrency import add_concurrency_argument, many_at_once, report_concurrency

THROUGHPUT_TARGET = 0.90
LATENCY_TARGET_MS = 5.0


def _parser() -> argparse.ArgumentParser:
    parser = bench_parser(
        "overhead",
        "The whole path versus one raw generate_batch call, side by side.",
        quick="tiny model, few short requests",
    )
    parser.add_argument("--requests", type=int, default=None, help="batch size (default 16)")
    parser.add_argument("--new-tokens", type=int, default=None, help="tokens each (default 64)")
    parser.add_argument(
        "--rounds", type=int, default=None, help="throughput rounds, median kept (default 5)"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="single-request repeats (default 9)"
    )
    add_concurrency_argument(parser)
    return parser


async def _run(args: argparse.Namespace) -> Report:
    shape, model_dir, build_s = bench_model(args)
    requests = args.requests or (4 if args.quick else 16)
    new_tokens = args.new_tokens or (8 if args.quick else 64)
    rounds = args.rounds or (1 if args.quick else 5)
    repeats = args.repeats or (3 if args.quick else 9)
    engine = EngineConfig.from_args(model_dir, args, max_batch_size=max(requests, 1))
    prompts = chat_prompts(requests)
    say(f"overhead: {requests} requests x {new_tokens} new tokens, model {shape.label} int8")
    say(f"  worker: {args.worker}, {engine.describe()}")
    async with (
        bench_session(args.worker) as session,
        session.path(engine) as path,
        baselines(engine, RawModel, EngineGenerator) as (raw, gen),
    ):
        client = path.client
        await warm_up(client, (raw, gen), prompts, new_tokens)

        say(f"single requests ({repeats} repeats, interleaved) ...")
        single_raw, single_gen, single_path, ttft = [], [], [], []
        for i in range(repeats):
            prompt = prompts[i % len(prompts)]
            single_raw.append(await asyncio.to_thread(raw.batch, [prompt], new_tokens))
            single_gen.append(await asyncio.to_thread(gen.batch, [prompt], new_tokens))
            answer = await ask(client, prompt, new_tokens)
            single_path.append(answer)
            ttft.append(answer.ttft_s)

        say(f"batches of {requests} ({rounds} rounds, interleaved) ...")
        batch_raw, batch_gen, batch_path = await interleaved(
            client, raw, gen, prompts, new_tokens, rounds
        )
        if args.concurrency:
            many = await many_at_once(client, session.redis_url, args.concurrency, new_tokens)

    report = Report("overhead")
    raw_tps = median([r.tokens_per_s for r in batch_raw])
    gen_tps = median([r.tokens_per_s for r in batch_gen])
    path_tps = median([r.tokens_per_s for r in batch_path])
    ratio = path_tps / raw_tps
    raw_ms = 1000 * median([r.wall_s for r in single_raw])
    gen_ms = 1000 * median([r.wall_s for r in single_gen])
    path_ms = 1000 * median([a.latency_s for a in single_path])
    added_ms = path_ms - raw_ms
    report.add("ratio", ratio)
    report.add("throughput_target", THROUGHPUT_TARGET)
    report.add("added_latency_ms", added_ms)
    report.add("latency_target_ms", LATENCY_TARGET_MS)
    report.add("meets_target", ratio >= THROUGHPUT_TARGET and added_ms <= LATENCY_TARGET_MS)
    report.add("requests", requests)
    report.add("new_tokens", new_tokens)
    report.add("model", f"{shape.label}-int8")
    report.add("worker", args.worker)
    report.add("batch_wait_ms", args.batch_wait_ms)
    say(f"throughput, {requests} at once (median of {rounds}):")
    report.add("raw_tok_s", raw_tps, "raw generate_batch", "tok/s")
    report.add("generator_tok_s", gen_tps, "Generator.generate (with step callback)", "tok/s")
    report.add("path_tok_s", path_tps, "whole path", "tok/s")
    report.add(
        "path_batches", median([r.batches for r in batch_path]), "whole path: worker batches"
    )
    report.add(
        "path_submit_spread_ms",
        1000 * median([r.submit_spread_s for r in batch_path]),
        "whole path: first to last job queued",
        "ms",
    )
    say(f"latency of one request (median of {repeats}):")
    report.add("raw_latency_ms", raw_ms, "raw generate_batch", "ms")
    report.add("generator_latency_ms", gen_ms, "Generator.generate (with step callback)", "ms")
    report.add("path_latency_ms", path_ms, "whole path, submit to done", "ms")
    report.add("path_ttft_ms", 1000 * median(ttft), "whole path, submit to first text", "ms")
    report.add(
        "path_submit_ms",
        1000 * median([a.submit_s for a in single_path]),
        "whole path, EngineClient.submit",
        "ms",
    )
    report.add("callback_ms", gen_ms - raw_ms, "added by the step callback", "ms")
    report.add("queue_ms", path_ms - gen_ms, "added by queue + worker + client", "ms")
    say(f"    (the worker waits {args.batch_wait_ms:g} ms for more jobs before each batch)")
    tokens = sum(r.tokens for r in batch_path) + sum(a.tokens for a in single_path)
    report.add("tokens_generated", tokens, "tokens generated (path)")
    report.add("expected_tokens", new_tokens * (rounds * requests + repeats))
    report.add("model_build_s", build_s)
    if args.concurrency:
        report_concurrency(report, *many, args.concurrency, new_tokens)
    say(
        f"  ratio (path / raw throughput)                {ratio:.3f}  "
        f"(target >= {THROUGHPUT_TARGET:g})"
    )
    say(
        f"  added latency, one request                   {added_ms:.1f} ms  "
        f"(target <= {LATENCY_TARGET_MS:g} ms)"
    )
    return report


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; the last printed line is its JSON figures."""
    args = _parser().parse_args(argv)
    return run_benchmark("overhead", _run(args))


if __name__ == "__main__":
    raise SystemExit(main())
