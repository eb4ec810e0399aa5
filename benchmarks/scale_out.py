"""Scale-out: 3 worker processes and 2 bot-side client processes on a 3-primary Redis Cluster,
against the same on one Redis server, side by side in one run.

Both topologies run at once from the same ``valkey-server`` binary with the same settings (AOF,
fsync every second), each with its own 3 ``python -m airoboros_bot worker`` processes
(``AIROBOROS_REDIS_URL`` = ``redis://...`` or ``redis+cluster://...``); rounds alternate between
them so drift on a shared machine hits both alike. A round: 2 client processes (each an
`EngineClient` on its own connection, as two bot processes would be) submit all their requests at
once and read every answer to the end.

Figures per topology (median over rounds): aggregate tok/s, first-text latency (submit to the
first streamed text, median and p95), Redis commands per generated token (``INFO commandstats``
summed over every node, all commands but INFO), and for the job stream, a single key and so a
single node: the commands and the server time it takes per job. ``ratio`` = cluster tok/s over
one-server tok/s.

    python -m benchmarks.scale_out            # 2 clients x 16 requests x 32 tokens, 3 rounds
    python -m benchmarks.scale_out --quick    # a tiny model, 2 x 2 requests x 8 tokens, 1 round
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from airoboros_bot.bots.core.service import STOP_STRINGS
from airoboros_bot.config.keys import Keys
from airoboros_bot.engine.client import EngineClient, Queued
from airoboros_bot.engine.protocol import Job
from airoboros_bot.engine.redis_connect import connect
from benchmarks.common import (
    CPU_SHAPE,
    GREEDY,
    QUICK_SHAPE,
    BenchmarkError,
    EngineConfig,
    Report,
    add_common_arguments,
    chat_prompts,
    default_cache_dir,
    ensure_bench_model,
    run_benchmark,
    say,
    work_dir,
)
from tests.topologies import ValkeyCluster, ValkeyProcess, free_ports

TOPOLOGIES = ("server", "cluster")
WORKERS = 3
CLIENTS = 2
QUEUE_COMMANDS = (
    "xreadgroup",
    "xack",
    "xdel",
    "xautoclaim",
    "xclaim",
    "xpending",
    "xrange",
    "xinfo|groups",
    "xgroup|create",
)
"""Commands that only ever touch the job stream (XADD also writes reply streams)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scale_out",
        description="3 workers and 2 bot-side clients: Redis Cluster vs one Redis server.",
    )
    parser.add_argument("--requests", type=int, default=None, help="per client (default 16)")
    parser.add_argument("--new-tokens", type=int, default=None, help="tokens each (default 32)")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per topology (3)")
    parser.add_argument("--quick", action="store_true", help="tiny model, 2 requests x 8 tokens")
    parser.add_argument(
        "--workers", type=int, default=WORKERS, help="worker processes per topology (default 3)"
    )
    add_common_arguments(parser)
    parser.set_defaults(threads=1)  # 3 workers share the machine: one thread each
    parser.add_argument("--client", nargs=4, metavar=("URL", "PREFIX", "REQUESTS", "TOKENS"),
                        help=argparse.SUPPRESS)  # fmt: skip
    return parser


# -- one bot-side client process ----------------------------------------------------------------
async def _client(url: str, prefix: str, requests: int, new_tokens: int) -> None:
    """A long-lived bot-side process: connect, say ``ready``; then for every line on stdin, ask
    everything at once and print the answers' timings as one JSON line."""
    redis_client = await connect(url)
    client = EngineClient(redis_client, Keys(prefix), first_chunk_timeout_s=300)
    prompts = chat_prompts(requests)
    await client.live_workers()
    print("ready", flush=True)

    async def one(prompt: str) -> list[float]:
        deadline = time.time() + 3600
        job = Job(
            prompt,
            new_tokens,
            sampling=GREEDY,
            stop=STOP_STRINGS,
            deadline=deadline,
            id=client.new_job_id(),  # one XREAD reads the replies of all of them
        )
        submitted = time.time()
        first = math.nan
        async for chunk in client.stream(await client.submit(job)):
            if isinstance(chunk, Queued):
                continue
            if chunk.kind == "token" and math.isnan(first):
                first = time.time()
            if chunk.kind == "done":
                done = time.time()
                return [submitted, first if not math.isnan(first) else done, done, chunk.tokens]
        raise BenchmarkError(f"job {job.id} ended without a done chunk")

    while await asyncio.to_thread(sys.stdin.readline):
        answers = await asyncio.gather(*(one(p) for p in prompts))
        print(json.dumps(answers), flush=True)
    await redis_client.aclose()


