"""The Slack Web API calls the Slack adapter makes (a small protocol), and payload helpers.

`bots/slack_web.py` implements it with slack_sdk's ``AsyncWebClient``; the adapter's logic
(`slack_chat`, `slack_context`, `slack_stream`) only sees this protocol and `SlackCallFailed`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from airoboros_bot.conversations.errors import ChatError

log = logging.getLogger(__name__)


class SlackCallFailed(Exception):
    """A Web API call answered ``ok: false`` (``error`` is Slack's code, e.g. not_in_channel)."""

    def __init__(self, method: str, error: str) -> None:
        super().__init__(f"{method} failed: {error}")
        self.method = method
        self.error = error


class SlackApi(Protocol):
    """What the adapter needs from Slack's Web API."""

    async def post_message(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        *,
        thread_ts: str | None = None,
    ) -> str:
        """chat.postMessage; returns the new message's ts."""

    async def update_message(
        self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None:
        """chat.update."""

    async def post_ephemeral(
        self, channel: str, user: str, text: str, *, thread_ts: str | None = None
    ) -> None:
        """chat.postEphemeral."""

    async def respond(self, response_url: str, text: str) -> None:
        """An ephemeral reply through a slash command's or shortcut's response_url."""

    async def permalink(self, channel: str, ts: str) -> str | None:
        """chat.getPermalink (None when Slack cannot give one)."""

    async def user_name(self, user: str) -> str:
        """users.info: the display or real name (the id when unknown)."""

    async def channel_name(self, channel: str) -> str:
        """conversations.info: ``#name`` (the id when unknown)."""

    async def file_info(self, file_id: str) -> dict[str, Any]:
        """files.info: the file object."""

    async def download(self, url: str, max_bytes: int) -> bytes:
        """A private file's content, fetched with the bot token."""


class MalformedPayload(ChatError):
    """A request from Slack lacks a field the adapter needs."""


def text_field(data: Mapping[str, Any], *path: str) -> str:
    """The non-empty string at ``path`` in a payload; raises `MalformedPayload` otherwise."""
    value: Any = data
    for name in path:
        value = value.get(name) if isinstance(value, Mapping) else None
    if not isinstance(value, str) or not value:
        raise MalformedPayload(
            f"Sorry, that request from Slack was incomplete (no {'.'.join(path)}); "
            "nothing was done."
        )
    return value


@dataclass(frozen=True)
class Origin:
    """Who asked, where: the target of private replies."""

    team: str
    channel: str
    user: str
    thread_ts: str | None = None
    response_url: str | None = None


async def reply_privately(api: SlackApi, origin: Origin, text: str) -> None:
    """An ephemeral message to the user (chat.postEphemeral, else the response_url)."""
    try:
        await api.post_ephemeral(origin.channel, origin.user, text, thread_ts=origin.thread_ts)
        return
    except SlackCallFailed as exc:
        if not origin.response_url:
            log.warning("could not reply to %s in %s: %s", origin.user, origin.channel, exc.error)
            return
    try:
        await api.respond(origin.response_url, text)
    except SlackCallFailed as exc:
        log.warning("could not reply through the response_url: %s", exc.error)
