"""Rendering a streaming answer into chat messages: platform limits and edit cadence.

Platform-neutral: an adapter gives a `MessageSink` (how to create / edit message *n*), the
platform's length limit and how to format sources; `stream_answer` does the rest.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Protocol

from airoboros_bot.bots.core.service import Answer, AnswerEvent, Delta, Restart, Submitted
from airoboros_bot.conversations.models import ContextBlock
from airoboros_bot.engine.client import Queued

WRITING_MARKER = " ▌"
_FENCE = re.compile(r"^\s*```(\S*)", re.MULTILINE)


def _open_fence(text: str) -> str | None:
    """The info string of a code fence left open at the end of ``text`` (None if closed)."""
    language: str | None = None
    for match in _FENCE.finditer(text):
        language = match.group(1) if language is None else None
    return language


def _cut_point(text: str, limit: int) -> int:
    """Where to cut ``text`` to at most ``limit`` characters without cutting a word."""
    window = text[: limit + 1]
    for separator in ("\n\n", "\n", " "):
        at = window.rfind(separator, 0, limit + 1)
        if at > limit // 3:
            return at
    at = window.rfind(" ")
    return at if at > 0 else limit  # one enormous word: nothing else to do


def split_message(text: str, limit: int) -> list[str]:
    """Split ``text`` into pieces of at most ``limit`` characters.

    Cuts at paragraph, line or word boundaries, never inside a word (unless a single word is
    longer than the limit). A code block cut by a page boundary is closed at the end of the
    page and reopened, with its language, at the start of the next one.
    """
    if limit < 20:
        raise ValueError("limit too small")
    pages: list[str] = []
    rest = text
    reopen = ""
    while rest:
        rest = reopen + rest
        if len(rest) <= limit:
            pages.append(rest)
            break
        room = limit - 4  # space for a closing fence
        cut = _cut_point(rest, room)
        page, rest = rest[:cut].rstrip(), rest[cut:].lstrip(" \n")
        language = _open_fence(page)
        if language is not None:
            page += "\n```"
            reopen = f"```{language}\n"
        else:
            reopen = ""
        pages.append(page)
    return pages or [""]


class MessageSink(Protocol):
    """Where an answer is shown: message 0 is the first, later ones continue it."""

    async def update(self, index: int, content: str, *, final: bool) -> None:
        """Create message ``index`` if new, else replace its content."""


def plain_sources(blocks: tuple[ContextBlock, ...]) -> str:
    """Sources as plain text lines."""
    lines = []
    for number, block in enumerate(blocks, 1):
        url = block.metadata.get("url", "")
        extra = f" <{url}>" if url and url != block.label else ""
        lines.append(f"[{number}] {block.label}{extra}")
    return "Sources:\n" + "\n".join(lines)


@dataclass
class AnswerView:
    """The state of one streaming answer, as text for the platform."""

    limit: int
    format_sources: Callable[[tuple[ContextBlock, ...]], str] = plain_sources
    text: str = ""
    status: str = ""
    notes: list[str] = field(default_factory=list)
    final: Answer | None = None

    def apply(self, event: AnswerEvent) -> None:
        """Fold one event into the view."""
        if isinstance(event, Submitted):
            if event.omitted_blocks:
                names = ", ".join(b.label for b in event.omitted_blocks)
                self.notes.append(f"Left out (did not fit the window): {names}")
            if event.dropped_turns:
                self.notes.append(f"Left out the {event.dropped_turns} oldest turns.")
            self.status = "Thinking…"
        elif isinstance(event, Queued):
            self.status = f"Queued, {event.ahead} ahead…" if event.ahead else "Queued, next…"
        elif isinstance(event, Delta):
            self.text += event.text
            self.status = ""
        elif isinstance(event, Restart):
            self.text = ""
            self.status = "Restarting…"
        elif isinstance(event, Answer):
            self.final = event
            self.text = event.text
            self.status = ""

    def body(self) -> str:
        """Everything to show, before splitting into messages."""
        parts = [self.text.strip()]
        if self.final is not None:
            if self.final.sources:
                parts.append(self.format_sources(self.final.sources))
            if self.final.finish_reason == "cancelled":
                parts.append("_(stopped)_")
            elif self.final.finish_reason == "deadline":
                parts.append("_(stopped: took too long)_")
            parts.extend(f"_{note}_" for note in self.notes)
        body = "\n\n".join(p for p in parts if p)
        if self.final is None:
            body = (
                (body + WRITING_MARKER) if body else (self.status or "Thinking…") + WRITING_MARKER
            )
        return body

    def pages(self) -> list[str]:
        """The messages, each within the platform's limit."""
        return split_message(self.body(), self.limit)


async def stream_answer(
    events: AsyncIterator[AnswerEvent],
    sink: MessageSink,
    view: AnswerView,
    *,
    interval_s: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    pace_final: bool = False,
) -> AnswerView:
    """Render ``events`` into ``sink``: at most one round of edits per ``interval_s``.

    Only pages whose content changed are sent; the final state is always sent. With
    ``pace_final`` the final round also keeps the interval after the previous one (it waits
    for the rest of the interval instead of following it at once).
    """
    shown: list[str] = []
    last = -interval_s

    async def flush(final: bool) -> None:
        nonlocal last
        pages = view.pages()
        for index, content in enumerate(pages):
            if index >= len(shown) or shown[index] != content:
                await sink.update(index, content, final=final)
                if index >= len(shown):
                    shown.append(content)
                else:
                    shown[index] = content
        last = clock()

    async for event in events:
        view.apply(event)
        if isinstance(event, Answer):
            break
        if clock() - last >= interval_s:
            await flush(final=False)
    if pace_final:
        await asyncio.sleep(max(0.0, min(interval_s, last + interval_s - clock())))
    await flush(final=True)
    return view


class EditAllowance(Protocol):
    """How many message edits a workspace may make: a token bucket (in process, or shared by
    every process in Redis: `bots.core.ratelimit.SharedEditBudget`)."""

    async def try_take(self) -> bool:
        """Take a token if one is there (intermediate edits are skipped otherwise)."""

    async def take(self) -> None:
        """Wait for a token (final edits)."""

    async def pause(self, seconds: float) -> None:
        """The platform said "too many": no edits for anyone for ``seconds``."""


class EditBudget:
    """A token bucket in this process shared by every answer streaming in one workspace.

    Intermediate edits are skipped when the bucket is empty; final edits wait for a token.
    """

    def __init__(self, per_minute: float, burst: int | None = None) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(burst if burst is not None else max(1, int(per_minute // 6)))
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self.paused_until = 0.0

    def _refill(self) -> None:
        now = time.monotonic()
        since = max(self.updated, self.paused_until)  # nothing refills during a pause
        if now > since:
            self.tokens = min(self.capacity, self.tokens + (now - since) * self.rate)
        self.updated = now

    def _wait(self) -> float:
        """0 after taking a token, else the seconds until one may be there."""
        self._refill()
        if self.updated < self.paused_until:
            return self.paused_until - self.updated
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate

    async def try_take(self) -> bool:
        """Take a token if one is there."""
        return self._wait() == 0.0

    async def take(self) -> None:
        """Wait for a token."""
        while wait := self._wait():
            await asyncio.sleep(max(0.05, wait))

    async def pause(self, seconds: float) -> None:
        """No tokens for anyone for ``seconds`` (then the bucket refills from empty)."""
        self._refill()
        self.paused_until = max(self.paused_until, self.updated + seconds)
        self.tokens = 0.0
