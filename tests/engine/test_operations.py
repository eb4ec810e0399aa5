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

from airoboros_bot.engine.client import EngineClient
from airoboros_bot.engine.protocol import Job, Sampling
from airoboros_bot.engine.worker import Worker
from tests.environment import clean_env

ROOT = Path(__file__).resolve().parents[2]


def _check(redis_url: str, prefix: str) -> subprocess.CompletedProcess:
    env = clean_env(REDIS_URL=redis_url, REDIS_KEY_PREFIX=prefix)
    return subprocess.run(
        [sys.executable, "-m", "airoboros_bot", "worker", "--check"],
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


async def test_one_worker_process_per_device_restarted_when_it_dies(
    redis_url: str, key_prefix: str, demo_model_dir: Path, client: EngineClient
) -> None:
    import signal

    env = clean_env(
        REDIS_URL=redis_url,
        REDIS_KEY_PREFIX=key_prefix,
        ENGINE_MODEL_DIR=demo_model_dir,
        ENGINE_DEVICE="cpu",
        ENGINE_DEVICE_INDEX="[0, 0]",  # the CPU has one device: two processes on it
        ENGINE_HEARTBEAT_S=0.3,
        ENGINE_HEALTH_TTL_S=1,
    )
    parent = subprocess.Popen([sys.executable, "-m", "airoboros_bot", "worker"], cwd=ROOT, env=env)

    async def workers_become(count: int, exclude: set[str] = frozenset()) -> list[str]:
        for _ in range(300):
            names = [n for n in await client.live_workers() if n not in exclude]
            if len(names) == count:
                return names
            await asyncio.sleep(0.1)
        raise AssertionError(f"expected {count} workers, have {await client.live_workers()}")

    try:
        first = await workers_become(2)
        child_pid = int(first[0].rsplit("-", 2)[-2])
        os.kill(child_pid, signal.SIGKILL)
        replacement = await workers_become(1, exclude=set(first))
        assert replacement and replacement[0] not in first
        parent.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(parent.wait, 60) == 0
        await workers_become(0)
    finally:
        if parent.poll() is None:
            parent.kill()


async def test_heartbeat_and_event_loop_stay_alive_during_a_long_batch(
    worker: Worker, client: EngineClient, redis
) -> None:
    worker.settings.health_ttl_s = 1
    handle = await client.submit(Job("USER: go ASSISTANT: ", max_new_tokens=1800))
    gaps: list[float] = []
    health_seen: list[bool] = []
    loop = asyncio.get_running_loop()
    last = loop.time()
    async for _chunk in client.stream(handle):
        now = loop.time()
        gaps.append(now - last)
        last = now
        health_seen.append(bool(await redis.exists(worker.keys.worker_health(worker.name))))
    assert len(gaps) > 5
    assert max(gaps) < 1.0, "the event loop was never blocked by generation"
    assert all(health_seen), "the health key never expired while the batch ran"
