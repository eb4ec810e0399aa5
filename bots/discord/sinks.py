"""Where an answer is shown while it streams: the response to an interaction, or a reply to a
chat message. Page 0 carries the buttons; pages past 2,000 characters are further messages.

Page 0 exists before the question is asked (`AnswerSink.open`): its id is the root of the reply
chain a new conversation starts, and every page's id is linked to the conversation, so a reply
to any of them continues it."""

from __future__ import annotations

import contextlib
from typing import Any

import discord

from airoboros_bot.bots.core.render import WRITING_MARKER, AnswerView
from airoboros_bot.bots.discord.buttons import ContinueButton, StopButton, button_view
from airoboros_bot.bots.discord.replies import NO_MENTIONS
from airoboros_bot.bots.discord.running import RunningAnswer


class AnswerSink:
    """Shows one answer: page 0 carries the buttons, later pages are further messages."""

    def __init__(self, *, offer_thread: bool) -> None:
        self.offer_thread = offer_thread
        self.running: RunningAnswer | None = None  # set by `commands.ask.AskCommands.answer`
        self.view: AnswerView | None = None  # likewise
        self.more: list[discord.Message | discord.WebhookMessage] = []
        self._buttons_shown = ""  # "", "stop" or "thread": what page 0 carries now

    def _wanted_buttons(self, final: bool) -> str:
        running = self.running
        if not final:
            return "stop" if running and running.job_id and not running.stopping else ""
        answer = self.view.final if self.view else None
        stopped = answer is not None and answer.finish_reason == "cancelled"
        return "thread" if self.offer_thread and answer is not None and not stopped else ""

    def _view(self, kind: str) -> discord.ui.View | None:
        if kind == "stop" and self.running:
            return button_view(StopButton(self.running.job_id, self.running.user_id))
        if kind == "thread":
            return button_view(ContinueButton())
        return None

    async def update(self, index: int, content: str, *, final: bool) -> None:
        """Create or edit page ``index`` (the `MessageSink` protocol of `bots.core.render`)."""
        if index == 0:
            kind = self._wanted_buttons(final)
            await self._set_first(content, self._view(kind))
            self._buttons_shown = kind
        elif index - 1 < len(self.more):
            await self.more[index - 1].edit(content=content, allowed_mentions=NO_MENTIONS)
        else:
            self.more.append(await self._send_more(content))

    async def open(self) -> int | None:
        """Make sure page 0 exists; its message id (None when it has none: private)."""
        raise NotImplementedError

    def page_ids(self) -> list[int]:
        """The ids of the answer's further pages (page 0 is `open`'s)."""
        return [page.id for page in self.more]

    async def remove(self, index: int) -> None:
        """Delete page ``index``, the last one (the answer restarted shorter: the
        `PageRemover` protocol of `bots.core.render`)."""
        page = self.more.pop(index - 1)
        with contextlib.suppress(discord.HTTPException):
            await page.delete()

    async def settle(self) -> None:
        """After the last update: give page 0 its final buttons if it was not edited last."""
        kind = self._wanted_buttons(True)
        if kind != self._buttons_shown:
            await self._set_first(None, self._view(kind))
            self._buttons_shown = kind

    async def fail(self, message: str) -> None:
        """Replace the partial answer with ``message``."""
        raise NotImplementedError

    async def _set_first(self, content: str | None, view: discord.ui.View | None) -> None:
        raise NotImplementedError

    async def _send_more(self, content: str) -> discord.Message | discord.WebhookMessage:
        raise NotImplementedError

    async def _delete_more(self) -> None:
        """Remove the pages after the first (those Discord still has)."""
        for page in self.more:
            with contextlib.suppress(discord.HTTPException):
                await page.delete()


def _edit(content: str | None, view: discord.ui.View | None) -> dict[str, Any]:
    """The options of an edit of page 0 (``content=None`` keeps the text, changes the view)."""
    options: dict[str, Any] = {"view": view, "allowed_mentions": NO_MENTIONS}
    if content is not None:
        options["content"] = content
    return options


class InteractionSink(AnswerSink):
    """An answer to a deferred interaction: edits of @original, then follow-ups."""

    def __init__(
        self,
        interaction: discord.Interaction,
        *,
        private: bool,
        offer_thread: bool,
        first_id: int | None = None,
    ) -> None:
        super().__init__(offer_thread=offer_thread and not private)
        self.interaction = interaction
        self.private = private
        self.first_id = first_id  # the deferred response's message

    async def open(self) -> int | None:
        """The deferral made page 0; its id (looked up if the deferral did not say)."""
        if self.first_id is None:
            self.first_id = (await self.interaction.original_response()).id
        return self.first_id

    async def _set_first(self, content: str | None, view: discord.ui.View | None) -> None:
        await self.interaction.edit_original_response(**_edit(content, view))

    async def _send_more(self, content: str) -> discord.WebhookMessage:
        return await self.interaction.followup.send(
            content, wait=True, ephemeral=self.private, allowed_mentions=NO_MENTIONS
        )

    async def fail(self, message: str) -> None:
        """Remove what was shown and tell the asker alone (ephemeral)."""
        with contextlib.suppress(discord.HTTPException):
            await self.interaction.delete_original_response()
        await self._delete_more()
        await self.interaction.followup.send(message, ephemeral=True, allowed_mentions=NO_MENTIONS)


class ReplySink(AnswerSink):
    """An answer to a chat message: a reply that is edited, then further messages."""

    def __init__(self, message: discord.Message, *, offer_thread: bool) -> None:
        super().__init__(offer_thread=offer_thread)
        self.source = message
        self.first: discord.Message | None = None
        self._first_content = ""

    async def open(self) -> int:
        """Post page 0 as a reply (with its Stop button when the job is known)."""
        if self.first is None:
            kind = self._wanted_buttons(False)
            await self._set_first(f"Thinking…{WRITING_MARKER}", self._view(kind))
            self._buttons_shown = kind
        assert self.first is not None
        return self.first.id

    async def update(self, index: int, content: str, *, final: bool) -> None:
        """As `AnswerSink.update`, without repeating what page 0 already shows."""
        unchanged = content == self._first_content
        if index == 0 and unchanged and self._wanted_buttons(final) == self._buttons_shown:
            return
        await super().update(index, content, final=final)

    async def _set_first(self, content: str | None, view: discord.ui.View | None) -> None:
        if self.first is None:
            self.first = await self.source.channel.send(
                content or "…",
                reference=self.source.to_reference(fail_if_not_exists=False),
                mention_author=False,
                allowed_mentions=NO_MENTIONS,
                view=view or discord.utils.MISSING,
            )
        else:
            self.first = await self.first.edit(**_edit(content, view))
        if content is not None:
            self._first_content = content

    async def _send_more(self, content: str) -> discord.Message:
        return await self.source.channel.send(content, allowed_mentions=NO_MENTIONS)

    async def fail(self, message: str) -> None:
        """Put ``message`` where the answer was (a reply cannot be ephemeral)."""
        await self._delete_more()
        await self._set_first(message, None)
