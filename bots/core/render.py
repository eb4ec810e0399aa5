"""Rendering a streaming answer into chat messages: platform limits and edit cadence.

Platform-neutral: an adapter gives a `MessageSink` (how to create / edit message *n*), the
platform's length limit and how to format sources; `stream_answer` does the rest.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

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


CLOSING_ROOM = 4  # "\n```": a page cut inside a code block closes it
MAX_REOPEN_LANGUAGE = 20  # a longer info string is not repeated on the next page
MAX_HELD_WORD = 40  # while writing, a partial word this long or longer is shown anyway


def _cut_point(text: str, limit: int, at_least: int = 0) -> int:
    """Where to cut ``text`` to at most ``limit`` characters without cutting a word: at the
    last paragraph, line or word break, none before ``at_least`` (the part already shown)
    when a break at or after it allows."""
    window = text[: limit + 1]
    floor = max(limit // 3, at_least - 1)
    for separator in ("\n\n", "\n", " "):
        at = window.rfind(separator, 0, limit + 1)
        if at > floor:
            return at
    at = window.rfind(" ")
    return at if at > 0 else limit  # one enormous word: nothing else to do


def _paginate(
    text: str, limit: int, *, reopen: str = "", shown: int = 0, fits: int | None = None
) -> Iterator[tuple[str, int, str]]:
    """The pages of ``text`` (see `split_message`), each with the offset in ``text`` where the
    rest starts after it and the code fence the next page reopens.

    ``reopen`` is the fence the first page reopens; ``shown`` how much of ``text`` the first
    page already showed (it is not cut shorter if a word break allows); a last page of up to
    ``fits`` characters (default ``limit``) is left whole.
    """
    if limit < 20:
        raise ValueError("limit too small")
    fits = limit if fits is None else fits
    position = 0
    while position < len(text):
        rest = reopen + text[position:]
        if len(rest) <= fits:
            yield rest, len(text), ""
            return
        at_least = len(reopen) + shown if position == 0 and shown else 0
        cut = _cut_point(rest, limit - CLOSING_ROOM, at_least)
        page, after = rest[:cut].rstrip(), rest[cut:]
        skipped = len(after) - len(after.lstrip(" \n"))
        position += max(1, cut + skipped - len(reopen))
        language = _open_fence(page)
        if language is not None:
            page += "\n```"
            reopen = f"```{language[:MAX_REOPEN_LANGUAGE]}\n"
        else:
            reopen = ""
        yield page, position, reopen


def split_message(text: str, limit: int) -> list[str]:
    """Split ``text`` into pieces of at most ``limit`` characters.

    Cuts at paragraph, line or word boundaries, never inside a word (unless a single word is
    longer than the limit). A code block cut by a page boundary is closed at the end of the
    page and reopened, with its language, at the start of the next one.
    """
    return [page for page, _, _ in _paginate(text, limit)] or [""]


def _whole_words(text: str) -> str:
    """``text`` without a partial word at its end (unless that word is long)."""
    end = max(text.rfind(" "), text.rfind("\n"))
    if len(text) - end > MAX_HELD_WORD:
        return text
    return text[: max(end, 0)].rstrip()


@dataclass
class Pager:
    """Splits a text that grows at its end into pages that never shrink.

    A page is frozen once the next one starts: it is never re-split. The last (live) page
    grows; when it must be cut, the cut is not before what it showed last time. While the
    text is still written (``final=False``) the live page keeps room to close a code block,
    and near its end it shows whole words only, so it can always be cut where it ended. A
    text that no longer starts with what was shown (the answer restarted, or its final text
    differs) is split afresh.
    """

    limit: int
    frozen: list[str] = field(default_factory=list)
    _covered: str = ""  # the start of the text the frozen pages hold
    _reopen: str = ""  # the code fence the live page reopens
    _live: str = ""  # the text the live page showed last (after `_covered`)

    def pages(self, text: str, *, final: bool = True) -> list[str]:
        """The pages of ``text``: the frozen ones, then the rest."""
        if not text.startswith(self._covered):
            self.frozen, self._covered, self._reopen, self._live = [], "", "", ""
        start = len(self._covered)
        rest = text[start:]
        shown = len(self._live) if rest.startswith(self._live) else 0
        fits = self.limit if final else self.limit - CLOSING_ROOM
        fresh = list(_paginate(rest, self.limit, reopen=self._reopen, shown=shown, fits=fits))
        for page, end, reopen in fresh[:-1]:
            self.frozen.append(page)
            self._covered, self._reopen = text[: start + end], reopen
        live = [page for page, _, _ in fresh[-1:]]
        if live and not final and len(live[0]) > fits - MAX_HELD_WORD:
            kept = len(self._reopen) + (shown if len(fresh) == 1 else 0)  # what it showed
            live[0] = live[0][: max(kept, len(_whole_words(live[0])))]
        rest = text[len(self._covered) :]
        self._live = rest[: max(0, len(live[0]) - len(self._reopen))] if live else ""
        return self.frozen + live or [""]


class MessageSink(Protocol):
    """Where an answer is shown: message 0 is the first, later ones continue it."""

    async def update(self, index: int, content: str, *, final: bool) -> None:
        """Create message ``index`` if new, else replace its content."""


@runtime_checkable
class PageRemover(Protocol):
    """A `MessageSink` that can delete a page the answer no longer has (after a restart)."""

    async def remove(self, index: int) -> None:
        """Delete message ``index`` (always the last one there is)."""


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

    def __post_init__(self) -> None:
        self._pager = Pager(self.limit)

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

    def content(self) -> str:
        """What to show, without the writing marker: the answer so far (or its status), and
        once it is final its sources and notes."""
        parts = [self.text.strip()]
        if self.final is None:
            return parts[0] or self.status or "Thinking…"
        if self.final.sources:
            parts.append(self.format_sources(self.final.sources))
        if self.final.finish_reason == "cancelled":
            parts.append("_(stopped)_")
        elif self.final.finish_reason == "deadline":
            parts.append("_(stopped: took too long)_")
        parts.extend(f"_{note}_" for note in self.notes)
        return "\n\n".join(p for p in parts if p)

    def body(self) -> str:
        """Everything to show, before splitting into messages."""
        return self.content() + ("" if self.final is not None else WRITING_MARKER)

    def pages(self) -> list[str]:
        """The messages, each within the platform's limit (`Pager`: a page never shrinks).

        While the answer is written, the last page ends with the writing marker; before any
        text, the status shows.
        """
        if self.final is not None:
            return self._pager.pages(self.content())
        visible = self.text.strip()
        if not visible:
            return [(self.status or "Thinking…") + WRITING_MARKER]
        pages = self._pager.pages(visible, final=False)
        pages[-1] += WRITING_MARKER
        return pages


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

    Only pages whose content changed are sent (a page never shrinks: `Pager`); pages the answer
    no longer has (it restarted) are deleted when the sink can (`PageRemover`); the final state
    is always sent. With ``pace_final`` the final round also keeps the interval after the
    previous one (it waits for the rest of the interval instead of following it at once).
    """
    shown: list[str] = []
    last = -interval_s

    async def flush(final: bool) -> None:
        nonlocal last
        pages = view.pages()
        if isinstance(sink, PageRemover):
            while len(shown) > len(pages):  # the answer restarted shorter: no orphan pages
                await sink.remove(len(shown) - 1)
                shown.pop()
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
