"""Trivia and word games in Slack: ``/trivia``, ``/anagram`` and ``/words``, answers as plain
channel messages, and trivia channels (``AIROBOROS_SLACK_TRIVIA_CHANNEL_IDS``) where posting
``trivia``, ``anagram`` or ``words`` starts a round and the bot does not chat.

Platform-thin like `SlackChat`: plain payload dicts in, the `GameEngine` does the games, Slack
is reached through the `SlackApi` protocol (game messages through `SlackGameOutput`).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Awaitable, Mapping
from typing import Any

from airoboros_bot.bots.games import (
    AnswerStatus,
    GameEngine,
    GameError,
    GameUsage,
    StartGame,
    StopGame,
    parse_command,
    parse_post,
)
from airoboros_bot.bots.slack.api import Origin, reply_privately, text_field
from airoboros_bot.bots.slack.chat import HUMAN_SUBTYPES, SlackChat
from airoboros_bot.bots.slack.context import cannot_post
from airoboros_bot.bots.slack.format import escape, mentions, plain_text, strip_mention
from airoboros_bot.bots.slack.game_format import (
    ANAGRAM_USAGE,
    TRIVIA_CHANNEL_HINT,
    TRIVIA_USAGE,
    WORDS_USAGE,
    scores_mrkdwn,
)
from airoboros_bot.bots.slack.game_output import SlackGameOutput
from airoboros_bot.bots.slack.threads import conversation_key
from airoboros_bot.conversations.errors import ChatError

log = logging.getLogger(__name__)

SLACK_GAME_USAGE = GameUsage(
    trivia=TRIVIA_USAGE,
    anagram=ANAGRAM_USAGE,
    words=WORDS_USAGE,
    leaderboard="Usage: `/trivia leaderboard [channel | workspace]`.",
    trivia_command="/trivia",
)


class SlackGames:
    """The games' side of the Slack app, on plain payloads."""

    def __init__(self, engine: GameEngine, chat: SlackChat, output: SlackGameOutput) -> None:
        self.engine = engine
        self.chat = chat
        self.api = chat.api
        self.settings = chat.settings
        self.output = output
        self.trivia_channels = frozenset(chat.settings.trivia_channel_ids)

    # -- access -------------------------------------------------------------------------------
    def access_error(self, team: str, channel: str, *, direct: bool = False) -> str | None:
        """Why games may not be played here (None when they may). Trivia channels count as
        allowed channels."""
        refusal = self.chat.access_error(team, channel, direct=direct)
        if refusal and channel in self.trivia_channels and not direct:
            teams = self.settings.team_ids
            return refusal if teams and team not in teams else None
        return refusal

    def check_command(self, body: Mapping[str, Any]) -> str | None:
        """An immediate reply for a game command that cannot go on (bad payload, no access)."""
        try:
            origin = self.chat.command_origin(body)
        except ChatError as exc:
            return exc.user_message
        direct = str(body.get("channel_name") or "") == "directmessage"
        return self.access_error(origin.team, origin.channel, direct=direct)

    async def _attempt(self, origin: Origin, work: Awaitable[None]) -> None:
        """Run ``work``; a refusal (busy channel, bad argument, no game) is told privately."""
        try:
            await work
        except ChatError as exc:
            log.info("game request refused: %s", exc.user_message)
            await reply_privately(self.api, origin, escape(exc.user_message))

    # -- slash commands -----------------------------------------------------------------------
    async def command(self, body: Mapping[str, Any]) -> None:
        """``/trivia ...``, ``/anagram ...`` or ``/words ...`` (after the ack)."""
        origin = self.chat.command_origin(body)
        name = str(body.get("command") or "")
        text = plain_text(str(body.get("text") or ""))
        await self._attempt(origin, self._command(origin, name, text))

    async def _command(self, origin: Origin, name: str, text: str) -> None:
        request = parse_command(name.removeprefix("/"), text, SLACK_GAME_USAGE)
        key = conversation_key(origin.team, origin.channel)
        if isinstance(request, StartGame):
            await self._start(origin, request)
        elif isinstance(request, StopGame):
            await self.engine.stop(key, user_name=await self.api.user_name(origin.user))
        else:
            board = await self.engine.leaderboard(key, request.scope)
            await reply_privately(self.api, origin, scores_mrkdwn(board))

    async def _start(self, origin: Origin, request: StartGame) -> None:
        """Start a game (rate limited like questions); `ChatError` when it cannot start."""
        wait = await self.chat.limiter.check(f"slack:{origin.team}:{origin.user}")
        if wait:
            raise ChatError(
                f"Slow down: you can start {self.chat.limiter.limit} games or questions a minute. "
                f"Try again in {math.ceil(wait)} s."
            )
        key = conversation_key(origin.team, origin.channel)
        name = await self.api.user_name(origin.user)
        self.output.failures.pop(key.id, None)
        await self.engine.start(
            key,
            request.kind,
            topic=request.topic,
            rounds=request.rounds,
            prefix=request.prefix,
            user_id=origin.user,
            user_name=name,
        )
        error = self.output.failures.get(key.id)
        if error:  # nobody can see this game: end it at once
            with contextlib.suppress(GameError):
                await self.engine.stop(key)
            raise ChatError(cannot_post(error))

    # -- messages -----------------------------------------------------------------------------
    async def message(self, event: Mapping[str, Any], team: str, bot_user_id: str | None) -> bool:
        """A message event: an answer while a game runs in the channel (or just after), or a
        request to play in a trivia channel. False: not for the games (ordinary chat)."""
        if event.get("subtype") not in HUMAN_SUBTYPES or event.get("bot_id"):
            return False
        user, channel, ts = event.get("user"), event.get("channel"), event.get("ts")
        if not isinstance(user, str) or not isinstance(channel, str) or not ts:
            return False
        thread = str(event.get("thread_ts") or "")
        raw = str(event.get("text") or "")
        if (thread and thread != ts) or mentions(raw, bot_user_id):
            return False  # thread replies are conversations; mentions get app_mention events
        direct = event.get("channel_type") == "im"
        text = plain_text(raw)
        if not text or self.access_error(team, channel, direct=direct):
            return False
        return await self._play(Origin(team, channel, user), text)

    async def mention(self, event: Mapping[str, Any], team: str, bot_user_id: str | None) -> bool:
        """An ``@bot`` mention: in a trivia channel it is played (or told how to play), never
        answered by the model. False elsewhere."""
        channel = text_field(event, "channel")
        if channel not in self.trivia_channels:
            return False
        user, ts = text_field(event, "user"), text_field(event, "ts")
        if self.access_error(team, channel):
            return True
        thread = str(event.get("thread_ts") or "")
        text = plain_text(strip_mention(str(event.get("text") or ""), bot_user_id))
        top_level = not thread or thread == ts
        origin = Origin(team, channel, user, thread_ts=None if top_level else thread)
        if not (top_level and text and await self._play(origin, text)):
            await reply_privately(self.api, origin, TRIVIA_CHANNEL_HINT)
        return True

    async def _play(self, origin: Origin, text: str) -> bool:
        key = conversation_key(origin.team, origin.channel)
        if await self.engine.status(key) is None:
            request = None
            if origin.channel in self.trivia_channels:
                try:
                    request = parse_post(text, SLACK_GAME_USAGE)
                except ChatError as exc:
                    await reply_privately(self.api, origin, escape(exc.user_message))
                    return True
            if request is not None:
                await self._attempt(origin, self._start(origin, request))
                return True
            name = origin.user  # no game: only a late answer can match, and it scores nothing
        else:
            name = await self.api.user_name(origin.user)
        outcome = await self.engine.on_message(key, origin.user, name, text)
        if not outcome.handled:
            return False
        if outcome.message and outcome.status is not AnswerStatus.CORRECT:
            await reply_privately(self.api, origin, escape(outcome.message))
        return True