# -- topologies, workers, counters --------------------------------------------------------------
@dataclass
class Deployment:
    """One topology with its workers."""

    kind: str
    url: str
    ports: list[int]
    prefix: str
    jobs_port: int

    def counters(self) -> dict[int, dict[str, tuple[int, int]]]:
        """``INFO commandstats`` of every node: command -> (calls, usec)."""
        snapshot = {}
        for port in self.ports:
            client = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
            try:
                stats = client.info("commandstats")
            finally:
                client.close()
            snapshot[port] = {
                name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
                for name, v in stats.items()
            }
        return snapshot


def _delta(before: dict, after: dict) -> dict[int, dict[str, tuple[int, int]]]:
    out: dict[int, dict[str, tuple[int, int]]] = {}
    for port, stats in after.items():
        out[port] = {}
        for name, (calls, usec) in stats.items():
            calls0, usec0 = before.get(port, {}).get(name, (0, 0))
            if name != "info" and calls > calls0:
                out[port][name] = (calls - calls0, usec - usec0)
    return out


@contextlib.contextmanager
def _topology(kind: str, base: Path) -> Iterator[tuple[str, list[int], ValkeyCluster | None]]:
    if kind == "cluster":
        with ValkeyCluster(base / "cluster") as cluster:
            yield cluster.url, [n.port for n in cluster.nodes], cluster
        return
    config = {"appendonly": "yes", "appendfsync": "everysec"}
    server = ValkeyProcess(base / "server", free_ports(1)[0], config, sentinel=False)
    server.start()
    try:
        yield server.url, [server.port], None
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def _deployment(
    kind: str, base: Path, engine: EngineConfig, workers: int
) -> AsyncIterator[Deployment]:
    with _topology(kind, base) as (url, ports, cluster):
        prefix = f"bench{uuid.uuid4().hex[:8]}"
        keys = Keys(prefix)
        jobs_port = cluster.node_of(keys.jobs).port if cluster else ports[0]
        processes = []
        logs = []
        try:
            for n in range(workers):
                log = open(base / f"{kind}-worker{n}.log", "wb")  # noqa: SIM115 - closed below
                logs.append(log)
                command = ["-m", "airoboros_bot", "worker", "--name", f"{kind}-{n}"]
                processes.append(
                    await asyncio.create_subprocess_exec(
                        sys.executable,
                        *command,
                        env=engine.environment(url, prefix, base / f"{kind}-data{n}"),
                        stdout=log,
                        stderr=asyncio.subprocess.STDOUT,
                    )
                )
            probe = await connect(url)
            try:
                client = EngineClient(probe, keys)
                deadline = time.monotonic() + 600
                while len(await client.live_workers()) < workers:
                    if any(p.returncode is not None for p in processes):
                        raise BenchmarkError(f"a {kind} worker exited; see its log in {base}")
                    if time.monotonic() > deadline:
                        raise BenchmarkError(f"the {kind} workers were not ready in 600 s")
                    await asyncio.sleep(0.1)
            finally:
                await probe.aclose()
            yield Deployment(kind, url, ports, prefix, jobs_port)
        finally:
            for process in processes:
                if process.returncode is None:
                    process.terminate()
            for process in processes:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), 60)
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            for log in logs:
                log.close()


