"""The Slack Web API calls of the adapter (`SlackApi`) on slack_sdk's AsyncWebClient.

Slack's errors and unreachable hosts become `SlackCallFailed`; a 429 is waited out (its
Retry-After, a few times) except for chat.update, whose caller paces edits itself and gets
`SlackRateLimited`. Users' and channels' names are cached; files and response_urls are fetched
from Slack's hosts only, so the bot token never goes elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from airoboros_bot.bots.slack.api import SlackCallFailed, SlackRateLimited

log = logging.getLogger(__name__)

TRUSTED_DOMAINS = ("slack.com", "slack-gov.com")
_CACHE_LIMIT = 5000
RATE_LIMIT_RETRIES = 3
LONGEST_RETRY_AFTER_S = 60.0
ADMIN_CACHE_S = 300.0


def retry_after(exc: SlackApiError) -> float | None:
    """The Retry-After of a 429 answer, in seconds (None when it is not a 429)."""
    response = exc.response
    if getattr(response, "status_code", None) != 429:
        return None
    headers = {str(k).lower(): v for k, v in (getattr(response, "headers", None) or {}).items()}
    raw = headers.get("retry-after")
    if isinstance(raw, list):
        raw = raw[0] if raw else None
    try:
        return min(LONGEST_RETRY_AFTER_S, max(0.0, float(raw)))
    except (TypeError, ValueError):
        return 1.0


class WebApi:
    """`SlackApi` on slack_sdk's AsyncWebClient: Slack errors become `SlackCallFailed`."""

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client
        self._users: dict[str, str] = {}
        self._channels: dict[str, str] = {}
        self._admins: dict[str, tuple[bool, float]] = {}
        self._api_host = urlsplit(client.base_url).hostname or ""

    async def _call(
        self, method: str, call: Callable[[], Awaitable[Any]], *, wait_out_429: bool = True
    ) -> Any:
        """Make the call; a 429 is waited out and retried (``wait_out_429``) or raised as
        `SlackRateLimited`; Slack's other errors become `SlackCallFailed`."""
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            try:
                return await call()
            except SlackApiError as exc:
                wait = retry_after(exc)
                if wait is None:
                    error = str(exc.response.get("error") or "unknown")
                    raise SlackCallFailed(method, error) from None
                if not wait_out_429 or attempt == RATE_LIMIT_RETRIES:
                    raise SlackRateLimited(method, wait) from None
                log.info("%s: rate limited, retrying in %.1f s", method, wait)
                await asyncio.sleep(wait)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise SlackCallFailed(method, f"unreachable ({type(exc).__name__})") from None
        raise AssertionError("unreachable")

    async def post_message(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        *,
        thread_ts: str | None = None,
    ) -> str:
        """chat.postMessage; returns the new message's ts."""
        reply = await self._call(
            "chat.postMessage",
            lambda: self.client.chat_postMessage(
                channel=channel, text=text, blocks=blocks, thread_ts=thread_ts, unfurl_links=False
            ),
        )
        return str(reply["ts"])

    async def update_message(
        self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None:
        """chat.update; a 429 raises `SlackRateLimited` at once."""
        await self._call(
            "chat.update",
            lambda: self.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks),
            wait_out_429=False,
        )

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
        await self._call(
            "chat.postEphemeral",
            lambda: self.client.chat_postEphemeral(
                channel=channel, user=user, text=text, thread_ts=thread_ts, blocks=blocks
            ),
        )

    async def respond(
        self,
        response_url: str,
        text: str,
        *,
        blocks: list[dict[str, Any]] | None = None,
        replace_original: bool = False,
    ) -> None:
        """An ephemeral reply through a response_url (Slack's hosts only)."""
        if not self._trusted(response_url):
            raise SlackCallFailed("response_url", "untrusted_url")
        webhook = AsyncWebhookClient(response_url)
        try:
            reply = await webhook.send(
                text=text,
                blocks=blocks,
                response_type="ephemeral",
                replace_original=replace_original or None,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SlackCallFailed("response_url", type(exc).__name__) from None
        if reply.status_code != 200:
            raise SlackCallFailed("response_url", f"http_{reply.status_code}")

    async def permalink(self, channel: str, ts: str) -> str | None:
        """chat.getPermalink (None when Slack gives none)."""
        try:
            reply = await self._call(
                "chat.getPermalink",
                lambda: self.client.chat_getPermalink(channel=channel, message_ts=ts),
            )
        except SlackCallFailed as exc:
            log.info("no permalink for %s/%s: %s", channel, ts, exc.error)
            return None
        return str(reply.get("permalink") or "") or None

    async def user_name(self, user: str) -> str:
        """users.info: display name, else real name, else the handle (the id on failure)."""
        if user not in self._users:
            try:
                reply = await self._call("users.info", lambda: self.client.users_info(user=user))
            except SlackCallFailed as exc:
                log.info("users.info %s: %s", user, exc.error)
                return user
            info = reply.get("user") or {}
            profile = info.get("profile") or {}
            name = (
                profile.get("display_name")
                or profile.get("real_name")
                or info.get("real_name")
                or info.get("name")
                or user
            )
            self._remember(self._users, user, str(name))
        return self._users[user]

    async def channel_name(self, channel: str) -> str:
        """conversations.info: ``#name`` (``direct message`` for IMs, the id on failure)."""
        if channel not in self._channels:
            try:
                reply = await self._call(
                    "conversations.info", lambda: self.client.conversations_info(channel=channel)
                )
            except SlackCallFailed as exc:
                log.info("conversations.info %s: %s", channel, exc.error)
                return channel
            info = reply.get("channel") or {}
            name = "direct message" if info.get("is_im") else f"#{info.get('name') or channel}"
            self._remember(self._channels, channel, name)
        return self._channels[channel]

    async def file_info(self, file_id: str) -> dict[str, Any]:
        """files.info: the file object."""
        reply = await self._call("files.info", lambda: self.client.files_info(file=file_id))
        return dict(reply.get("file") or {})

    async def thread_messages(self, channel: str, thread_ts: str, limit: int) -> list[dict]:
        """conversations.replies, page by page: the parent and the newest ``limit - 1``
        replies, oldest first."""
        messages: list[dict] = []
        cursor: str | None = None
        while True:
            reply = await self._call(
                "conversations.replies",
                lambda page=cursor: self.client.conversations_replies(
                    channel=channel, ts=thread_ts, cursor=page, limit=200
                ),
            )
            messages += [dict(m) for m in reply.get("messages") or [] if isinstance(m, dict)]
            cursor = str((reply.get("response_metadata") or {}).get("next_cursor") or "")
            if not cursor or not reply.get("has_more"):
                break
        if len(messages) > limit:
            messages = messages[:1] + messages[len(messages) - (limit - 1) :]
        return messages

    async def publish_home(self, user: str, view: dict[str, Any]) -> None:
        """views.publish."""
        await self._call(
            "views.publish", lambda: self.client.views_publish(user_id=user, view=view)
        )

    async def is_workspace_admin(self, user: str) -> bool:
        """users.info ``is_admin`` / ``is_owner`` (cached a few minutes; False on failure)."""
        known = self._admins.get(user)
        if known is not None and time.monotonic() - known[1] < ADMIN_CACHE_S:
            return known[0]
        try:
            reply = await self._call("users.info", lambda: self.client.users_info(user=user))
        except SlackCallFailed as exc:
            log.info("users.info %s: %s", user, exc.error)
            return False
        info = reply.get("user") or {}
        admin = bool(info.get("is_admin") or info.get("is_owner") or info.get("is_primary_owner"))
        if len(self._admins) >= _CACHE_LIMIT:
            self._admins.clear()
        self._admins[user] = (admin, time.monotonic())
        return admin

    async def download(self, url: str, max_bytes: int) -> bytes:
        """A private file, fetched with the bot token (sent to Slack's hosts only)."""
        if not self._trusted(url):
            raise SlackCallFailed("download", "untrusted_url")
        headers = {"Authorization": f"Bearer {self.client.token}"}
        timeout = aiohttp.ClientTimeout(total=30)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(url, headers=headers) as response,
            ):
                if response.status != 200:
                    raise SlackCallFailed("download", f"http_{response.status}")
                if response.content_type == "text/html":
                    raise SlackCallFailed("download", "login_page (is the files:read scope set?)")
                data = await response.content.read(max_bytes + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SlackCallFailed("download", type(exc).__name__) from None
        if len(data) > max_bytes:
            raise SlackCallFailed("download", "too_large")
        return data

    def _trusted(self, url: str) -> bool:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if host and host == self._api_host:
            return parts.scheme in ("https", "http")
        slack = any(host == d or host.endswith("." + d) for d in TRUSTED_DOMAINS)
        return parts.scheme == "https" and slack

    @staticmethod
    def _remember(cache: dict[str, str], key: str, value: str) -> None:
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[key] = value
