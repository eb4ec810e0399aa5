"""Streaming one answer into Slack: the placeholder is edited with chat.update at a bounded
cadence, pages past the first continue as thread replies, a Stop button while it is written.

Edits are paced twice: `stream_answer` sends at most one round per interval for each answer,
and an `EditBudget` shared by every answer in the workspace keeps all of them within Slack's
Tier 3 limit for chat.update (intermediate edits are skipped when it is empty, final ones wait).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from airoboros_bot.bots.core.render import EditBudget, split_message, stream_answer
from airoboros_bot.bots.core.service import Answer, AnswerEvent, Submitted
from airoboros_bot.bots.slack.api import SlackApi, SlackCallFailed
from airoboros_bot.bots.slack.format import (
    PAGE_LIMIT,
    SlackAnswerView,
    answer_blocks,
    escape,
    format_sources,
)
from airoboros_bot.config.errors import AiroborosError

log = logging.getLogger(__name__)
FAILED = "Sorry, something went wrong on my side; it has been logged. Please ask again."


class SlackAnswerSink:
    """A `MessageSink` on Slack: page 0 is an existing placeholder message, later pages are
    posted as replies in its thread (``thread_ts = placeholder.thread_ts or placeholder.ts``)."""

    def __init__(
        self,
        api: SlackApi,
        channel: str,
        placeholder_ts: str,
        *,
        thread_ts: str | None,
        budget: EditBudget,
        header: str | None = None,
        owner: str = "",
    ) -> None:
        self.api = api
        self.channel = channel
        self.thread_ts = thread_ts or placeholder_ts
        self.budget = budget
        self.header = header
        self.owner = owner
        self.job_id: str | None = None
        self.ts: list[str] = [placeholder_ts]
        self.contents: list[str] = [""]
        self.pending: dict[int, str] = {}
        self.done = False
        self._stop_shown = False

    def _blocks(self, index: int, content: str) -> list[dict]:
        if index:
            return answer_blocks(content)
        stop = f"{self.job_id} {self.owner}".strip() if self.job_id and not self.done else None
        self._stop_shown = stop is not None
        return answer_blocks(content, header=self.header, stop_value=stop)

    async def _edit(self, index: int, content: str) -> None:
        self.pending.pop(index, None)
        await self.api.update_message(
            self.channel, self.ts[index], content, self._blocks(index, content)
        )
        self.contents[index] = content

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
                await self.budget.take()
                await self._edit(other, self.pending[other])
            await self.budget.take()
            await self._edit(index, content)
        elif self.budget.try_take():
            await self._edit(index, content)
        else:
            self.pending[index] = content

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
            await self.budget.take()
            await self._edit(index, self.pending[index])
        if self._stop_shown:
            await self.budget.take()
            await self._edit(0, self.contents[0])


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
) -> SlackAnswerView:
    """Stream ``events`` into ``sink``; chat and engine errors end up in the placeholder.

    If Slack refuses an edit (e.g. the message was deleted), the answer is abandoned and its
    job cancelled.
    """
    view = SlackAnswerView(limit=PAGE_LIMIT, format_sources=format_sources)
    try:
        async with contextlib.aclosing(_watch_job(events, sink)) as stream:
            try:
                await stream_answer(stream, sink, view, interval_s=interval_s, clock=clock)
            except AiroborosError as exc:
                await sink.fail(view.text, exc.user_message)
            except Exception:
                log.exception("an answer failed")
                await sink.fail(view.text, FAILED)
        await sink.finish()
    except SlackCallFailed as exc:
        log.warning("gave up an answer in %s: %s", sink.channel, exc)
    return view
