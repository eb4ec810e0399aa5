"""Real `airoboros-bot worker` processes against a test's Redis, signalled by pid."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from airoboros_bot.engine.client import EngineClient, JobHandle
from airoboros_bot.engine.protocol import Chunk

ROOT = Path(__file__).resolve().parents[1]


class WorkerProcesses:
    """Starts worker processes configured by environment variables; kills them by pid."""

    def __init__(self, redis_url: str, prefix: str, model_dir: Path, **settings: object) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AIROBOROS_")}
        self.env.update(
            AIROBOROS_REDIS_URL=redis_url,
            AIROBOROS_REDIS_KEY_PREFIX=prefix,
            AIROBOROS_ENGINE_MODEL_DIR=str(model_dir),
            AIROBOROS_ENGINE_DEVICE="cpu",
            AIROBOROS_LOG_LEVEL="WARNING",
            **{f"AIROBOROS_ENGINE_{k.upper()}": str(v) for k, v in settings.items()},
        )
        self.processes: list[subprocess.Popen] = []
        self.by_name: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *, new_group: bool = False) -> subprocess.Popen:
        """Start ``airoboros-bot worker --name NAME`` (in its own process group if asked)."""
        process = subprocess.Popen(
            [sys.executable, "-m", "airoboros_bot", "worker", "--name", name],
            cwd=ROOT,
            env=self.env,
            start_new_session=new_group,
        )
        self.processes.append(process)
        self.by_name[name] = process
        return process

    def signal(self, name: str, sig: signal.Signals) -> float:
        """Send ``sig`` to the named worker; returns the monotonic time it was sent."""
        self.by_name[name].send_signal(sig)
        return time.monotonic()

    def kill(self, name: str) -> float:
        """SIGKILL the named worker and reap it; returns the time of the kill."""
        process = self.by_name.pop(name)
        at = time.monotonic()
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        return at

    def stop_all(self) -> None:
        """Kill every process still running (continuing stopped ones first)."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
            process.wait(10)


async def wait_for_workers(client: EngineClient, names: set[str], timeout: float = 60.0) -> None:
    """Until every named worker has reported in."""
    deadline = time.monotonic() + timeout
    while not names <= set(await client.live_workers()):
        if time.monotonic() > deadline:
            raise AssertionError(f"workers {sorted(names)} never all reported in")
        await asyncio.sleep(0.05)


async def kill_every_attempt(
    client: EngineClient,
    workers: WorkerProcesses,
    handle: JobHandle,
    victim: subprocess.Popen,
    *,
    kills: int = 2,
) -> None:
    """Read the job's answer, SIGKILLing the worker running it at each of its first ``kills``
    attempts and starting a fresh one (``doomed-N``); returns when the stream ends (a job that
    fails too often ends it with `JobFailed`, which propagates)."""
    killed = 0
    async for chunk in client.stream(handle):
        if isinstance(chunk, Chunk) and chunk.kind in ("start", "reset") and killed < kills:
            await asyncio.sleep(0.2)
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            killed += 1
            victim = workers.start(f"doomed-{killed}")
