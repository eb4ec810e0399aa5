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


class SlackRateLimited(SlackCallFailed):
    """Slack answered 429: nothing more of this method before ``retry_after`` seconds."""

    def __init__(self, method: str, retry_after: float) -> None:
        super().__init__(method, "ratelimited")
        self.retry_after = retry_after


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
        """chat.update; `SlackRateLimited` on a 429 (not retried: the caller decides)."""

    async def post_ephemeral(
        self,
        channel: str,
        user: str,
        text: str,
        *,
        thread_ts: str | None = None,
        blocks: list[dict[str, Any]] | None = None,
    ) -> None:
        """chat.postEphemeral."""

    async def respond(
        self,
        response_url: str,
        text: str,
        *,
        blocks: list[dict[str, Any]] | None = None,
        replace_original: bool = False,
    ) -> None:
        """An ephemeral reply through a slash command's, shortcut's or button's response_url
        (``replace_original``: in place of the ephemeral message the button was on)."""

    async def thread_messages(self, channel: str, thread_ts: str, limit: int) -> list[dict]:
        """conversations.replies: the thread's parent and replies, oldest first (at most
        ``limit``: the parent and the newest replies)."""

    async def publish_home(self, user: str, view: dict[str, Any]) -> None:
        """views.publish: the user's App Home tab."""

    async def is_workspace_admin(self, user: str) -> bool:
        """users.info: whether the user is an admin or owner of the workspace."""

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


async def reply_privately(
    api: SlackApi, origin: Origin, text: str, blocks: list[dict[str, Any]] | None = None
) -> None:
    """An ephemeral message to the user (chat.postEphemeral, else the response_url)."""
    try:
        await api.post_ephemeral(
            origin.channel, origin.user, text, thread_ts=origin.thread_ts, blocks=blocks
        )
        return
    except SlackCallFailed as exc:
        if not origin.response_url:
            log.warning("could not reply to %s in %s: %s", origin.user, origin.channel, exc.error)
            return
    try:
        await api.respond(origin.response_url, text, blocks=blocks)
    except SlackCallFailed as exc:
        log.warning("could not reply through the response_url: %s", exc.error)