@dataclass
class Round:
    """One timed round on one topology."""

    wall_s: float
    answers: list[list[float]]  # submitted, first text, done, tokens (epoch seconds)
    commands: dict[int, dict[str, tuple[int, int]]]

    @property
    def tokens(self) -> int:
        return int(sum(a[3] for a in self.answers))

    @property
    def total_commands(self) -> int:
        return sum(calls for node in self.commands.values() for calls, _ in node.values())


@contextlib.asynccontextmanager
async def _clients(dep: Deployment, requests: int, new_tokens: int) -> AsyncIterator[list]:
    """The bot-side client processes of one deployment, connected and ready."""
    clients = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.scale_out",
            "--client", dep.url, dep.prefix, str(requests), str(new_tokens),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(CLIENTS)
    ]  # fmt: skip
    try:
        for client in clients:
            line = await asyncio.wait_for(client.stdout.readline(), 300)
            if line.strip() != b"ready":
                raise BenchmarkError(f"a client did not start: {line!r}")
        yield clients
    finally:
        for client in clients:
            if client.returncode is None:
                client.stdin.close()
        for client in clients:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(client.wait(), 30)
            if client.returncode is None:
                client.kill()
                await client.wait()


async def _round(dep: Deployment, clients: list) -> Round:
    """Every client asks all its questions at once; timed from the go to the last answer."""
    before = dep.counters()
    started = time.time()
    for client in clients:
        client.stdin.write(b"go\n")
        await client.stdin.drain()
    lines = await asyncio.gather(*(c.stdout.readline() for c in clients))
    after = dep.counters()
    if not all(lines):
        raise BenchmarkError("a client failed")
    answers = [a for line in lines for a in json.loads(line)]
    wall = max(a[2] for a in answers) - started
    return Round(wall, answers, _delta(before, after))


# -- figures -------------------------------------------------------------------------------------
def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def _figures(dep: Deployment, rounds: list[Round], jobs_per_round: int) -> dict[str, float]:
    ttft = [1000 * (a[1] - a[0]) for r in rounds for a in r.answers]
    jobs_node = [r.commands.get(dep.jobs_port, {}) for r in rounds]
    queue_calls = [sum(n.get(c, (0, 0))[0] for c in QUEUE_COMMANDS) for n in jobs_node]
    queue_usec = [sum(n.get(c, (0, 0))[1] for c in QUEUE_COMMANDS) for n in jobs_node]
    xadd_usec_per_call = [
        n["xadd"][1] / n["xadd"][0] if n.get("xadd", (0, 0))[0] else 0.0 for n in jobs_node
    ]
    busiest = [
        max(sum(c for c, _ in node.values()) for node in r.commands.values()) / r.total_commands
        for r in rounds
    ]
    jobs_share = [
        sum(c for c, _ in r.commands.get(dep.jobs_port, {}).values()) / r.total_commands
        for r in rounds
    ]
    return {
        "tok_s": statistics.median(r.tokens / r.wall_s for r in rounds),
        "ttft_ms": statistics.median(ttft),
        "ttft_p95_ms": _percentile(ttft, 0.95),
        "latency_ms": statistics.median(1000 * (a[2] - a[0]) for r in rounds for a in r.answers),
        "commands_per_token": statistics.median(r.total_commands / r.tokens for r in rounds),
        "commands_per_job": statistics.median(r.total_commands / jobs_per_round for r in rounds),
        # The job stream (one key, so one node): its own commands plus the XADD of each job.
        "queue_commands_per_job": statistics.median(c / jobs_per_round + 1 for c in queue_calls),
        "queue_server_us_per_job": statistics.median(
            u / jobs_per_round + x for u, x in zip(queue_usec, xadd_usec_per_call, strict=True)
        ),
        "busiest_node_share": statistics.median(busiest),
        "jobs_node_share": statistics.median(jobs_share),
        "tokens": sum(r.tokens for r in rounds),
    }


