"""Does a short question wait behind a long answer? ``inter_threads`` 1 versus 2, side by side.

CTranslate2 has no continuous batching: a job that arrives while a batch runs waits for it,
unless the worker runs several batches at once (``AIROBOROS_ENGINE_INTER_THREADS`` > 1, each
batch on its own CTranslate2 replica). Scenario, the same for both set-ups: one long answer
starts; once it streams, a few short questions arrive together. Both set-ups use the same total
number of CPU threads (inter x intra). ``ratio`` = median short-question latency with
inter_threads 1 over the same with inter_threads 2 (> 1 means the second batch slot helps).

    python -m benchmarks.inter_threads            # long 256 tokens, 4 short x 16 tokens
    python -m benchmarks.inter_threads --quick    # a tiny model (smoke test)
"""

from __future__ import annotations

import argparse
import asyncio
import time

from airoboros_bot.engine.client import EngineClient
from airoboros_bot.engine.protocol import Chunk
from benchmarks.common import (
    EngineConfig,
    Report,
    ask,
    bench_model,
    bench_parser,
    bench_session,
    chat_job,
    chat_prompts,
    median,
    run_benchmark,
    say,
)


def _parser() -> argparse.ArgumentParser:
    parser = bench_parser(
        "inter_threads",
        "Short questions behind a long answer: inter_threads 1 versus 2.",
        quick="tiny model (smoke test)",
    )
    parser.add_argument("--long-tokens", type=int, default=None, help="default 256")
    parser.add_argument("--short", type=int, default=None, help="short questions (default 4)")
    parser.add_argument("--short-tokens", type=int, default=None, help="default 16")
    parser.add_argument("--rounds", type=int, default=None, help="default 3 (1 with --quick)")
    return parser


async def _long_answer(
    client: EngineClient, prompt: str, tokens: int, streaming: asyncio.Event
) -> tuple[float, int]:
    """Submit-to-done seconds and tokens of one long answer; sets ``streaming`` at its first
    text."""
    job = chat_job(client, prompt, tokens)
    began = time.perf_counter()
    handle = await client.submit(job)
    generated = 0
    async for chunk in client.stream(handle):
        if isinstance(chunk, Chunk) and chunk.kind == "token":
            streaming.set()
        elif isinstance(chunk, Chunk) and chunk.kind == "done":
            generated = chunk.tokens
    streaming.set()
    return time.perf_counter() - began, generated


async def _scenario(
    client: EngineClient, long_tokens: int, shorts: list[str], short_tokens: int
) -> tuple[float, float, int]:
    """Latency of the long answer, median latency of the short questions, tokens generated."""
    streaming = asyncio.Event()
    long = asyncio.create_task(_long_answer(client, chat_prompts(1)[0], long_tokens, streaming))
    await streaming.wait()  # the long answer is being generated: now the short ones arrive
    answers = await asyncio.gather(*(ask(client, p, short_tokens) for p in shorts))
    long_s, long_generated = await long
    generated = long_generated + sum(a.tokens for a in answers)
    return long_s, median([a.latency_s for a in answers]), generated


async def _run(args: argparse.Namespace) -> Report:
    shape, model_dir, build_s = bench_model(args)
    long_tokens = args.long_tokens or (32 if args.quick else 256)
    short_count = args.short or (2 if args.quick else 4)
    short_tokens = args.short_tokens or (4 if args.quick else 16)
    rounds = args.rounds or (1 if args.quick else 3)
    total_threads = args.threads or 2
    shorts = chat_prompts(short_count + 1)[1:]
    report = Report("inter_threads")
    say(
        f"inter_threads: 1 long answer ({long_tokens} tokens), then {short_count} short "
        f"questions ({short_tokens} tokens), model {shape.label} int8, {total_threads} threads"
    )
    results: dict[int, tuple[float, float]] = {}
    generated = 0
    async with bench_session(args.worker) as session:
        for inter in (1, 2):
            engine = EngineConfig(
                model_dir,
                max_batch_size=16,
                batch_wait_ms=args.batch_wait_ms,
                inter_threads=inter,
                intra_threads=max(1, total_threads // inter),
            )
            say(f"  {engine.describe()}")
            async with session.path(engine) as path:
                await _scenario(path.client, 4, shorts, 2)  # warm-up
                runs = [
                    await _scenario(path.client, long_tokens, shorts, short_tokens)
                    for _ in range(rounds)
                ]
            results[inter] = (median([r[0] for r in runs]), median([r[1] for r in runs]))
            generated += sum(r[2] for r in runs)
    (long_1, short_1), (long_2, short_2) = results[1], results[2]
    ratio = short_1 / short_2
    report.add("ratio", ratio)
    report.add("new_tokens", long_tokens)
    report.add("tokens_generated", generated, "tokens generated (measured rounds)")
    report.add("expected_tokens", 2 * rounds * (long_tokens + short_count * short_tokens))
    report.add("short_requests", short_count)
    report.add("short_tokens", short_tokens)
    report.add("threads", total_threads)
    report.add("model", f"{shape.label}-int8")
    report.add("worker", args.worker)
    report.add("short_latency_inter1_ms", 1000 * short_1, "short questions, inter_threads 1", "ms")
    report.add("short_latency_inter2_ms", 1000 * short_2, "short questions, inter_threads 2", "ms")
    report.add("long_latency_inter1_ms", 1000 * long_1, "long answer, inter_threads 1", "ms")
    report.add("long_latency_inter2_ms", 1000 * long_2, "long answer, inter_threads 2", "ms")
    report.add("model_build_s", build_s)
    say(f"  ratio (short latency, inter 1 / inter 2)     {ratio:.2f}x")
    return report


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; the last printed line is its JSON figures."""
    return run_benchmark("inter_threads", _run(_parser().parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
