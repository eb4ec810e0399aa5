"""``--concurrency N``: N chat answers at once from one process through the whole path, and how
many Redis connections that process held meanwhile (counted by the server, peak).

The reading side of a bot process keeps one Redis connection for all its answers (one
``XREAD BLOCK`` over their reply streams); submissions share a bounded pool. The count comes
from ``CLIENT LIST`` (connections named `BENCH_CLIENT_NAME`), sampled every 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio

import redis.asyncio as aioredis

from airoboros_bot.engine.client import EngineClient
from benchmarks.common import (
    BENCH_CLIENT_NAME,
    PathRun,
    Report,
    chat_prompts,
    concurrently,
    say,
)


def add_concurrency_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--concurrency`` option."""
    parser.add_argument(
        "--concurrency",
        type=int,
        default=0,
        help="also run this many answers at once (e.g. 1000) and report their tok/s and the "
        "Redis connections the benchmark process held",
    )


async def _peak_connections(redis_url: str, stop: asyncio.Event) -> int:
    peak = 0
    observer = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        while not stop.is_set():
            clients = await observer.client_list()
            peak = max(peak, sum(1 for c in clients if c.get("name") == BENCH_CLIENT_NAME))
            await asyncio.sleep(0.05)
    finally:
        await observer.aclose()
    return peak


async def many_at_once(
    client: EngineClient, redis_url: str, count: int, new_tokens: int
) -> tuple[PathRun, int]:
    """Run ``count`` answers at once; returns the run and the peak connection count."""
    say(f"{count} answers at once through the whole path ...")
    stop = asyncio.Event()
    sampler = asyncio.create_task(_peak_connections(redis_url, stop))
    try:
        run = await concurrently(client, chat_prompts(count), new_tokens)
    finally:
        stop.set()
        peak = await sampler
    return run, peak


def report_concurrency(report: Report, run: PathRun, peak: int, count: int, tokens: int) -> None:
    """Add the figures of `many_at_once` to the report."""
    report.add("concurrency", count)
    report.add("concurrent_path_tok_s", run.tokens_per_s, f"path, {count} at once", "tok/s")
    report.add("concurrent_wall_s", run.wall_s, f"path, {count} at once: wall", "s")
    report.add("concurrent_tokens", run.tokens)
    report.add("concurrent_expected_tokens", count * tokens)
    report.add("redis_connections_peak", peak, "Redis connections of this process, peak")
