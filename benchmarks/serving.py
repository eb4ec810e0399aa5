"""Serving as chat users feel it: questions arriving at random times, worker set-ups side by side.

Open-loop load: requests arrive as a Poisson process at several rates (whether or not earlier
answers are done), with prompts of mixed length (short questions, conversations with history,
context threads of ~1,500 tokens) and answer lengths drawn from a realistic spread (16 to 512
tokens, each request's ``max_new_tokens``; the benchmark models never end an answer by
themselves). Every request goes through the whole path (EngineClient -> Redis -> worker process
-> reply stream). The same requests, at the same arrival times, are sent to each worker set-up
(``inter_threads`` x ``batch_wait_ms``), so the columns compare set-ups, not luck.

Per set-up and rate: throughput (tokens/s from the first submit to the last answer), time to
first text, time between streamed chunks and end-to-end latency (p50/p99), time waiting for a
batch slot, and the worker's memory. The raw ceiling is CTranslate2 alone on the same requests:
all of them in one ``generate_batch`` (in batches of ``--ceiling-batch`` on a GPU, whose memory
holds only so many ~2,000-token sequences), each stopped at its own length. Rates are fractions
(``--load``) of that ceiling in requests/s, unless ``--rates`` names them.

    python -m benchmarks.serving                  # CPU, small model, 4 set-ups x 3 rates (~3 min)
    python -m benchmarks.serving --quick          # tiny model, a few short requests (CI)
    python -m benchmarks.serving --device cuda    # LLaMA-7B shape, int8_float16
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from airoboros_bot.config.settings import DEFAULT_SYSTEM_PROMPT
from airoboros_bot.engine.generator import Generator, LiveTokens, SamplingParams
from airoboros_bot.engine.model.demo import CONTEXT_LENGTH
from benchmarks.common import (
    GREEDY,
    QUICK_SHAPE,
    Answer,
    EngineConfig,
    ModelShape,
    Report,
    WorkerPath,
    ask,
    bench_parser,
    bench_session,
    default_cache_dir,
    ensure_bench_model,
    run_benchmark,
    say,
)

CPU_SERVING_SHAPE = ModelShape(hidden_size=128, num_layers=2, num_heads=4, vocab_size=8000)
"""The CPU model: small, so that a run of every set-up and rate takes minutes on two cores."""
MARGIN_TOKENS = 8
"""Room kept between a prompt plus its answer and the model's window."""
FILLER = (
    "The river town keeps its market open on Saturdays, and the bakery sells blueberry muffins "
    "until noon. Farmers bring apples, pears and honey from the hills; the ferry runs every half "
    "hour when the weather is calm. Last spring the council repaired the old stone bridge, "
    "planted a row of lime trees along the quay and opened a small library in the former post "
    "office. Visitors often ask why the sky over the estuary turns orange in the evening, how "
    "far the lighthouse can be seen from the sea, and which path leads to the ruined mill. "
)
QUESTIONS = (
    "What color are blueberries?",
    "Give me seven words that start with EN.",
    "How far away is the moon, and how long does light take to get here?",
    "Summarize the text above in three sentences.",
    "Which planet is the largest in our solar system? Explain briefly.",
    "Write a short poem about the river town.",
)


@dataclass(frozen=True)
class Workload:
    """The kinds of requests: shares of prompt lengths and the spread of answer lengths."""

    prompts: tuple[tuple[float, int, int], ...]
    """(share, fewest, most) prompt tokens of short questions, conversations, context threads."""
    answer_median: int
    answer_sigma: float
    answer_min: int
    answer_max: int


CHAT = Workload(
    prompts=((0.60, 40, 120), (0.25, 300, 700), (0.15, 1200, 1500)),
    answer_median=120,
    answer_sigma=0.9,
    answer_min=16,
    answer_max=512,
)
CPU_CHAT = Workload(
    prompts=((0.60, 40, 120), (0.25, 150, 300), (0.15, 400, 600)),
    answer_median=64,
    answer_sigma=0.8,
    answer_min=16,
    answer_max=256,
)
"""`CHAT` scaled for a CPU: reading a 1,500-token prompt takes seconds there (attention grows
with the square of its length), so the long threads are 400-600 tokens and answers <= 256."""
QUICK = Workload(
    prompts=((0.60, 30, 60), (0.25, 100, 200), (0.15, 300, 400)),
    answer_median=10,
    answer_sigma=0.6,
    answer_min=4,
    answer_max=24,
)


