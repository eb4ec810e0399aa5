"""Does CTranslate2 share a model's weights between the replicas of ``inter_threads``?

Each ``inter_threads`` value is measured in a fresh process: the memory it holds (resident
memory on a CPU, the GPU's used memory on CUDA) before loading the model, after loading it, and
after every replica ran a batch at once. If the weights were copied per replica, each replica
would add about the model's size (``model.bin``); ``added_per_replica_mib`` shows what one more
replica really adds. ``ratio`` = memory added with 4 replicas / with 1.

    python -m benchmarks.replica_memory                 # CPU model (hidden 512, 8 layers)
    python -m benchmarks.replica_memory --quick         # a tiny model (smoke test)
    python -m benchmarks.replica_memory --device cuda   # the LLaMA-7B shape
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from benchmarks.common import (
    CPU_SHAPE,
    BenchmarkError,
    ModelShape,
    Report,
    bench_parser,
    default_cache_dir,
    ensure_bench_model,
    run_benchmark,
    say,
)

QUICK_SHAPE = ModelShape(hidden_size=256, num_layers=4, num_heads=4, vocab_size=32000)
"""About 19 MiB of weights: small to build, large beside the noise of a process's memory."""
PROBE = """
import json, sys, threading
from pathlib import Path
from airoboros_bot.engine.generator import Generator, SamplingParams

def used():
    if sys.argv[2] == "cuda":
        from benchmarks.serving import gpu_used_mib
        return gpu_used_mib()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

inter = int(sys.argv[3])
before = used()
gen = Generator(Path(sys.argv[1]), device=sys.argv[2], inter_threads=inter, intra_threads=1)
loaded = used()
prompt = gen.tokenizer.encode_prompt("USER: What color are blueberries? ASSISTANT: ")
calls = [threading.Thread(target=gen.generate, args=([prompt] * 4, [16] * 4, SamplingParams(0)))
         for _ in range(inter)]
for call in calls:
    call.start()
for call in calls:
    call.join()
print(json.dumps({"before": before, "loaded": loaded, "ran": used()}))
"""


def measure(model_dir: Path, device: str, inter: int) -> dict[str, float]:
    """Memory (MiB) before loading, after loading and after a batch on every replica."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(model_dir), device, str(inter)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=Path(__file__).resolve().parents[1],
    )
    if done.returncode != 0:
        raise BenchmarkError(f"inter_threads {inter}: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _parser() -> argparse.ArgumentParser:
    parser = bench_parser(
        "replica_memory",
        "Memory of a worker's model with inter_threads 1, 2 and 4 replicas.",
        quick="a tiny model (smoke test)",
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    return parser


async def _run(args: argparse.Namespace) -> Report:
    cache_dir = args.cache_dir or default_cache_dir()
    if args.device == "cuda":
        from benchmarks.gpu_7b import LLAMA_7B, ensure_llama_model

        shape = LLAMA_7B
        model_dir, _ = ensure_llama_model(cache_dir, shape)
    else:
        shape = QUICK_SHAPE if args.quick else CPU_SHAPE
        model_dir, _ = ensure_bench_model(cache_dir, shape)
    model_mib = (model_dir / "model.bin").stat().st_size / 2**20
    say(f"replica_memory: model {shape.label} ({model_mib:,.0f} MiB model.bin), {args.device}")
    report = Report("replica_memory")
    added: dict[int, float] = {}
    loaded: dict[int, float] = {}
    for inter in (1, 2, 4):
        m = measure(model_dir, args.device, inter)
        loaded[inter] = m["loaded"] - m["before"]
        added[inter] = m["ran"] - m["before"]
        report.add(f"loaded_mib_{inter}", loaded[inter], f"inter_threads {inter}: loaded", "MiB")
        report.add(f"added_mib_{inter}", added[inter], "  after a batch on each replica", "MiB")
    per_replica = (added[4] - added[1]) / 3
    shared = (loaded[4] - loaded[1]) / 3 < model_mib / 2
    report.add("model_mib", model_mib, "model.bin", "MiB")
    report.add("added_per_replica_mib", per_replica, "each replica beyond the first", "MiB")
    report.add("weights_shared", shared)
    report.add("ratio", added[4] / added[1])
    report.add("device", args.device)
    report.add("model", shape.label)
    say(
        f"  weights shared between replicas: {'yes' if shared else 'no'} (loading 4 replicas "
        f"takes {loaded[4]:,.0f} MiB, 1 takes {loaded[1]:,.0f}; each replica's working memory "
        f"for a batch of 4 is {per_replica:,.0f} MiB)"
    )
    return report


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; the last printed line is its JSON figures."""
    return run_benchmark("replica_memory", _run(_parser().parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
