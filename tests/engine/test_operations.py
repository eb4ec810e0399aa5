"""Operations: worker health check, Prometheus metrics, the compose file."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import yaml

from engine.client import EngineClient
from engine.protocol import Job, Sampling
from engine.worker import Worker

ROOT = Path(__file__).resolve().parents[2]


def _check(redis_url: str, prefix: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIROBOROS_")}
    env.update(AIROBOROS_REDIS_URL=redis_url, AIROBOROS_REDIS_KEY_PREFIX=prefix)
    return subprocess.run(
        [sys.executable, "-m", "bots", "worker", "--check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_worker_check_follows_the_heartbeat(
    redis_url: str, key_prefix: str, worker: Worker, redis
) -> None:
    # The fixture's worker is named "test-worker", not after this host: --check is per host.
    assert _check(redis_url, key_prefix).returncode == 1
    local = Worker(
        redis, worker.generator, worker.keys, worker.settings, name=f"{socket.gethostname()}-check"
    )
    await local.heartbeat()
    result = _check(redis_url, key_prefix)
    assert result.returncode == 0, result.stderr
    assert "1 live worker(s)" in result.stderr
    await redis.delete(worker.keys.worker_health(local.name))  # the worker stopped reporting
    assert _check(redis_url, key_prefix).returncode == 1


async def test_metrics_count_jobs_tokens_and_batches(worker: Worker, client: EngineClient) -> None:
    jobs = [
        Job("USER: hi ASSISTANT: ", max_new_tokens=10, sampling=Sampling(0.8)) for _ in range(4)
    ]
    handles = await asyncio.gather(*(client.submit(j) for j in jobs))
    for handle in handles:
        [c async for c in client.stream(handle)]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    worker.metrics.serve(port, addr="127.0.0.1")
    body = await asyncio.to_thread(
        lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    )
    samples = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in body.splitlines()
        if line and not line.startswith("#")
    }
    assert samples['airoboros_jobs_total{outcome="length"}'] == 4
    assert samples["airoboros_generated_tokens_total"] == 40
    assert samples["airoboros_batch_size_count"] >= 1
    assert samples["airoboros_batch_size_sum"] == 4
    assert samples["airoboros_time_to_first_token_seconds_count"] == 4
    assert samples["airoboros_job_latency_seconds_count"] == 4
    assert "airoboros_queue_depth" in samples
    assert samples["airoboros_running_jobs"] == 0


def test_compose_file_runs_redis_worker_and_both_bots() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {"redis", "worker", "discord", "slack"} <= set(services)
    assert "--appendonly" in services["redis"]["command"]
    assert any(v.startswith("redis-data:") for v in services["redis"]["volumes"])
    worker = services["worker"]
    assert worker["command"] == ["airoboros-bot", "worker"]
    assert worker["healthcheck"]["test"] == ["CMD", "airoboros-bot", "worker", "--check"]
    gpus = worker["deploy"]["resources"]["reservations"]["devices"]
    assert gpus[0]["driver"] == "nvidia" and "gpu" in gpus[0]["capabilities"]
    for name in ("worker", "discord", "slack"):
        assert services[name]["env_file"] == [".env"]
        assert services[name]["environment"]["AIROBOROS_REDIS_URL"] == "redis://redis:6379/0"
        assert any(v.startswith("models:") for v in services[name]["volumes"])
    assert (ROOT / "Dockerfile").exists()
