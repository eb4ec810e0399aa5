"""The benchmarks run end to end in their smallest modes and end with one JSON line.

Each runs as a subprocess, as a developer or CI would run it, on a real Redis-protocol server
and the real CTranslate2 runtime. Speed targets are not asserted here (that is what the
benchmarks are for); the figures must be there, positive, and every answer must have run to its
full length.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.common import cached_build

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 180

COMMON_KEYS = {"bench", "ratio", "new_tokens", "worker", "tokens_generated", "expected_tokens"}
EXPECTED = {
    "batching": (
        ["--quick"],
        {
            "path_concurrent_tok_s",
            "path_sequential_tok_s",
            "raw_ratio",
            "raw_batch_s",
            "raw_sequential_s",
            "requests",
        },
    ),
    "overhead": (
        ["--quick"],
        {
            "raw_tok_s",
            "generator_tok_s",
            "path_tok_s",
            "raw_latency_ms",
            "path_latency_ms",
            "path_ttft_ms",
            "added_latency_ms",
        },
    ),
    "inter_threads": (
        ["--quick"],
        {
            "short_latency_inter1_ms",
            "short_latency_inter2_ms",
            "long_latency_inter1_ms",
            "long_latency_inter2_ms",
            "short_requests",
        },
    ),
    "worker_cpu": (
        ["--quick"],
        {
            "worker_us_per_token_8",
            "worker_us_per_token_16",
            "raw_us_per_token_16",
            "generator_us_per_token_16",
            "python_us_per_token_16",
            "path_tok_s_16",
            "levels",
        },
    ),
    "gpu_7b": (
        ["--small", "--quick"],
        {
            "batch1_raw_tok_s",
            "batch1_path_tok_s",
            "aggregate_raw_tok_s",
            "aggregate_generator_tok_s",
            "aggregate_path_tok_s",
            "concurrency",
            "device",
            "levels",
        },
    ),
    "serving": (
        ["--quick"],
        {
            "ceiling_tok_s",
            "ceiling_rps",
            "setups",
            "rates_rps",
            "requests",
            "prompt_tokens_max",
        },
    ),
    "scale_out": (
        ["--quick", "--workers", "1"],
        {
            "server_tok_s",
            "cluster_tok_s",
            "server_ttft_ms",
            "cluster_ttft_ms",
            "server_commands_per_token",
            "cluster_commands_per_token",
            "cluster_queue_commands_per_job",
            "clients",
            "workers",
        },
    ),
}
POSITIVE = {
    "ratio",
    "worker_us_per_token_8",
    "worker_us_per_token_16",
    "raw_us_per_token_16",
    "path_tok_s_16",
    "short_latency_inter1_ms",
    "short_latency_inter2_ms",
    "path_concurrent_tok_s",
    "path_sequential_tok_s",
    "raw_ratio",
    "raw_tok_s",
    "generator_tok_s",
    "path_tok_s",
    "raw_latency_ms",
    "path_latency_ms",
    "path_ttft_ms",
    "batch1_raw_tok_s",
    "batch1_path_tok_s",
    "aggregate_raw_tok_s",
    "aggregate_generator_tok_s",
    "aggregate_path_tok_s",
    "server_tok_s",
    "cluster_tok_s",
    "server_ttft_ms",
    "cluster_ttft_ms",
    "server_commands_per_token",
    "cluster_commands_per_token",
    "ceiling_tok_s",
    "ceiling_rps",
}
SERVING_FIGURES = {
    "tok_s",
    "ttft_p50_ms",
    "ttft_p99_ms",
    "chunk_gap_p50_ms",
    "chunk_gap_p99_ms",
    "e2e_p50_ms",
    "e2e_p99_ms",
}


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


@pytest.fixture(scope="module")
def bench_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One model cache for the module, so each model is built once."""
    return tmp_path_factory.mktemp("bench-cache")


IN_THE_SUITE = ("gpu_7b", "serving")
"""Run by `gpu_7b --suite --small --quick` (test_the_gpu_suite_...), checked there."""


@pytest.mark.parametrize("name", sorted(set(EXPECTED) - set(IN_THE_SUITE)))
def test_benchmark_smallest_mode_ends_with_its_figures(
    name: str, bench_cache: Path, redis_url: str
) -> None:
    options, _ = EXPECTED[name]
    env = dict(os.environ, AIROBOROS_BENCH_CACHE=str(bench_cache), REDIS_URL=redis_url)
    if name == "scale_out":
        env.pop("REDIS_URL")  # it starts its own cluster and server
    done = _run([f"benchmarks.{name}", *options], env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) > 3  # the human-readable figures come before the JSON line
    _check_figures(name, json.loads(lines[-1]))


def _check_figures(name: str, figures: dict) -> None:
    """A benchmark's JSON line: its keys, positive figures, every answer at full length."""
    assert figures["bench"] == name
    assert COMMON_KEYS | EXPECTED[name][1] <= figures.keys()
    for key in POSITIVE & figures.keys():
        assert isinstance(figures[key], int | float) and figures[key] > 0, (key, figures[key])
    # The models never end early, so every answer ran to its full length.
    assert figures["tokens_generated"] == figures["expected_tokens"] > 0
    if name == "serving":
        _check_serving(figures)
    if name == "gpu_7b" and importlib.util.find_spec("transformers"):
        # transformers runs the same shape (float32 on a CPU) beside CTranslate2.
        assert figures["peer_batch1_tok_s"] > 0 and figures["peer_aggregate_tok_s"] > 0
        assert figures["path_vs_peer"] > 0


