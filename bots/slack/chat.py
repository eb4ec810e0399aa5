"""The Slack adapter's logic: questions from ``/ask``, ``/ask-private``, mentions and thread
replies, modes, reset, the Stop button, access rules, admins and the per-user rate limit.

Platform-thin: it reads plain payload dicts, drives the `ChatService` and talks to Slack only
through the `SlackApi` protocol. `bots/slack/app.py` wires it to slack-bolt.

Conversations (see `bots/slack/threads.py`): a Slack thread is one; a reply in a thread the bot
is in continues it without a mention; ``/ask-private`` answers are ephemeral and kept per user.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from airoboros_bot.bots.core.alerts import EngineAlerts
from airoboros_bot.bots.core.ratelimit import RateLimiter, SharedEditBudget
from airoboros_bot.bots.core.render import EditAllowance
from airoboros_bot.bots.core.service import Actor, ChatService
from airoboros_bot.bots.slack.api import (
    Origin,
    SlackApi,
    SlackCallFailed,
    reply_privately,
    text_field,
)
from airoboros_bot.bots.slack.context import SlackDocuments, cannot_post
from airoboros_bot.bots.slack.format import (
    ASK_PRIVATE_USAGE,
    ASK_USAGE,
    MODE_USAGE,
    PAGE_LIMIT,
    PRIVATE_THINKING,
    THINKING,
    THREAD_COMMANDS,
    SlackAnswerView,
    answer_blocks,
    escape,
    format_sources,
    mentions,
    plain_text,
    question_header,
    strip_mention,
)
from airoboros_bot.bots.slack.stream import SlackAnswerSink, render_answer
from airoboros_bot.bots.slack.threads import (
    PLATFORM,
    conversation_key,
    link_thread,
    linked_conversation,
)
from airoboros_bot.config.errors import AiroborosError
from airoboros_bot.config.settings import SlackSettings
from airoboros_bot.conversations.errors import ChatError
from airoboros_bot.conversations.models import ConversationKey
from airoboros_bot.engine.client import EngineUnavailable

log = logging.getLogger(__name__)

# Message subtypes that are people writing; edits, joins, bot messages and the like are not.
HUMAN_SUBTYPES = frozenset({None, "file_share", "thread_broadcast"})


_MODE_COMMAND = re.compile(r"mode(?:\s+(\S+))?", re.IGNORECASE)


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
        self._budgets: dict[str, EditAllowance] = {}
        self._alerts: EngineAlerts | None = None

    def budget(self, team: str) -> EditAllowance:
        """The chat.update budget of one workspace, shared in Redis by every answer of every
        process of the app."""
        if team not in self._budgets:
            store = self.service.store
            key = store.keys.edit_budget(PLATFORM, team)
            self._budgets[team] = SharedEditBudget(store.redis, key, self.settings.edits_per_minute)
        return self._budgets[team]

    @property
    def alerts(self) -> EngineAlerts:
        """Where "the engine is offline" is reported for the admin."""
        if self._alerts is None:
            store = self.service.store
            self._alerts = EngineAlerts(store.redis, store.keys, PLATFORM)
        return self._alerts

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

    async def is_admin(self, user: str) -> bool:
        """An admin of the bot: on the admin list, or (if so set) a workspace admin / owner."""
        if user in self.settings.admin_user_ids:
            return True
        return self.settings.workspace_admins_are_admins and await self.api.is_workspace_admin(user)

    async def actor(self, user: str) -> Actor:
        """The user, as the service's permission checks see them."""
        return Actor(user, await self.is_admin(user))

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

    async def _slow_down(self, origin: Origin) -> bool:
        """Count a question; True (and the user told) when they asked too often."""
        wait = await self.limiter.check(f"slack:{origin.team}:{origin.user}")
        if wait:
            await reply_privately(
                self.api,
                origin,
                f"Slow down: you can ask {self.limiter.limit} questions a minute. "
                f"Try again in {math.ceil(wait)} s.",
            )
        return bool(wait)

    # -- asking -------------------------------------------------------------------------------
    async def answer(
        self,
        origin: Origin,
        question: str,
        *,
        key: ConversationKey | None,
        thread_ts: str | None,
        header: str | None = None,
    ) -> None:
        """Post a placeholder (with its Stop button) and stream the answer into it.

        ``key=None`` starts a new conversation in the thread of the placeholder (``/ask``);
        ``thread_ts=None`` posts at the top of the channel.
        """
        if await self._slow_down(origin):
            return
        job_id = self.service.new_job_id()
        stop = f"{job_id} {origin.user}"
        try:
            ts = await self.api.post_message(
                origin.channel,
                THINKING,
                answer_blocks(THINKING, header=header, stop_value=stop),
                thread_ts=thread_ts,
            )
        except SlackCallFailed as exc:
            await reply_privately(self.api, origin, cannot_post(exc.error))
            return
        if key is None:
            key = conversation_key(origin.team, origin.channel, ts)
            await self.service.begin(key, origin.user)
            await link_thread(self.service, origin.team, origin.channel, ts, key)
        sink = SlackAnswerSink(
            self.api,
            origin.channel,
            ts,
            thread_ts=thread_ts,
            budget=self.budget(origin.team),
            header=header,
            owner=origin.user,
            job_id=job_id,
        )
        await render_answer(
            self.service.ask(key, question, job_id=job_id),
            sink,
            interval_s=self.settings.edit_interval_s,
            clock=self.clock,
            alerts=self.alerts,
        )

    async def ask_command(self, body: Mapping[str, Any]) -> None:
        """``/ask question``: answered at the top of the channel; the answer's thread is a new
        conversation."""
        origin = self.command_origin(body)
        question = plain_text(str(body.get("text") or ""))
        if not question:
            await reply_privately(self.api, origin, ASK_USAGE)
            return
        header = question_header(origin.user, question)
        await self.answer(origin, question, key=None, thread_ts=None, header=header)

    async def ask_private_command(self, body: Mapping[str, Any]) -> None:
        """``/ask-private question``: an ephemeral answer in the user's private conversation
        of this channel (its turns never enter anyone else's history)."""
        origin = self.command_origin(body)
        question = plain_text(str(body.get("text") or ""))
        if not question:
            await reply_privately(self.api, origin, ASK_PRIVATE_USAGE)
            return
        if await self._slow_down(origin):
            return
        await reply_privately(self.api, origin, PRIVATE_THINKING)
        key = conversation_key(origin.team, origin.channel).private_for(origin.user)
        view = SlackAnswerView(limit=PAGE_LIMIT, format_sources=format_sources)
        try:
            async with contextlib.aclosing(self.service.ask(key, question)) as events:
                async for event in events:
                    view.apply(event)
            pages = view.pages()
        except EngineUnavailable as exc:
            pages = [f":warning: {await self.alerts.engine_offline(exc.user_message)}"]
        except AiroborosError as exc:
            pages = [f":warning: {escape(exc.user_message)}"]
        header = question_header(origin.user, question).replace(" asked:", " asked privately:")
        for index, page in enumerate(pages):
            blocks = answer_blocks(page, header=None if index else header)
            await reply_privately(self.api, origin, page, blocks)

    async def mention(self, event: Mapping[str, Any], team: str, bot_user_id: str | None) -> None:
        """``@bot question``: answered in the thread, which becomes (or continues) a
        conversation. In a thread the bot is not in yet, the thread's messages are read in as
        context blocks first. ``@bot reset`` / ``@bot mode ...`` manage the thread's
        conversation."""
        channel, user = text_field(event, "channel"), text_field(event, "user")
        ts = text_field(event, "ts")
        if self.access_error(team, channel):
            return
        parent = str(event.get("thread_ts") or "")
        thread = parent or ts
        origin = Origin(team, channel, user, thread_ts=thread)
        question = plain_text(strip_mention(str(event.get("text") or ""), bot_user_id))
        if not question:
            await reply_privately(self.api, origin, "Ask me something after the mention.")
            return
        key = await linked_conversation(self.service, team, channel, thread)
        if parent and await self._thread_command(origin, key, question):
            return
        if key is None:
            key = conversation_key(team, channel, thread)
            if parent and parent != ts:
                await self.documents.read_thread(origin, key, parent, ts, bot_user_id)
            await self.service.begin(key, user)
            await link_thread(self.service, team, channel, thread, key)
        await self.answer(origin, question, key=key, thread_ts=thread)

    async def _thread_command(self, origin: Origin, key: ConversationKey | None, text: str) -> bool:
        """``reset`` or ``mode [history|no-history]`` said to the bot in a thread; True when
        it was one (and was handled)."""
        words = " ".join(text.lower().split())
        mode = _MODE_COMMAND.fullmatch(words)
        if words != "reset" and mode is None:
            return False
        try:
            reply = await self._manage_thread(origin, key, words, mode.group(1) if mode else None)
        except ChatError as exc:
            reply = exc.user_message
        await reply_privately(self.api, origin, reply)
        return True

    async def _manage_thread(
        self, origin: Origin, key: ConversationKey | None, words: str, mode: str | None
    ) -> str:
        if key is None:
            return f"I have no conversation in this thread yet. {THREAD_COMMANDS}"
        if words == "reset":
            dropped = await self.service.reset(key, by=await self.actor(origin.user))
            return f"Forgot this thread's conversation ({dropped} turns); context blocks stay."
        if mode:
            chosen = await self.service.set_mode(key, mode, by=await self.actor(origin.user))
            return f"This thread's conversation is now in *{chosen.value}* mode."
        current = await self.service.get_mode(key)
        return f"This thread's conversation is in *{current.value}* mode. {THREAD_COMMANDS}"

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
                await self.service.begin(key, user)
                await self.answer(origin, plain_text(text), key=key, thread_ts=None)

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
            await self.answer(origin, question, key=key, thread_ts=thread)

    # -- modes, reset, stop -------------------------------------------------------------------
    async def mode_command(self, body: Mapping[str, Any]) -> None:
        """``/ask-mode [history|no-history]``: show or (admins) set the mode new conversations
        in this channel start with."""
        origin = self.command_origin(body)
        channel = conversation_key(origin.team, origin.channel)
        wanted = str(body.get("text") or "").strip().lower()
        try:
            if wanted:
                actor = await self.actor(origin.user)
                mode = await self.service.set_channel_mode(channel, wanted, by=actor)
                text = (
                    f"Conversations started in this channel from now on use *{mode.value}* "
                    "mode; those already going keep theirs."
                )
            else:
                mode = await self.service.channel_mode(channel)
                text = f"New conversations in this channel use *{mode.value}* mode. {MODE_USAGE}"
        except ChatError as exc:
            text = f"{exc.user_message} {MODE_USAGE}"
        await reply_privately(self.api, origin, text)

    async def reset_command(self, body: Mapping[str, Any]) -> None:
        """``/ask-reset``: forget the user's private conversation in this channel."""
        origin = self.command_origin(body)
        key = conversation_key(origin.team, origin.channel).private_for(origin.user)
        dropped = await self.service.reset(key, by=Actor(origin.user))
        await reply_privately(
            self.api,
            origin,
            f"Forgot your private conversation in this channel ({dropped} turns). "
            f"Thread conversations: {THREAD_COMMANDS}",
        )

    async def context_command(self, body: Mapping[str, Any], bot_user_id: str | None) -> None:
        """``/context ...`` (see `SlackDocuments.command`)."""
        origin = self.command_origin(body)
        text = str(body.get("text") or "")
        actor = await self.actor(origin.user) if text.strip().lower() == "clear" else None
        await self.documents.command(origin, text, bot_user_id, actor)

    async def stop(self, payload: Mapping[str, Any]) -> None:
        """The Stop button: cancel the answer's job (only the person who asked, or an admin)."""
        actions = payload.get("actions")
        action = actions[0] if isinstance(actions, list) and actions else {}
        value = action.get("value") if isinstance(action, Mapping) else None
        user = text_field(payload, "user", "id")
        if not isinstance(value, str) or not value.strip():
            log.warning("a Stop button without a job id")
            return
        job_id, _, owner = value.strip().partition(" ")
        if owner and owner != user and not await self.is_admin(user):
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