async def _run(args: argparse.Namespace) -> Report:
    shape = QUICK_SHAPE if args.quick else CPU_SHAPE
    requests = args.requests or (2 if args.quick else 16)
    new_tokens = args.new_tokens or (8 if args.quick else 32)
    rounds_wanted = args.rounds or (1 if args.quick else 3)
    model_dir, build_s = ensure_bench_model(args.cache_dir or default_cache_dir(), shape)
    if args.worker != "process":
        raise BenchmarkError("scale_out runs its workers as processes only (--worker process)")
    engine = EngineConfig(
        model_dir, max_batch_size=16, batch_wait_ms=args.batch_wait_ms, intra_threads=args.threads
    )
    jobs_per_round = CLIENTS * requests
    report = Report("scale_out")
    say(
        f"scale_out: {args.workers} workers, {CLIENTS} clients x {requests} requests x "
        f"{new_tokens} tokens, {rounds_wanted} round(s) per topology, model {shape.label} int8"
    )
    say(f"  worker: {engine.describe()}")
    rounds: dict[str, list[Round]] = {kind: [] for kind in TOPOLOGIES}
    with work_dir() as tmp:
        async with (
            _deployment("server", tmp, engine, args.workers) as server,
            _deployment("cluster", tmp, engine, args.workers) as cluster,
        ):
            deployments = {"server": server, "cluster": cluster}
            async with (
                _clients(server, requests, new_tokens) as server_clients,
                _clients(cluster, requests, new_tokens) as cluster_clients,
            ):
                clients = {"server": server_clients, "cluster": cluster_clients}
                for kind in TOPOLOGIES:  # warm-up: first batches allocate, pools fill
                    await _round(deployments[kind], clients[kind])
                for n in range(rounds_wanted):
                    for kind in TOPOLOGIES if n % 2 == 0 else TOPOLOGIES[::-1]:
                        rounds[kind].append(await _round(deployments[kind], clients[kind]))
            figures = {k: _figures(deployments[k], rounds[k], jobs_per_round) for k in TOPOLOGIES}

    labels = {
        "tok_s": ("aggregate throughput", "tok/s"),
        "ttft_ms": ("first text, median", "ms"),
        "ttft_p95_ms": ("first text, p95", "ms"),
        "latency_ms": ("whole answer, median", "ms"),
        "commands_per_token": ("Redis commands per generated token", ""),
        "commands_per_job": ("Redis commands per job", ""),
        "queue_commands_per_job": ("job-stream commands per job", ""),
        "queue_server_us_per_job": ("job-stream server time per job", "us"),
        "busiest_node_share": ("share of commands on the busiest node", ""),
        "jobs_node_share": ("share of commands on the job stream's node", ""),
    }
    for kind in TOPOLOGIES:
        say(f"{'one Redis server' if kind == 'server' else 'Redis Cluster, 3 primaries'}:")
        for key, (label, unit) in labels.items():
            report.add(f"{kind}_{key}", figures[kind][key], label, unit)
    ratio = figures["cluster"]["tok_s"] / figures["server"]["tok_s"]
    report.add("ratio", ratio)
    report.add("ttft_ratio", figures["cluster"]["ttft_ms"] / figures["server"]["ttft_ms"])
    report.add("workers", args.workers)
    report.add("clients", CLIENTS)
    report.add("requests", jobs_per_round)
    report.add("new_tokens", new_tokens)
    report.add("rounds", rounds_wanted)
    report.add("model", f"{shape.label}-int8")
    report.add("worker", "process")
    tokens = sum(int(figures[k]["tokens"]) for k in TOPOLOGIES)
    report.add("tokens_generated", tokens, "tokens generated (timed rounds)")
    report.add("expected_tokens", 2 * rounds_wanted * jobs_per_round * new_tokens)
    report.add("model_build_s", build_s)
    say(f"  ratio (cluster / one server, tok/s)          {ratio:.2f}x")
    return report


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; the last printed line is its JSON figures."""
    args = _parser().parse_args(argv)
    if args.client:
        url, prefix, requests, tokens = args.client
        asyncio.run(_client(url, prefix, int(requests), int(tokens)))
        return 0
    return run_benchmark("scale_out", _run(args))


if __name__ == "__main__":
    raise SystemExit(main())