def _check_serving(figures: dict) -> None:
    """Every set-up ran every rate, with positive figures, side by side in the output."""
    assert set(figures["setups"]) == {"inter1-wait2", "inter2-wait2"}
    for setup in figures["setups"].values():
        assert setup["worker_rss_peak_mib"] > 0
        assert [run["rate_rps"] for run in setup["runs"]] == figures["rates_rps"]
        for run in setup["runs"]:
            assert all(run[key] > 0 for key in SERVING_FIGURES), run
            assert run["ttft_p50_ms"] <= run["ttft_p99_ms"] <= run["e2e_p99_ms"]
    # The long prompts are there: a mixed workload, not one repeated question.
    assert figures["prompt_tokens_max"] > 3 * figures["prompt_tokens_median"] / 2


@pytest.mark.parametrize("name", sorted([*EXPECTED, "replica_memory"]))
def test_benchmark_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    module = importlib.import_module(f"benchmarks.{name}")
    with pytest.raises(SystemExit) as exited:
        module.main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert f"python -m benchmarks.{name}" in out
    assert "--quick" in out and "--worker" in out and "--cache-dir" in out


def test_gpu_7b_without_a_gpu_says_how_to_run_on_cpu(tmp_path: Path) -> None:
    import ctranslate2

    from benchmarks import gpu_7b

    if ctranslate2.get_cuda_device_count() > 0:
        pytest.skip("this machine has a GPU")
    with pytest.raises(SystemExit) as exited:
        gpu_7b.main(["--cache-dir", str(tmp_path)])
    assert "--small" in str(exited.value.code)
    assert list(tmp_path.iterdir()) == []  # refused before building anything


def test_the_gpu_suite_runs_on_cpu_and_writes_one_json_file(
    tmp_path: Path, bench_cache: Path
) -> None:
    out = tmp_path / "suite.json"
    env = dict(os.environ, AIROBOROS_BENCH_CACHE=str(bench_cache))
    env.pop("REDIS_URL", None)
    done = _run(["benchmarks.gpu_7b", "--suite", "--small", "--quick", "--out", str(out)], env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    suite = json.loads(out.read_text())
    assert json.loads(done.stdout.strip().splitlines()[-1]) == suite
    for name in IN_THE_SUITE:
        _check_figures(name, suite[name])
    assert [level["concurrency"] for level in suite["gpu_7b"]["levels"]] == [4, 8]
    assert all(level["ratio"] > 0 for level in suite["gpu_7b"]["levels"])
    # CTranslate2's replicas on one device share the weights; each adds its working memory.
    replicas = suite["replica_memory"]
    assert replicas["weights_shared"] is True
    assert replicas["loaded_mib_4"] - replicas["loaded_mib_1"] < replicas["model_mib"] / 2
    assert replicas["added_mib_4"] > replicas["added_mib_1"] > 0
    steps_s = suite["replica_memory_s"] + suite["gpu_7b_s"] + suite["serving_s"]
    assert 0 < steps_s <= suite["elapsed_s"] + 0.3  # rounding


def test_the_gpu_suite_stops_starting_steps_when_its_budget_is_spent(tmp_path: Path) -> None:
    out = tmp_path / "suite.json"
    done = _run(
        ["benchmarks.gpu_7b", "--suite", "--small", "--budget-s", "1", "--out", str(out)],
        dict(os.environ),
    )
    assert done.returncode == 1
    suite = json.loads(out.read_text())
    for step in ("replica_memory", "gpu_7b", "serving"):
        assert "budget was spent" in suite[step]["error"]


def test_cached_build_builds_once_and_never_leaves_half_a_model(tmp_path: Path) -> None:
    calls: list[Path] = []

    def build(out: Path) -> None:
        calls.append(out)
        (out / "model.bin").write_bytes(b"x")

    target = tmp_path / "model"
    path, seconds = cached_build(target, build)
    assert path == target and (target / "model.bin").read_bytes() == b"x"
    assert seconds > 0 and len(calls) == 1
    assert cached_build(target, build) == (target, 0.0)
    assert len(calls) == 1

    def broken(out: Path) -> None:
        (out / "model.bin").write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        cached_build(tmp_path / "other", broken)
    assert not (tmp_path / "other").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".other.build")] == []


def test_a_worker_that_cannot_start_fails_the_benchmark_with_its_reason(
    tmp_path: Path, redis_url: str
) -> None:
    from benchmarks.common import QUICK_SHAPE

    broken = tmp_path / f"demo-{QUICK_SHAPE.label}-int8-noeos"  # the cached model's place
    broken.mkdir()
    (broken / "model.bin").write_bytes(b"not a model")
    env = dict(os.environ, AIROBOROS_BENCH_CACHE=str(tmp_path), REDIS_URL=redis_url)
    done = _run(["benchmarks.batching", "--quick"], env)
    assert done.returncode == 1
    assert "batching: the worker exited" in done.stderr
    assert "model" in done.stderr.lower()
    assert not done.stdout.strip().splitlines()[-1].startswith("{")


@pytest.mark.parametrize("name", ["batching", "overhead"])
def test_concurrency_reports_tok_s_and_the_redis_connections(
    name: str, bench_cache: Path, redis_url: str
) -> None:
    env = dict(os.environ, AIROBOROS_BENCH_CACHE=str(bench_cache), REDIS_URL=redis_url)
    done = _run([f"benchmarks.{name}", "--quick", "--concurrency", "150"], env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["concurrency"] == 150
    assert figures["concurrent_path_tok_s"] > 0
    assert figures["concurrent_tokens"] == figures["concurrent_expected_tokens"] > 0
    # More answers at once than redis-py's default pool of 100, over a bounded pool.
    assert 1 <= figures["redis_connections_peak"] <= 32