WORKLOADS = {"chat": CHAT, "cpu": CPU_CHAT, "quick": QUICK}


@dataclass(frozen=True)
class Request:
    """One request of the workload; it arrives ``at / rate`` seconds after the start."""

    prompt: str
    prompt_tokens: int
    new_tokens: int
    at: float


def _prompt_range(workload: Workload, pick: float) -> tuple[int, int]:
    """The (fewest, most) prompt tokens of the kind `pick` (uniform in [0, 1)) falls on."""
    for share, fewest, most in workload.prompts:
        if pick < share:
            return fewest, most
        pick -= share
    return workload.prompts[-1][1:]


def build_requests(
    count: int, workload: Workload, count_tokens: Callable[[str], int], *, seed: int = 0
) -> list[Request]:
    """`count` requests drawn from `workload` (the same for a seed), arriving as a Poisson
    process of rate 1 (exponential gaps). `count_tokens(prompt)` is the model's prompt length.
    """
    rng = random.Random(seed)
    words = FILLER.split()
    per_word = count_tokens(FILLER) / len(words)

    def prompt_of(i: int, n_words: int) -> str:
        context = " ".join(words[j % len(words)] for j in range(i, i + n_words))
        body = f"BEGININPUT {context} ENDINPUT " if context else ""
        question = QUESTIONS[i % len(QUESTIONS)]
        return f"{DEFAULT_SYSTEM_PROMPT} USER: {body}{question} (#{i}) ASSISTANT: "

    requests: list[Request] = []
    arrival = 0.0
    for i in range(count):
        target = rng.randint(*_prompt_range(workload, rng.random()))
        drawn = rng.lognormvariate(math.log(workload.answer_median), workload.answer_sigma)
        new_tokens = int(min(workload.answer_max, max(workload.answer_min, drawn)))
        n_words = max(0, int((target - count_tokens(prompt_of(i, 0))) / per_word))
        prompt = prompt_of(i, n_words)
        tokens = count_tokens(prompt)
        while tokens + new_tokens + MARGIN_TOKENS > CONTEXT_LENGTH and n_words > 0:
            n_words = max(0, n_words - 20)
            prompt = prompt_of(i, n_words)
            tokens = count_tokens(prompt)
        arrival += rng.expovariate(1.0)
        requests.append(Request(prompt, tokens, new_tokens, arrival))
    return requests


@dataclass(frozen=True)
class SetUp:
    """A worker configuration: batches in flight and the micro-batching wait."""

    inter_threads: int
    batch_wait_ms: float

    @property
    def label(self) -> str:
        """E.g. ``inter2-wait2``."""
        return f"inter{self.inter_threads}-wait{self.batch_wait_ms:g}"

    @classmethod
    def parse(cls, text: str) -> SetUp:
        """``"2x20"``: inter_threads 2, batch wait 20 ms."""
        inter, _, wait = text.partition("x")
        try:
            return cls(int(inter), float(wait or 2))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"a set-up is INTER_THREADSxBATCH_WAIT_MS, e.g. 2x20, not {text!r}"
            ) from None


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (linear interpolation); NaN when there are no values."""
    return float(np.percentile(values, q)) if values else math.nan


@dataclass(frozen=True)
class ServingRun:
    """What one set-up did with one rate of requests."""

    rate: float
    answers: list[Answer]
    late_s: list[float]
    """How late each request was submitted against its arrival time (a busy client)."""

    @property
    def tokens(self) -> int:
        """Tokens generated."""
        return sum(a.tokens for a in self.answers)

    @property
    def wall_s(self) -> float:
        """From the first submit to the last answer."""
        return max(a.done for a in self.answers) - min(a.submitted for a in self.answers)

    def figures(self) -> dict[str, float]:
        """The run's figures (milliseconds for times)."""
        ttft = [a.ttft_s * 1000 for a in self.answers]
        gaps = [g * 1000 for a in self.answers for g in a.chunk_gaps_s]
        e2e = [a.latency_s * 1000 for a in self.answers]
        waits = [(a.started - a.submitted) * 1000 for a in self.answers]
        return {
            "rate_rps": self.rate,
            "tok_s": self.tokens / self.wall_s,
            "ttft_p50_ms": percentile(ttft, 50),
            "ttft_p99_ms": percentile(ttft, 99),
            "chunk_gap_p50_ms": percentile(gaps, 50),
            "chunk_gap_p99_ms": percentile(gaps, 99),
            "e2e_p50_ms": percentile(e2e, 50),
            "e2e_p99_ms": percentile(e2e, 99),
            "slot_wait_p50_ms": percentile(waits, 50),
            "slot_wait_p99_ms": percentile(waits, 99),
            "late_p99_ms": percentile([s * 1000 for s in self.late_s], 99),
            "tokens": self.tokens,
        }


