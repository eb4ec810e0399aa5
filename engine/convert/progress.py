"""What a conversion tells its user: numbered stage lines, "still running" ticks, sizes.

Every line goes to one callable (`Progress`); the command line prints them to stderr.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Progress = Callable[[str], None]
TICK_S = 15.0
"""How often a long stage reports that it is still running."""


def print_progress(line: str) -> None:
    """The default `Progress`: one line on stderr."""
    print(f"convert: {line}", file=sys.stderr, flush=True)


def duration(seconds: float) -> str:
    """ "12.3 s" or "4 min 05 s"."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s"


def size(num_bytes: float) -> str:
    """ "812 B", "13.5 GB" (decimal units, as disks are sold)."""
    for unit in ("B", "KB", "MB", "GB"):
        if num_bytes < 1000 or unit == "GB":
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1000
    raise AssertionError("unreachable")


def one_line(exc: BaseException) -> str:
    """The first non-blank line of an exception's message (its type name if it has none)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


class Stages:
    """Numbered stage lines ("[3/7] loading the weights"), and a line every `tick_s` seconds
    while a long stage runs."""

    def __init__(self, emit: Progress, *, total: int, tick_s: float | None = None) -> None:
        self._emit = emit
        self._total = total
        self._tick_s = TICK_S if tick_s is None else tick_s
        self._number = 0
        self._stage = ""
        self._stage_started = self._started = time.monotonic()
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    def stage(self, text: str) -> None:
        """Start the next stage."""
        with self._lock:
            self._number += 1
            self._stage, self._stage_started = text, time.monotonic()
        self._emit(f"[{self._number}/{self._total}] {text}")

    def note(self, text: str) -> None:
        """An indented line under the current stage."""
        self._emit(f"      {text}")

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    @contextmanager
    def ticking(self) -> Iterator[None]:
        """Report every `tick_s` seconds, from a thread, that the current stage still runs."""
        ticker = threading.Thread(target=self._tick, name="convert-progress", daemon=True)
        ticker.start()
        try:
            yield
        finally:
            self._stopped.set()
            ticker.join()

    def _tick(self) -> None:
        while not self._stopped.wait(self._tick_s):
            with self._lock:
                stage, since = self._stage, time.monotonic() - self._stage_started
            self._emit(f"      ... still {stage} ({duration(since)})")
