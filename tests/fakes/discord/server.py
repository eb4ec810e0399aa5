"""The fake Discord REST API: aiohttp on 127.0.0.1, recording every request the bot makes
(method, path, query, JSON body, arrival time) and answering the way Discord does.

It enforces what a bot can get wrong: an interaction is acknowledged within 3 s and only once,
and its webhook works only after that; only the bot's own messages can be edited; a message
gets one thread; what `tests.fakes.discord.rules` checks (content, mentions, embeds, commands).
Attachment files are served the way Discord's CDN does.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from tests.fakes.discord.rules import (
    EPHEMERAL,
    INTERACTION_DEADLINE_S,
    LOADING,
    DiscordError,
    check_command,
    check_content,
    check_thread_name,
    form_error,
    json_response,
)
from tests.fakes.discord.state import FAKE_TOKEN, DiscordState, Interaction


@dataclass
class Recorded:
    """One request the bot made."""

    method: str
    path: str  # below /api/v10
    query: dict[str, str]
    json: Any
    at: float  # time.monotonic() on arrival

    @property
    def data(self) -> dict[str, Any]:
        """The message fields of the body (inside ``data`` for interaction callbacks)."""
        body = self.json if isinstance(self.json, dict) else {}
        if "/interactions/" in self.path:
            return body.get("data") or {}
        return body


@dataclass
class FakeDiscord(DiscordState):
    """The fake REST API; `start()` it, then point discord.py at `api_base`
    (`tests.fakes.discord.gateway.discord_api`)."""

    requests: list[Recorded] = field(default_factory=list)
    fail_next: dict[str, DiscordError] = field(default_factory=dict)  # "METHOD /path": error

    def __post_init__(self) -> None:
        super().__post_init__()
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Any]]] = [
            ("GET", r"/users/@me", self._get_me),
            ("GET", r"/oauth2/applications/@me", self._get_application),
            ("PUT", r"/applications/(\d+)/commands", self._put_global_commands),
            ("PUT", r"/applications/(\d+)/guilds/(\d+)/commands", self._put_guild_commands),
            ("POST", r"/interactions/(\d+)/([^/]+)/callback", self._callback),
            ("GET", r"/webhooks/(\d+)/([^/]+)/messages/@original", self._get_original),
            ("PATCH", r"/webhooks/(\d+)/([^/]+)/messages/@original", self._patch_original),
            ("DELETE", r"/webhooks/(\d+)/([^/]+)/messages/@original", self._delete_original),
            ("POST", r"/webhooks/(\d+)/([^/]+)", self._post_followup),
            ("PATCH", r"/webhooks/(\d+)/([^/]+)/messages/(\d+)", self._patch_followup),
            ("DELETE", r"/webhooks/(\d+)/([^/]+)/messages/(\d+)", self._delete_followup),
            ("GET", r"/channels/(\d+)", self._get_channel),
            ("POST", r"/channels/(\d+)/messages", self._post_message),
            ("PATCH", r"/channels/(\d+)/messages/(\d+)", self._patch_message),
            ("DELETE", r"/channels/(\d+)/messages/(\d+)", self._delete_message),
            ("POST", r"/channels/(\d+)/threads", self._post_thread),
            ("POST", r"/channels/(\d+)/messages/(\d+)/threads", self._post_message_thread),
            ("PUT", r"/channels/(\d+)/messages/(\d+)/reactions/([^/]+)/@me", self._put_reaction),
            ("POST", r"/channels/(\d+)/typing", self._typing),
        ]

    # -- life cycle -----------------------------------------------------------------------------
    async def start(self) -> FakeDiscord:
        """Listen on a random port of 127.0.0.1."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_base(self) -> str:
        """What `discord.http.Route.BASE` must be."""
        return f"{self.base_url}/api/v10"

    # -- what the bot did -----------------------------------------------------------------------
    def calls(self, method: str | None = None, pattern: str | None = None) -> list[Recorded]:
        """Recorded requests, optionally of one method and with paths matching ``pattern``."""
        return [
            r
            for r in self.requests
            if (method is None or r.method == method)
            and (pattern is None or re.fullmatch(pattern, r.path))
        ]

    def interaction_calls(self, payload: Mapping[str, Any]) -> list[Recorded]:
        """Requests about one interaction: its callback and everything on its webhook."""
        token = re.escape(payload["token"])
        return [
            r
            for r in self.requests
            if re.fullmatch(rf"/interactions/\d+/{token}/callback", r.path)
            or re.fullmatch(rf"/webhooks/\d+/{token}(/.*)?", r.path)
        ]

    def original(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The current state of an interaction's original response ({} while there is none)."""
        record = self.interactions[payload["token"]]
        return self.messages.get(record.original_id or "", {})

    def followups(self, payload: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The current state of an interaction's follow-up messages, oldest first."""
        record = self.interactions[payload["token"]]
        return [self.messages[m] for m in record.followup_ids if m not in self.deleted]

    def reactions(self, message_id: str) -> list[str]:
        """The emoji the bot put on a message, in order."""
        return [r["emoji"]["name"] for r in self.messages[message_id].get("reactions", [])]

    def channel_messages(self, channel_id: str, author_id: str) -> list[dict[str, Any]]:
        """Messages of one author in a channel, oldest first (deleted ones left out)."""
        return [
            m
            for m in self.messages.values()
            if m["channel_id"] == channel_id
            and m["author"]["id"] == author_id
            and m["id"] not in self.deleted
        ]

    async def wait_for(
        self, predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition"
    ) -> Any:
        """Wait until ``predicate()`` is truthy (checked after every request); return it."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            left = deadline - time.monotonic()
            if left <= 0:
                paths = [f"{r.method} {r.path}" for r in self.requests[-15:]]
                raise AssertionError(f"timed out waiting for {what}; last requests: {paths}")
            self._changed.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.2))

    # -- the server -----------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        body: Any = None
        raw = await request.read()
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = {"_raw": raw.decode("utf-8", "replace")}
        api_path = path.removeprefix("/api/v10")
        self.requests.append(
            Recorded(request.method, unquote(api_path), dict(request.query), body, time.monotonic())
        )
        self._changed.set()
        if request.method == "GET" and path in self.files:
            return web.Response(body=self.files[path], content_type="text/plain")
        try:
            if not path.startswith("/api/v10/"):
                raise DiscordError(404, 0, "404: Not Found")
            failure = self.fail_next.pop(f"{request.method} {api_path}", None)
            if failure is not None:
                raise failure
            for method, pattern, handler in self._routes:
                match = re.fullmatch(pattern, api_path)
                if method == request.method and match:
                    return await handler(request, body, *match.groups())
            raise DiscordError(404, 0, "404: Not Found")
        except DiscordError as exc:
            return exc.response()

    async def _get_me(self, request: web.Request, body: Any) -> web.Response:
        if request.headers.get("Authorization", "") != f"Bot {FAKE_TOKEN}":
            raise DiscordError(401, 0, "401: Unauthorized")
        return json_response({**self.bot_user, "verified": True, "mfa_enabled": False})

    async def _get_application(self, request: web.Request, body: Any) -> web.Response:
        return json_response(
            {
                "id": self.application_id,
                "name": "airoboros",
                "icon": None,
                "description": "",
                "bot_public": False,
                "bot_require_code_grant": False,
                "owner": self.owner,
                "verify_key": "a" * 64,
                "team": None,
                "flags": 1 << 19,  # GATEWAY_MESSAGE_CONTENT_LIMITED
                "summary": "",
                "interactions_endpoint_url": None,
                "bot": self.bot_user,
            }
        )

    def _store_commands(self, body: Any, guild_id: str | None) -> list[dict[str, Any]]:
        if not isinstance(body, list):
            raise form_error("_", "LIST_TYPE_CONVERT", "Must be a list.")
        for key in [k for k in self.commands if k[0] == guild_id]:
            del self.commands[key]
        result = []
        for command in body:
            name = command.get("name", "")
            kind = command.get("type", 1)
            check_command(command)
            stored = {
                **command,
                "id": self.snowflake(),
                "application_id": self.application_id,
                "version": self.snowflake(),
                "type": kind,
                "description": command.get("description", ""),
                "default_member_permissions": command.get("default_member_permissions"),
            }
            if guild_id:
                stored["guild_id"] = guild_id
            self.commands[(guild_id, name, kind)] = stored
            result.append(stored)
        return result

    async def _put_global_commands(self, request: web.Request, body: Any, app: str) -> web.Response:
        self._check_app(app)
        return json_response(self._store_commands(body, None))

    async def _put_guild_commands(
        self, request: web.Request, body: Any, app: str, guild_id: str
    ) -> web.Response:
        self._check_app(app)
        if guild_id not in self.guilds:
            raise DiscordError(403, 50001, "Missing Access")
        return json_response(self._store_commands(body, guild_id))

    def _check_app(self, app: str) -> None:
        if app != self.application_id:
            raise DiscordError(403, 50001, "Missing Access")

    # interactions ------------------------------------------------------------------------------
    def _record(self, token: str) -> Interaction:
        record = self.interactions.get(token)
        if record is None:
            raise DiscordError(404, 10062, "Unknown interaction")
        return record

    def _webhook(self, app: str, token: str, *, need_ack: bool = True) -> Interaction:
        record = self.interactions.get(token)
        if record is None or app != self.application_id:
            raise DiscordError(404, 10015, "Unknown Webhook")
        if need_ack and not record.acknowledged:
            raise DiscordError(404, 10015, "Unknown Webhook")
        return record

    async def _callback(
        self, request: web.Request, body: Any, interaction_id: str, token: str
    ) -> web.Response:
        record = self._record(token)
        if record.id != interaction_id:
            raise DiscordError(404, 10062, "Unknown interaction")
        if time.monotonic() - record.created > INTERACTION_DEADLINE_S:
            raise DiscordError(404, 10062, "Unknown interaction")
        if record.acknowledged:
            raise DiscordError(400, 40060, "Interaction has already been acknowledged.")
        kind = body.get("type") if isinstance(body, dict) else None
        allowed = {2: (4, 5, 9), 3: (4, 5, 6, 7, 9), 5: (4, 5, 6, 7)}[record.type]
        if kind not in allowed:
            raise form_error("type", "BASE_TYPE_CHOICES", f"Value must be one of {allowed}.")
        data = body.get("data") or {}
        if kind == 4:
            check_content(data, creating=True)
        if kind == 7:
            check_content(data, creating=False)
        record.acknowledged = True
        record.response_type = kind
        message: dict[str, Any] | None = None
        if kind in (4, 5):
            flags = (data.get("flags", 0) & EPHEMERAL) | (LOADING if kind == 5 else 0)
            message = self._bot_message(
                record.channel_id, data, flags=flags, kind=20, webhook_id=self.application_id
            )
            message["interaction_metadata"] = {
                "id": record.id,
                "type": record.type,
                "user": record.user,
                "authorizing_integration_owners": {"0": record.guild_id or "0"},
            }
            record.original_id = message["id"]
        elif kind in (6, 7):
            record.original_id = record.message_id
            if kind == 7 and record.message_id:
                message = self.edit(self.messages[record.message_id], data)
        if request.query.get("with_response") not in ("1", "true"):
            return web.Response(status=204)
        result: dict[str, Any] = {
            "interaction": {
                "id": record.id,
                "type": record.type,
                "response_message_id": record.original_id,
                "response_message_loading": kind == 5,
                "response_message_ephemeral": bool(message and message["flags"] & EPHEMERAL),
            }
        }
        if message is not None:
            result["resource"] = {"type": kind, "message": message}
        return json_response(result)

    def _original_message(self, record: Interaction) -> dict[str, Any]:
        if not record.original_id or record.original_id in self.deleted:
            raise DiscordError(404, 10008, "Unknown Message")
        return self.messages[record.original_id]

    async def _get_original(self, request: web.Request, body: Any, app: str, token: str):
        record = self._webhook(app, token)
        return json_response(self._original_message(record))

    async def _patch_original(self, request: web.Request, body: Any, app: str, token: str):
        record = self._webhook(app, token)
        message = self._original_message(record)
        check_content(body or {}, creating=False, existing=message)
        return json_response(self.edit(message, body or {}))

    async def _delete_original(self, request: web.Request, body: Any, app: str, token: str):
        record = self._webhook(app, token)
        message = self._original_message(record)
        self.deleted.add(message["id"])
        return web.Response(status=204)

    async def _post_followup(self, request: web.Request, body: Any, app: str, token: str):
        record = self._webhook(app, token)
        data = body or {}
        check_content(data, creating=True)
        message = self._bot_message(
            record.channel_id,
            data,
            flags=data.get("flags", 0) & EPHEMERAL,
            webhook_id=self.application_id,
        )
        record.followup_ids.append(message["id"])
        if request.query.get("wait") in ("1", "true", "True"):
            return json_response(message)
        return web.Response(status=204)

    def _followup(self, record: Interaction, message_id: str) -> dict[str, Any]:
        message = self.messages.get(message_id)
        if (
            message is None
            or message_id in self.deleted
            or message.get("webhook_id") != self.application_id
            or message["channel_id"] != record.channel_id
        ):
            raise DiscordError(404, 10008, "Unknown Message")
        return message

    async def _patch_followup(
        self, request: web.Request, body: Any, app: str, token: str, message_id: str
    ) -> web.Response:
        message = self._followup(self._webhook(app, token), message_id)
        check_content(body or {}, creating=False, existing=message)
        return json_response(self.edit(message, body or {}))

    async def _delete_followup(
        self, request: web.Request, body: Any, app: str, token: str, message_id: str
    ) -> web.Response:
        message = self._followup(self._webhook(app, token), message_id)
        self.deleted.add(message["id"])
        return web.Response(status=204)

    def _bot_message(
        self, channel_id: str, data: Mapping[str, Any], *, flags: int, kind: int = 0, **extra: Any
    ) -> dict[str, Any]:
        """A message the bot sent with the fields of ``data`` (content, components, embeds)."""
        return self.message(
            channel_id,
            self.bot_user,
            data.get("content") or "",
            components=data.get("components"),
            embeds=data.get("embeds"),
            flags=flags,
            kind=kind,
            **extra,
        )

    # channels ----------------------------------------------------------------------------------
    def _channel(self, channel_id: str) -> dict[str, Any]:
        channel = self.channels.get(channel_id)
        if channel is None:
            raise DiscordError(404, 10003, "Unknown Channel")
        return channel

    def _channel_message(self, channel_id: str, message_id: str) -> dict[str, Any]:
        self._channel(channel_id)
        message = self.messages.get(message_id)
        if message is None or message["channel_id"] != channel_id or message_id in self.deleted:
            raise DiscordError(404, 10008, "Unknown Message")
        return message

    async def _get_channel(self, request: web.Request, body: Any, channel_id: str):
        return json_response(self._channel(channel_id))

    async def _post_message(self, request: web.Request, body: Any, channel_id: str):
        channel = self._channel(channel_id)
        data = body or {}
        check_content(data, creating=True)
        reference = data.get("message_reference")
        message = self._bot_message(
            channel_id,
            data,
            flags=data.get("flags", 0),
            kind=19 if reference else 0,
            message_reference=reference,
        )
        if channel["type"] in (10, 11, 12):
            channel["message_count"] += 1
        return json_response(message)

    async def _patch_message(self, request: web.Request, body: Any, channel_id: str, mid: str):
        message = self._channel_message(channel_id, mid)
        if message["author"]["id"] != self.bot_user["id"]:
            raise DiscordError(403, 50005, "Cannot edit a message authored by another user")
        check_content(body or {}, creating=False, existing=message)
        return json_response(self.edit(message, body or {}))

    async def _delete_message(self, request: web.Request, body: Any, channel_id: str, mid: str):
        self._channel_message(channel_id, mid)
        self.deleted.add(mid)
        return web.Response(status=204)

    async def _post_thread(self, request: web.Request, body: Any, channel_id: str):
        channel = self._channel(channel_id)
        data = body or {}
        if channel["type"] not in (0, 5):
            raise DiscordError(400, 50024, "Cannot execute action on this channel type")
        name = data.get("name", "")
        check_thread_name(name)
        thread = self.thread(channel, name, owner_id=self.bot_user["id"])
        thread["type"] = data.get("type", 12)
        thread["thread_metadata"]["auto_archive_duration"] = data.get("auto_archive_duration", 4320)
        return json_response(thread, status=201)

    async def _post_message_thread(
        self, request: web.Request, body: Any, channel_id: str, message_id: str
    ) -> web.Response:
        channel = self._channel(channel_id)
        message = self._channel_message(channel_id, message_id)
        if message_id in self.channels:
            raise DiscordError(400, 160004, "A thread has already been created for this message")
        name = (body or {}).get("name", "")
        check_thread_name(name)
        thread = self.thread(channel, name, owner_id=self.bot_user["id"], thread_id=message_id)
        message["thread"] = thread
        return json_response(thread, status=201)

    async def _put_reaction(
        self, request: web.Request, body: Any, channel_id: str, message_id: str, emoji: str
    ) -> web.Response:
        message = self._channel_message(channel_id, message_id)
        reactions = message.setdefault("reactions", [])
        reactions.append({"emoji": {"id": None, "name": unquote(emoji)}, "count": 1, "me": True})
        return web.Response(status=204)

    async def _typing(self, request: web.Request, body: Any, channel_id: str) -> web.Response:
        self._channel(channel_id)
        return web.Response(status=204)