async def serve(path: WorkerPath, requests: list[Request], rate: float) -> ServingRun:
    """Send `requests` at their arrival times for `rate` (open loop) and read every answer."""
    start = time.perf_counter() + 0.05
    late: list[float] = []

    async def one(request: Request) -> Answer:
        due = start + request.at / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        late.append(max(0.0, time.perf_counter() - due))
        return await ask(path.client, request.prompt, request.new_tokens)

    answers = await asyncio.gather(*(one(r) for r in requests))
    return ServingRun(rate, list(answers), late)


def ceiling(engine: EngineConfig, requests: list[Request], batch: int) -> tuple[float, int]:
    """CTranslate2 alone on the requests (prompts tokenized before the clock starts), in
    `batch`-sized ``generate_batch`` calls, each request stopped at its own length: tok/s and
    tokens. This process gets every CPU thread (the worker is not running meanwhile)."""
    generator = Generator(
        engine.model_dir,
        device=engine.device,
        compute_type=engine.compute_type,
        intra_threads=engine.intra_threads * engine.inter_threads,
    )
    try:
        tokens = generator.tokenizer.encode_prompts([r.prompt for r in requests])
        limits = [r.new_tokens for r in requests]
        params = SamplingParams(GREEDY.temperature, GREEDY.top_k, GREEDY.top_p, 1.0)
        warm = min(batch, 4)
        generator.generate(tokens[:warm], [4] * warm, params, live=LiveTokens.for_batch(warm))
        generated = 0
        started = time.perf_counter()
        for first in range(0, len(requests), batch):
            part = slice(first, first + batch)
            live = LiveTokens.for_batch(len(tokens[part]))
            results = generator.generate(tokens[part], limits[part], params, live=live)
            generated += sum(len(ids) for ids in results)
        return generated / (time.perf_counter() - started), generated
    finally:
        generator.close()


