"""The Slack adapter's logic: questions from ``/ask``, mentions and thread replies, modes,
reset, the Stop button, access rules and the per-user rate limit.

Platform-thin: it reads plain payload dicts, drives the `ChatService` and talks to Slack only
through the `SlackApi` protocol. `bots/slack_app.py` wires it to slack-bolt.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from airoboros_bot.bots.core.ratelimit import RateLimiter
from airoboros_bot.bots.core.render import EditBudget
from airoboros_bot.bots.core.service import ChatService
from airoboros_bot.bots.slack.api import (
    Origin,
    SlackApi,
    SlackCallFailed,
    reply_privately,
    text_field,
)
from airoboros_bot.bots.slack.context import SlackDocuments, cannot_post
from airoboros_bot.bots.slack.format import (
    ASK_USAGE,
    MODE_USAGE,
    THINKING,
    answer_blocks,
    mentions,
    plain_text,
    question_header,
    strip_mention,
)
from airoboros_bot.bots.slack.stream import SlackAnswerSink, render_answer
from airoboros_bot.bots.slack.threads import conversation_key, link_thread, linked_conversation
from airoboros_bot.config.settings import SlackSettings
from airoboros_bot.conversations.errors import ChatError
from airoboros_bot.conversations.models import ConversationKey

log = logging.getLogger(__name__)

# Message subtypes that are people writing; edits, joins, bot messages and the like are not.
HUMAN_SUBTYPES = frozenset({None, "file_share", "thread_broadcast"})


class SlackChat:
    """Everything the Slack app does, on plain payloads."""

    def __init__(
        self,
        service: ChatService,
        limiter: RateLimiter,
        settings: SlackSettings,
        api: SlackApi,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.limiter = limiter
        self.settings = settings
        self.api = api
        self.clock = clock
        self.documents = SlackDocuments(service, api, settings)
        self._budgets: dict[str, EditBudget] = {}

    def budget(self, team: str) -> EditBudget:
        """The chat.update budget shared by every answer streaming in one workspace."""
        if team not in self._budgets:
            self._budgets[team] = EditBudget(self.settings.edits_per_minute)
        return self._budgets[team]

    # -- access -------------------------------------------------------------------------------
    def access_error(self, team: str, channel: str, *, direct: bool = False) -> str | None:
        """Why the app may not be used here (None when it may)."""
        if self.settings.team_ids and team not in self.settings.team_ids:
            return "Sorry, this app is not enabled in this workspace."
        if direct:
            return None if self.settings.allow_dms else "Sorry, I don't answer direct messages."
        if self.settings.channel_ids and channel not in self.settings.channel_ids:
            return "Sorry, this app is not enabled in this channel."
        return None

    def command_origin(self, body: Mapping[str, Any]) -> Origin:
        """Where a slash command came from; `MalformedPayload` when it does not say."""
        return Origin(
            team=text_field(body, "team_id"),
            channel=text_field(body, "channel_id"),
            user=text_field(body, "user_id"),
            response_url=body.get("response_url") or None,
        )

    def check_command(self, body: Mapping[str, Any]) -> str | None:
        """An immediate reply for a slash command that cannot go on (bad payload, no access)."""
        try:
            origin = self.command_origin(body)
        except ChatError as exc:
            return exc.user_message
        direct = str(body.get("channel_name") or "") == "directmessage"
        return self.access_error(origin.team, origin.channel, direct=direct)

    # -- asking -------------------------------------------------------------------------------
    async def answer(
        self,
        origin: Origin,
        key: ConversationKey,
        question: str,
        *,
        thread_ts: str | None,
        header: str | None = None,
    ) -> None:
        """Post a placeholder and stream the answer into it (``thread_ts=None``: top level)."""
        wait = await self.limiter.check(f"slack:{origin.team}:{origin.user}")
        if wait:
            await reply_privately(
                self.api,
                origin,
                f"Slow down: you can ask {self.limiter.limit} questions a minute. "
                f"Try again in {math.ceil(wait)} s.",
            )
            return
        try:
            ts = await self.api.post_message(
                origin.channel,
                THINKING,
                answer_blocks(THINKING, header=header),
                thread_ts=thread_ts,
            )
        except SlackCallFailed as exc:
            await reply_privately(self.api, origin, cannot_post(exc.error))
            return
        if thread_ts is None:
            await link_thread(self.service, origin.team, origin.channel, ts, key)
        sink = SlackAnswerSink(
            self.api,
            origin.channel,
            ts,
            thread_ts=thread_ts,
            budget=self.budget(origin.team),
            header=header,
            owner=origin.user,
        )
        await render_answer(
            self.service.ask(key, question),
            sink,
            interval_s=self.settings.edit_interval_s,
            clock=self.clock,
        )

    async def ask_command(self, body: Mapping[str, Any]) -> None:
        """``/ask question``: answered at the top of the channel, in its conversation."""
        origin = self.command_origin(body)
        question = plain_text(str(body.get("text") or ""))
        if not question:
            await reply_privately(self.api, origin, ASK_USAGE)
            return
        key = conversation_key(origin.team, origin.channel)
        header = question_header(origin.user, question)
        await self.answer(origin, key, question, thread_ts=None, header=header)

    async def mention(self, event: Mapping[str, Any], team: str, bot_user_id: str | None) -> None:
        """``@bot question``: answered in the thread, which becomes (or continues) a
        conversation."""
        channel, user = text_field(event, "channel"), text_field(event, "user")
        ts = text_field(event, "ts")
        if self.access_error(team, channel):
            return
        thread = str(event.get("thread_ts") or "") or ts
        origin = Origin(team, channel, user, thread_ts=thread)
        question = plain_text(strip_mention(str(event.get("text") or ""), bot_user_id))
        if not question:
            await reply_privately(self.api, origin, "Ask me something after the mention.")
            return
        key = await linked_conversation(self.service, team, channel, thread)
        if key is None:
            key = conversation_key(team, channel, thread)
            await link_thread(self.service, team, channel, thread, key)
        await self.answer(origin, key, question, thread_ts=thread)

    async def message(self, event: Mapping[str, Any], team: str, bot_user_id: str | None) -> None:
        """A message event: a reply in a linked thread (a question, or a document in a context
        thread) or a direct message; everything else is ignored."""
        if event.get("subtype") not in HUMAN_SUBTYPES or event.get("bot_id"):
            return
        user, channel = event.get("user"), event.get("channel")
        text = str(event.get("text") or "")
        if not isinstance(user, str) or not isinstance(channel, str) or not event.get("ts"):
            return
        if mentions(text, bot_user_id):
            return  # the app_mention event answers it
        direct = event.get("channel_type") == "im"
        thread = str(event.get("thread_ts") or "")
        if thread and thread != event.get("ts"):
            await self._thread_reply(event, team, channel, user, thread, direct=direct)
        elif direct:
            origin = Origin(team, channel, user)
            denied = self.access_error(team, channel, direct=True)
            if denied:
                await reply_privately(self.api, origin, denied)
            elif plain_text(text):
                key = conversation_key(team, channel)
                await self.answer(origin, key, plain_text(text), thread_ts=None)

    async def _thread_reply(
        self,
        event: Mapping[str, Any],
        team: str,
        channel: str,
        user: str,
        thread: str,
        *,
        direct: bool,
    ) -> None:
        if self.access_error(team, channel, direct=direct):
            return
        key = await linked_conversation(self.service, team, channel, thread)
        if key is None:
            return
        origin = Origin(team, channel, user, thread_ts=thread)
        if key.thread and await self.service.context_title(key) is not None:
            await self.documents.thread_message(origin, key, event)
            return
        question = plain_text(str(event.get("text") or ""))
        if question:
            await self.answer(origin, key, question, thread_ts=thread)

    # -- modes, reset, stop -------------------------------------------------------------------
    async def mode_command(self, body: Mapping[str, Any]) -> None:
        """``/ask-mode [history|no-history]``: show or switch the channel conversation's mode."""
        origin = self.command_origin(body)
        key = conversation_key(origin.team, origin.channel)
        wanted = str(body.get("text") or "").strip().lower()
        try:
            if wanted:
                mode = await self.service.set_mode(key, wanted)
                text = f"Mode of this channel's conversation: *{mode.value}*."
            else:
                mode = await self.service.get_mode(key)
                text = f"Mode of this channel's conversation: *{mode.value}*. {MODE_USAGE}"
        except ChatError as exc:
            text = f"{exc.user_message} {MODE_USAGE}"
        await reply_privately(self.api, origin, text)

    async def reset_command(self, body: Mapping[str, Any]) -> None:
        """``/ask-reset``: forget the channel conversation's turns."""
        origin = self.command_origin(body)
        dropped = await self.service.reset(conversation_key(origin.team, origin.channel))
        await reply_privately(
            self.api,
            origin,
            f"Forgot this channel's conversation ({dropped} turns). Context blocks stay; "
            "`/context clear` removes them.",
        )

    async def context_command(self, body: Mapping[str, Any], bot_user_id: str | None) -> None:
        """``/context ...`` (see `SlackDocuments.command`)."""
        origin = self.command_origin(body)
        await self.documents.command(origin, str(body.get("text") or ""), bot_user_id)

    async def stop(self, payload: Mapping[str, Any]) -> None:
        """The Stop button: cancel the answer's job (only the person who asked may)."""
        actions = payload.get("actions")
        action = actions[0] if isinstance(actions, list) and actions else {}
        value = action.get("value") if isinstance(action, Mapping) else None
        user = text_field(payload, "user", "id")
        if not isinstance(value, str) or not value.strip():
            log.warning("a Stop button without a job id")
            return
        job_id, _, owner = value.strip().partition(" ")
        if owner and owner != user:
            channel = text_field(payload, "channel", "id")
            origin = Origin(
                text_field(payload, "team", "id"),
                channel,
                user,
                response_url=payload.get("response_url") or None,
            )
            await reply_privately(self.api, origin, f"Only <@{owner}> can stop this answer.")
            return
        await self.service.cancel(job_id)
