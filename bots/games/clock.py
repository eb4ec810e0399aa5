"""Time for the games: wall-clock seconds (stored in Redis, so a restarted bot agrees) and
sleeping until a moment. Tests inject a clock they move by hand."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Where the game engine gets the time and waits."""

    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    async def sleep_until(self, when: float) -> None:
        """Return once `now()` >= ``when`` (at once if it already is)."""
        ...


class SystemClock:
    """The real time."""

    def now(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    async def sleep_until(self, when: float) -> None:
        """Sleep until ``when`` (wall clock)."""
        while (delay := when - time.time()) > 0:
            await asyncio.sleep(delay)


class ScaledClock:
    """Time running ``speed`` times faster than the real one (demos and end-to-end tests).

    Starts at the real time of its creation, so stored timestamps still look like dates.
    """

    def __init__(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.speed = speed
        self._origin = time.time()
        self._start = time.monotonic()

    def now(self) -> float:
        """The scaled time, in seconds since the epoch."""
        return self._origin + (time.monotonic() - self._start) * self.speed

    async def sleep_until(self, when: float) -> None:
        """Sleep until the scaled time reaches ``when``."""
        while (delay := when - self.now()) > 0:
            await asyncio.sleep(delay / self.speed)
