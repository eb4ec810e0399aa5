"""Streaming one answer into Slack: the placeholder is edited with chat.update at a bounded
cadence, pages past the first continue as thread replies, a Stop button while it is written.

Edits are paced twice: `stream_answer` sends at most one round per interval for each answer
(the final one too), and an `EditAllowance` shared by every answer in the workspace (in Redis:
every process) keeps all of them within Slack's Tier 3 limit for chat.update: intermediate
edits are skipped when it is empty, final ones wait. A 429 pauses the whole workspace's edits
for its Retry-After.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from airoboros_bot.bots.core.alerts import EngineAlerts
from airoboros_bot.bots.core.render import EditAllowance, split_message, stream_answer
from airoboros_bot.bots.core.service import Answer, AnswerEvent, Submitted
from airoboros_bot.bots.slack.api import SlackApi, SlackCallFailed, SlackRateLimited
from airoboros_bot.bots.slack.format import (
    PAGE_LIMIT,
    SlackAnswerView,
    answer_blocks,
    escape,
    format_sources,
)
from airoboros_bot.config.errors import AiroborosError
from airoboros_bot.engine.client import EngineUnavailable

log = logging.getLogger(__name__)
FAILED = "Sorry, something went wrong on my side; it has been logged. Please ask again."
MOVED = ":arrow_down: The answer is in the thread (Slack was limiting my edits)."
FINAL_EDIT_ATTEMPTS = 3
RETRY_DELAY_S = 0.5  # after a failed final edit (network, Slack error), times the attempt
# chat.update errors no retry can fix.
GONE = frozenset({"message_not_found", "channel_not_found", "cant_update_message", "is_archived"})


class SlackAnswerSink:
    """A `MessageSink` on Slack: page 0 is an existing placeholder message, later pages are
    posted as replies in its thread (``thread_ts = placeholder.thread_ts or placeholder.ts``).

    Intermediate edits are skipped when the workspace's budget is empty or Slack answers 429
    (its Retry-After then pauses the budget for every answer). Final edits wait for the budget
    and are retried; when one keeps failing, the text is posted as a new message in the thread
    and the placeholder, once Slack allows, points to it: the final text is never lost.
    """

    def __init__(
        self,
        api: SlackApi,
        channel: str,
        placeholder_ts: str,
        *,
        thread_ts: str | None,
        budget: EditAllowance,
        header: str | None = None,
        owner: str = "",
        job_id: str | None = None,
        final_attempts: int = FINAL_EDIT_ATTEMPTS,
    ) -> None:
        self.api = api
        self.channel = channel
        self.thread_ts = thread_ts or placeholder_ts
        self.budget = budget
        self.header = header
        self.owner = owner
        self.job_id = job_id
        self.final_attempts = final_attempts
        self.ts: list[str] = [placeholder_ts]
        self.contents: list[str] = [""]
        self.pending: dict[int, str] = {}
        self.done = False
        self.moved: set[int] = set()
        self._stop_shown = job_id is not None  # posted with the placeholder

    def stop_value(self) -> str | None:
        """The Stop button's value while the answer is written: ``"job owner"``."""
        return f"{self.job_id} {self.owner}".strip() if self.job_id and not self.done else None

    def _blocks(self, index: int, content: str) -> list[dict]:
        if index:
            return answer_blocks(content)
        stop = self.stop_value()
        self._stop_shown = stop is not None
        return answer_blocks(content, header=self.header, stop_value=stop)

    async def _send(self, index: int, content: str) -> None:
        await self.api.update_message(
            self.channel, self.ts[index], content, self._blocks(index, content)
        )
        self.pending.pop(index, None)
        self.contents[index] = content

    async def _edit_if_allowed(self, index: int, content: str) -> None:
        """An intermediate edit: skipped (kept pending) without budget, on a 429 or another
        passing failure; a message that is gone raises `SlackCallFailed` (the answer is then
        abandoned)."""
        if not await self.budget.try_take():
            self.pending[index] = content
            return
        try:
            await self._send(index, content)
        except SlackRateLimited as exc:
            log.info("chat.update rate limited: pausing edits for %.1f s", exc.retry_after)
            await self.budget.pause(exc.retry_after)
            self.pending[index] = content
        except SlackCallFailed as exc:
            if exc.error in GONE:
                raise
            log.info("chat.update failed (%s): the next edit will carry the text", exc.error)
            self.pending[index] = content

    async def _final_edit(self, index: int, content: str) -> None:
        """An edit that must arrive: waits for the budget, honours Retry-After, retries, and
        falls back to a new message in the thread."""
        for attempt in range(1, self.final_attempts + 1):
            await self.budget.take()
            try:
                await self._send(index, content)
                return
            except SlackRateLimited as exc:
                log.info("final chat.update rate limited (attempt %d)", attempt)
                await self.budget.pause(exc.retry_after)
            except SlackCallFailed as exc:
                log.info("final chat.update failed (attempt %d): %s", attempt, exc.error)
                if exc.error in GONE:
                    break
                if attempt < self.final_attempts:
                    await asyncio.sleep(RETRY_DELAY_S * attempt)
        await self._post_instead(index, content)

    async def _post_instead(self, index: int, content: str) -> None:
        """Post page ``index`` as a new message in the thread, in place of its message."""
        ts = await self.api.post_message(
            self.channel, content, answer_blocks(content), thread_ts=self.thread_ts
        )
        log.warning("an edit kept failing: posted the text as a new message in the thread")
        self.pending.pop(index, None)
        self.moved.add(index)
        old, self.ts[index] = self.ts[index], ts
        self.contents[index] = content
        if index == 0:
            self._stop_shown = False
            await self._point_to_reply(old)

    async def _point_to_reply(self, placeholder_ts: str) -> None:
        """Once Slack allows one more edit, make the old placeholder point to the answer."""
        await self.budget.take()
        try:
            await self.api.update_message(
                self.channel, placeholder_ts, MOVED, answer_blocks(MOVED, header=self.header)
            )
        except SlackCallFailed as exc:
            log.info("could not point the placeholder to the answer: %s", exc.error)

    async def update(self, index: int, content: str, *, final: bool) -> None:
        """Create page ``index`` as a thread reply if new, else edit it within the budget."""
        if index >= len(self.ts):
            ts = await self.api.post_message(
                self.channel, content, answer_blocks(content), thread_ts=self.thread_ts
            )
            self.ts.append(ts)
            self.contents.append(content)
            return
        if final:
            self.done = True
            for other in sorted(set(self.pending) - {index}):
                await self._final_edit(other, self.pending[other])
            await self._final_edit(index, content)
        else:
            await self._edit_if_allowed(index, content)

    async def fail(self, partial: str, message: str) -> None:
        """Show an error in place of the answer, after any text already written."""
        self.done = True
        body = partial.strip()
        text = (body + "\n\n" if body else "") + f":warning: {escape(message)}"
        for index, page in enumerate(split_message(text, PAGE_LIMIT)):
            await self.update(index, page, final=True)

    async def finish(self) -> None:
        """Send edits skipped for lack of budget and take the Stop button away."""
        self.done = True
        for index in sorted(self.pending):
            await self._final_edit(index, self.pending[index])
        if self._stop_shown:
            await self._final_edit(0, self.contents[0])