def rss_peak_mib(pid: int) -> float:
    """Peak resident memory of a process (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return math.nan


def gpu_used_mib() -> float | None:
    """Memory in use on the first GPU (nvidia-smi), MiB; None without one."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
        return float(out.split()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def _parser() -> argparse.ArgumentParser:
    parser = bench_parser(
        "serving",
        "Open-loop chat load (Poisson arrivals, mixed prompts and answer lengths) through the "
        "whole path, worker set-ups side by side, beside CTranslate2's ceiling.",
        quick="tiny model, 10 short requests, one rate, two set-ups (smoke test)",
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument(
        "--compute-type", default=None, help="default: int8_float16 on CUDA, int8 on CPU"
    )
    parser.add_argument(
        "--requests", type=int, default=None, help="requests per rate (default 48; 320 on CUDA)"
    )
    parser.add_argument(
        "--setups",
        type=SetUp.parse,
        nargs="+",
        default=None,
        metavar="INTERxWAIT",
        help="worker set-ups, inter_threads x batch_wait_ms (default 1x2 2x2 4x2 2x20)",
    )
    parser.add_argument(
        "--load",
        type=float,
        nargs="+",
        default=None,
        help="rates as fractions of the ceiling in requests/s (default 0.3 0.6 0.9)",
    )
    parser.add_argument(
        "--rates", type=float, nargs="+", default=None, help="rates in requests/s instead"
    )
    parser.add_argument(
        "--in-flight",
        type=int,
        default=None,
        help="answers generated at once per worker, split over its inter_threads batches "
        "(default 32 on CPU, 64 on CUDA: the 7B's KV cache for ~2,000-token sequences)",
    )
    parser.add_argument(
        "--ceiling-batch",
        type=int,
        default=None,
        help="requests per generate_batch of the ceiling (default: all on CPU, 64 on CUDA)",
    )
    parser.add_argument(
        "--workload",
        choices=sorted(WORKLOADS),
        default=None,
        help="request mix: chat (prompts to 1,500 tokens, answers 16-512; CUDA default), "
        "cpu (the same, scaled for a CPU; CPU default), quick (--quick)",
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser


def _model(args: argparse.Namespace, cache_dir: Path) -> tuple[ModelShape, Path, float]:
    if args.device == "cuda":
        from benchmarks.gpu_7b import LLAMA_7B, ensure_llama_model

        return LLAMA_7B, *ensure_llama_model(cache_dir, LLAMA_7B)
    shape = QUICK_SHAPE if args.quick else CPU_SERVING_SHAPE
    return shape, *ensure_bench_model(cache_dir, shape)


async def _run(args: argparse.Namespace) -> Report:
    cuda = args.device == "cuda"
    if cuda:
        import ctranslate2

        if ctranslate2.get_cuda_device_count() < 1:
            raise SystemExit("serving: no CUDA device visible to CTranslate2; run it on CPU")
    count = args.requests or (10 if args.quick else 320 if cuda else 32)
    workload_name = args.workload or ("quick" if args.quick else "chat" if cuda else "cpu")
    setups = args.setups or (
        [SetUp(1, 2), SetUp(2, 2)]
        if args.quick
        else [SetUp(1, 2), SetUp(2, 2), SetUp(4, 2)] + ([] if cuda else [SetUp(2, 20)])
    )
    loads = args.load or ([0.5] if args.quick else [0.3, 0.6, 0.9])
    in_flight = args.in_flight or (64 if cuda else 32)
    compute_type = args.compute_type or ("int8_float16" if cuda else "int8")
    cores = os.cpu_count() or 1
    cache_dir = args.cache_dir or default_cache_dir()
    say(f"serving: building or reusing the model in {cache_dir} ...")
    shape, model_dir, build_s = await asyncio.to_thread(_model, args, cache_dir)

    def engine_for(setup: SetUp) -> EngineConfig:
        return EngineConfig(
            model_dir,
            device=args.device,
            compute_type=compute_type,
            max_batch_size=max(1, in_flight // setup.inter_threads),
            batch_wait_ms=setup.batch_wait_ms,
            inter_threads=setup.inter_threads,
            intra_threads=args.threads or (0 if cuda else max(1, cores // setup.inter_threads)),
        )

    from airoboros_bot.engine.tokenizer import Tokenizer

    tokenizer = Tokenizer.from_dir(model_dir)
    requests = build_requests(count, WORKLOADS[workload_name], tokenizer.count, seed=args.seed)
    prompt_tokens = [r.prompt_tokens for r in requests]
    answer_tokens = [r.new_tokens for r in requests]
    say(
        f"  model {shape.label}, {args.device} {compute_type}; {count} requests ({workload_name}"
        "): prompts "
        f"{min(prompt_tokens)}-{max(prompt_tokens)} tokens (median {int(np.median(prompt_tokens))})"
        f", answers {min(answer_tokens)}-{max(answer_tokens)} (median "
        f"{int(np.median(answer_tokens))}, mean {np.mean(answer_tokens):.0f})"
    )
    ceiling_batch = args.ceiling_batch or (64 if cuda else count)
    say(f"raw ceiling: generate_batch over all requests, {ceiling_batch} at a time ...")
    ceiling_engine = engine_for(SetUp(1, 2))
    if not cuda:
        ceiling_engine = EngineConfig(
            model_dir, compute_type=compute_type, intra_threads=args.threads or cores
        )
    ceiling_tok_s, ceiling_tokens = await asyncio.to_thread(
        ceiling, ceiling_engine, requests, ceiling_batch
    )
    capacity_rps = ceiling_tok_s / float(np.mean(answer_tokens))
    rates = args.rates or [round(load * capacity_rps, 3) for load in loads]
    report = Report("serving")
    report.add("ceiling_tok_s", ceiling_tok_s, "raw ceiling", "tok/s")
    report.add("ceiling_rps", capacity_rps, "raw ceiling in requests/s", "req/s")
    say(f"  rates (requests/s): {', '.join(f'{r:g}' for r in rates)}")

    results: dict[str, dict[str, object]] = {}
    generated = expected = 0
    async with bench_session("process") as session:
        for setup in setups:
            engine = engine_for(setup)
            say(f"{setup.label}: {engine.describe()}")
            async with session.path(engine) as path:
                assert path.pid is not None
                warm = requests[: min(len(requests), 4)]
                await asyncio.gather(*(ask(path.client, r.prompt, 4) for r in warm))
                memory: dict[str, object] = {"worker_rss_peak_mib": rss_peak_mib(path.pid)}
                if cuda:
                    memory["gpu_used_mib"] = gpu_used_mib()
                runs = []
                for rate in rates:
                    run = await serve(path, requests, rate)
                    figures = run.figures()
                    runs.append(figures)
                    generated += run.tokens
                    expected += sum(answer_tokens)
                    say(
                        f"  {rate:7.2f} req/s: {figures['tok_s']:8,.0f} tok/s, first text "
                        f"p50 {figures['ttft_p50_ms']:7,.0f} p99 {figures['ttft_p99_ms']:7,.0f} "
                        f"ms, chunks p50 {figures['chunk_gap_p50_ms']:5,.0f} p99 "
                        f"{figures['chunk_gap_p99_ms']:6,.0f} ms, end to end p50 "
                        f"{figures['e2e_p50_ms']:7,.0f} p99 {figures['e2e_p99_ms']:7,.0f} ms"
                    )
                memory["worker_rss_peak_mib"] = rss_peak_mib(path.pid)
                say(f"  worker peak memory: {memory['worker_rss_peak_mib']:,.0f} MiB")
            results[setup.label] = {
                "inter_threads": setup.inter_threads,
                "batch_wait_ms": setup.batch_wait_ms,
                "max_batch_size": engine.max_batch_size,
                **memory,
                "runs": runs,
            }
    _side_by_side(results, rates)
    best = max(max(run["tok_s"] for run in r["runs"]) for r in results.values())  # type: ignore[union-attr]
    report.add("ratio", best / ceiling_tok_s)
    report.add("setups", results)
    report.add("rates_rps", rates)
    report.add("device", args.device)
    report.add("compute_type", compute_type)
    report.add("model", shape.label)
    report.add("requests", count)
    report.add("workload", workload_name)
    report.add("prompt_tokens_median", float(np.median(prompt_tokens)))
    report.add("prompt_tokens_max", max(prompt_tokens))
    report.add("new_tokens", float(np.mean(answer_tokens)))
    report.add("worker", "process")
    report.add("tokens_generated", generated)
    report.add("expected_tokens", expected)
    report.add("ceiling_tokens", ceiling_tokens)
    report.add("model_build_s", build_s)
    say(f"  ratio (best set-up tok/s / raw ceiling)      {best / ceiling_tok_s:.3f}")
    return report


def _side_by_side(results: dict[str, dict[str, object]], rates: list[float]) -> None:
    """One table: a row per rate and figure, a column per set-up."""
    labels = list(results)
    say("side by side (ms unless said):")
    say(f"  {'rate':>8} {'figure':<16}" + "".join(f"{label:>16}" for label in labels))
    rows = (
        ("tok_s", "tok/s"),
        ("ttft_p50_ms", "first text p50"),
        ("ttft_p99_ms", "first text p99"),
        ("chunk_gap_p50_ms", "chunk gap p50"),
        ("chunk_gap_p99_ms", "chunk gap p99"),
        ("e2e_p50_ms", "end to end p50"),
        ("e2e_p99_ms", "end to end p99"),
        ("slot_wait_p99_ms", "slot wait p99"),
    )
    for index, rate in enumerate(rates):
        for key, name in rows:
            cells = "".join(
                f"{results[label]['runs'][index][key]:>16,.0f}"  # type: ignore[index]
                for label in labels
            )
            say(f"  {rate:>8.2f} {name:<16}{cells}")
    cells = "".join(f"{results[label]['worker_rss_peak_mib']:>16,.0f}" for label in labels)
    say(f"  {'':>8} {'worker MiB':<16}{cells}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; the last printed line is its JSON figures."""
    args = _parser().parse_args(argv)
    if args.worker != "process":
        raise SystemExit("serving: runs its workers as processes (as deployed)")
    return run_benchmark("serving", _run(args))


if __name__ == "__main__":
    raise SystemExit(main())
