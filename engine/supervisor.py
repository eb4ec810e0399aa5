"""One worker process per GPU: start them, restart any that dies, stop them together."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Mapping

log = logging.getLogger(__name__)


async def _keep_running(
    label: str, env: Mapping[str, str], stopping: asyncio.Event, max_backoff_s: float
) -> None:
    backoff = 1.0
    while not stopping.is_set():
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "airoboros_bot", "worker", env=dict(env)
        )
        log.info("started worker %s (pid %d)", label, process.pid)
        waiter = asyncio.ensure_future(process.wait())
        stopper = asyncio.ensure_future(stopping.wait())
        await asyncio.wait([waiter, stopper], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if stopping.is_set():
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(waiter, 60)
                except TimeoutError:
                    process.kill()
                    await waiter
            return
        log.error(
            "worker %s exited with %s; restarting in %.0f s", label, process.returncode, backoff
        )
        await asyncio.sleep(backoff)
        backoff = min(max_backoff_s, backoff * 2)


async def supervise(
    device_indexes: list[int],
    redis_url: str,
    stopping: asyncio.Event,
    *,
    metrics_port: int = 0,
    max_backoff_s: float = 30.0,
) -> int:
    """Run one ``airoboros-bot worker`` process per device index until ``stopping`` is set.

    Each child sees ``AIROBOROS_ENGINE_DEVICE_INDEX=[i]`` and, with metrics on, port
    ``metrics_port + n`` for the n-th device.
    """
    tasks = []
    for n, index in enumerate(device_indexes):
        env = dict(os.environ)
        env["AIROBOROS_REDIS_URL"] = redis_url
        env["AIROBOROS_ENGINE_DEVICE_INDEX"] = f"[{index}]"
        if metrics_port:
            env["AIROBOROS_ENGINE_METRICS_PORT"] = str(metrics_port + n)
        tasks.append(asyncio.create_task(_keep_running(f"#{index}", env, stopping, max_backoff_s)))
    await asyncio.gather(*tasks)
    return 0