async def _watch_job(
    events: AsyncIterator[AnswerEvent], sink: SlackAnswerSink
) -> AsyncIterator[AnswerEvent]:
    """Pass events through, telling the sink the job id (for the Stop button).

    After the `Answer` the underlying stream is run to its end before the answer is passed on,
    so the engine's reader finishes cleanly although `stream_answer` stops at the answer.
    """
    async with contextlib.aclosing(events):  # type: ignore[type-var]
        async for event in events:
            if isinstance(event, Submitted):
                sink.job_id = event.job_id
            elif isinstance(event, Answer):
                async for _ in events:
                    pass
            yield event


async def render_answer(
    events: AsyncIterator[AnswerEvent],
    sink: SlackAnswerSink,
    *,
    interval_s: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    alerts: EngineAlerts | None = None,
) -> SlackAnswerView:
    """Stream ``events`` into ``sink``; chat and engine errors end up in the placeholder.

    With ``alerts``, an engine that is offline is reported to the admin and the user reads
    that an admin has been told. If Slack refuses an intermediate edit (e.g. the message was
    deleted), the answer is abandoned and its job cancelled.
    """
    view = SlackAnswerView(limit=PAGE_LIMIT, format_sources=format_sources)
    try:
        async with contextlib.aclosing(_watch_job(events, sink)) as stream:
            try:
                await stream_answer(
                    stream, sink, view, interval_s=interval_s, clock=clock, pace_final=True
                )
            except EngineUnavailable as exc:
                message = exc.user_message
                if alerts is not None:
                    message = await alerts.engine_offline(exc.user_message)
                await sink.fail(view.text, message)
            except AiroborosError as exc:
                await sink.fail(view.text, exc.user_message)
            except Exception:
                log.exception("an answer failed")
                await sink.fail(view.text, FAILED)
        await sink.finish()
    except SlackCallFailed as exc:
        log.warning("gave up an answer in %s: %s", sink.channel, exc)
    return view
