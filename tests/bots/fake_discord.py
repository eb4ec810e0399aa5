"""A protocol-true fake of the Discord REST API (aiohttp on 127.0.0.1) and gateway payloads.

The fake records every request (method, path, query, JSON body, arrival time) and answers the
way Discord does, enforcing the rules a bot can break: an interaction must be acknowledged
within 3 s and only once; its webhook works only after that; message content is at most 2,000
characters and never empty; embeds stay within Discord's limits; only the bot's own messages
can be edited; a message gets one thread; synced commands follow Discord's rules for names,
descriptions, subcommands and options. It also builds the gateway payloads (READY,
GUILD_CREATE, INTERACTION_CREATE, MESSAGE_CREATE, THREAD_CREATE) that tests inject into the real
discord.py client's parsers, and serves attachment files the way Discord's CDN does.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import discord
from aiohttp import web

DISCORD_EPOCH_MS = 1_420_070_400_000
INTERACTION_DEADLINE_S = 3.0
MAX_CONTENT = 2000
EPHEMERAL = 64
LOADING = 128
ALL_PERMISSIONS = str((1 << 50) - 1)
# view channel, send messages, add reactions, embed links, attach files, read history,
# use application commands, create public threads, send messages in threads
MEMBER_PERMISSIONS = str(
    (1 << 10)
    | (1 << 11)
    | (1 << 6)
    | (1 << 14)
    | (1 << 15)
    | (1 << 16)
    | (1 << 31)
    | (1 << 35)
    | (1 << 38)
)
APP_PERMISSIONS = str(
    (1 << 10) | (1 << 11) | (1 << 16) | (1 << 6) | (1 << 35) | (1 << 38) | (1 << 14)
)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


class DiscordError(Exception):
    """An error response in Discord's JSON format."""

    def __init__(self, status: int, code: int, message: str, errors: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.errors = status, code, message, errors

    def response(self) -> web.Response:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors is not None:
            body["errors"] = self.errors
        return _json(body, status=self.status)


def _form_error(field_name: str, code: str, message: str) -> DiscordError:
    errors = {field_name: {"_errors": [{"code": code, "message": message}]}}
    return DiscordError(400, 50035, "Invalid Form Body", errors)


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
class Interaction:
    """An interaction the fake handed to the bot (its webhook and original response)."""

    id: str
    token: str
    type: int
    channel_id: str
    created: float
    user: dict[str, Any]
    guild_id: str | None = None
    message_id: str | None = None  # the message a component sits on
    acknowledged: bool = False
    response_type: int | None = None
    original_id: str | None = None
    followup_ids: list[str] = field(default_factory=list)


@dataclass
class FakeDiscord:
    """The fake REST API; `start()` it, then point discord.py at `api_base`."""

    application_id: str = ""
    requests: list[Recorded] = field(default_factory=list)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    guilds: dict[str, dict[str, Any]] = field(default_factory=dict)
    commands: dict[tuple[str | None, str, int], dict[str, Any]] = field(default_factory=dict)
    interactions: dict[str, Interaction] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    fail_next: dict[str, DiscordError] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._counter = itertools.count(1)
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.application_id = self.snowflake()
        self.bot_user = self.user("airoboros", bot=True, user_id=self.application_id)
        self.owner = self.user("owner")
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
    def base_url(self) -> str:
        """The server's root URL (attachments live under /cdn)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        """What `discord.http.Route.BASE` must be."""
        return f"{self.base_url}/api/v10"

    # -- ids and objects ------------------------------------------------------------------------
    def snowflake(self) -> str:
        """A new id, with the current time in it as Discord's are."""
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        return str((ms << 22) | (next(self._counter) & 0xFFF))

    def user(self, name: str, *, bot: bool = False, user_id: str | None = None) -> dict[str, Any]:
        """A user object."""
        return {
            "id": user_id or self.snowflake(),
            "username": name,
            "global_name": name.title(),
            "discriminator": "0",
            "avatar": None,
            "bot": bot,
            "public_flags": 0,
        }

    def member(
        self, user: Mapping[str, Any], roles: Iterable[str] = (), *, admin: bool = False
    ) -> dict[str, Any]:
        """A guild member object for ``user`` (an ordinary member unless ``admin``)."""
        return {
            "user": dict(user),
            "nick": None,
            "avatar": None,
            "roles": list(roles),
            "joined_at": _now_iso(),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "permissions": ALL_PERMISSIONS if admin else MEMBER_PERMISSIONS,
        }

    def role(self, name: str, guild_id: str | None = None) -> dict[str, Any]:
        """A role object (``guild_id`` makes it the @everyone role)."""
        return {
            "id": guild_id or self.snowflake(),
            "name": name,
            "color": 0,
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": 0,
            "permissions": "1071698660929",
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }

    def text_channel(self, guild_id: str, name: str) -> dict[str, Any]:
        """A guild text channel (type 0), remembered by the server."""
        channel = {
            "id": self.snowflake(),
            "type": 0,
            "guild_id": guild_id,
            "name": name,
            "position": len(self.channels),
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
            "topic": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "default_auto_archive_duration": 1440,
        }
        self.channels[channel["id"]] = channel
        return channel

    def dm_channel(self, recipient: Mapping[str, Any]) -> dict[str, Any]:
        """A DM channel (type 1) with ``recipient``."""
        channel = {
            "id": self.snowflake(),
            "type": 1,
            "last_message_id": None,
            "recipients": [dict(recipient)],
        }
        self.channels[channel["id"]] = channel
        return channel

    def thread(
        self, parent: Mapping[str, Any], name: str, *, owner_id: str, thread_id: str | None = None
    ) -> dict[str, Any]:
        """A public thread (type 11) in ``parent``, remembered by the server."""
        now = _now_iso()
        thread = {
            "id": thread_id or self.snowflake(),
            "type": 11,
            "guild_id": parent["guild_id"],
            "parent_id": parent["id"],
            "owner_id": owner_id,
            "name": name,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "message_count": 0,
            "member_count": 1,
            "total_message_sent": 0,
            "flags": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": 1440,
                "archive_timestamp": now,
                "locked": False,
                "create_timestamp": now,
            },
        }
        self.channels[thread["id"]] = thread
        return thread

    def guild(
        self, name: str, channel_names: Iterable[str] = ("general",), role_names: Iterable[str] = ()
    ) -> dict[str, Any]:
        """A GUILD_CREATE payload: the guild with its channels, roles and the bot as member."""
        guild_id = self.snowflake()
        roles = [self.role("@everyone", guild_id)] + [self.role(r) for r in role_names]
        channels = [self.text_channel(guild_id, c) for c in channel_names]
        guild = {
            "id": guild_id,
            "name": name,
            "icon": None,
            "owner_id": self.owner["id"],
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": roles,
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "nsfw_level": 0,
            "joined_at": _now_iso(),
            "large": False,
            "unavailable": False,
            "member_count": 2,
            "members": [self.member(self.bot_user)],
            "channels": [{k: v for k, v in c.items() if k != "guild_id"} for c in channels],
            "threads": [],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }
        self.guilds[guild_id] = guild
        return guild

    def attachment(self, channel_id: str, filename: str, data: bytes) -> dict[str, Any]:
        """An attachment object whose URL this server serves, as Discord's CDN does."""
        attachment_id = self.snowflake()
        path = f"/cdn/attachments/{channel_id}/{attachment_id}/{filename}"
        self.files[path] = data
        content_type = "text/markdown" if filename.endswith(".md") else "text/plain"
        return {
            "id": attachment_id,
            "filename": filename,
            "size": len(data),
            "url": self.base_url + path,
            "proxy_url": self.base_url + path,
            "content_type": f"{content_type}; charset=utf-8",
        }

    def message(
        self,
        channel_id: str,
        author: Mapping[str, Any],
        content: str = "",
        *,
        components: list[dict[str, Any]] | None = None,
        embeds: list[dict[str, Any]] | None = None,
        flags: int = 0,
        kind: int = 0,
        attachments: Iterable[Mapping[str, Any]] = (),
        mentions: Iterable[Mapping[str, Any]] = (),
        webhook_id: str | None = None,
        message_reference: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A message object, remembered by the server."""
        message = {
            "id": self.snowflake(),
            "channel_id": channel_id,
            "author": dict(author),
            "content": content,
            "timestamp": _now_iso(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [dict(m) for m in mentions],
            "mention_roles": [],
            "attachments": [dict(a) for a in attachments],
            "embeds": [dict(e) for e in embeds or []],
            "pinned": False,
            "type": kind,
            "flags": flags,
            "components": _with_ids(components or []),
        }
        if webhook_id:
            message["webhook_id"] = webhook_id
            message["application_id"] = self.application_id
        if message_reference:
            message["message_reference"] = dict(message_reference)
        self.messages[message["id"]] = message
        return message

    # -- gateway payloads -----------------------------------------------------------------------
    def message_create(
        self,
        channel: Mapping[str, Any],
        author: Mapping[str, Any],
        content: str,
        *,
        roles: Iterable[str] = (),
        attachments: Iterable[Mapping[str, Any]] = (),
        mentions: Iterable[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        """A MESSAGE_CREATE payload for a user's message in ``channel``."""
        message = self.message(
            channel["id"], author, content, attachments=attachments, mentions=mentions
        )
        payload = dict(message)
        if channel.get("guild_id"):
            payload["guild_id"] = channel["guild_id"]
            member = self.member(author, roles)
            member.pop("user")
            payload["member"] = member
        return payload

    def _interaction(
        self,
        kind: int,
        data: dict[str, Any],
        channel: Mapping[str, Any],
        user: Mapping[str, Any],
        roles: Iterable[str],
        message: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(48)
        record = Interaction(
            id=self.snowflake(),
            token=token,
            type=kind,
            channel_id=channel["id"],
            created=time.monotonic(),
            user=dict(user),
            guild_id=channel.get("guild_id"),
            message_id=message["id"] if message else None,
        )
        self.interactions[token] = record
        payload: dict[str, Any] = {
            "id": record.id,
            "application_id": self.application_id,
            "type": kind,
            "data": data,
            "channel": dict(channel),
            "channel_id": channel["id"],
            "token": token,
            "version": 1,
            "app_permissions": APP_PERMISSIONS,
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        guild_id = channel.get("guild_id")
        if guild_id:
            payload["guild_id"] = guild_id
            payload["guild_locale"] = "en-US"
            payload["member"] = self.member(user, roles)
            payload["authorizing_integration_owners"] = {"0": guild_id}
            payload["context"] = 0
        else:
            payload["user"] = dict(user)
            payload["authorizing_integration_owners"] = {"0": guild_id or "0"}
            payload["context"] = 1
        if message is not None:
            payload["message"] = dict(message)
        return payload

    def _command(self, name: str, kind: int, guild_id: str | None) -> dict[str, Any]:
        command = self.commands.get((guild_id, name, kind)) or self.commands.get((None, name, kind))
        return command or {"id": self.snowflake(), "name": name, "type": kind}

    def slash(
        self,
        name: str,
        channel: Mapping[str, Any],
        user: Mapping[str, Any],
        options: Mapping[str, Any] | None = None,
        *,
        subcommand: str | None = None,
        roles: Iterable[str] = (),
    ) -> dict[str, Any]:
        """An INTERACTION_CREATE payload for ``/name [subcommand] options...``."""
        values = [
            {"name": key, "type": _option_type(value), "value": value}
            for key, value in (options or {}).items()
        ]
        if subcommand:
            values = [{"name": subcommand, "type": 1, "options": values}]
        return self._command_interaction(
            name, 1, {"options": values} if values else {}, channel, user, roles
        )

    def message_command(
        self,
        name: str,
        channel: Mapping[str, Any],
        user: Mapping[str, Any],
        target: Mapping[str, Any],
        *,
        roles: Iterable[str] = (),
    ) -> dict[str, Any]:
        """An INTERACTION_CREATE payload for a message context menu command on ``target``."""
        data = {"target_id": target["id"], "resolved": {"messages": {target["id"]: dict(target)}}}
        return self._command_interaction(name, 3, data, channel, user, roles)

    def _command_interaction(
        self,
        name: str,
        kind: int,
        extra: Mapping[str, Any],
        channel: Mapping[str, Any],
        user: Mapping[str, Any],
        roles: Iterable[str],
    ) -> dict[str, Any]:
        """An INTERACTION_CREATE payload running command ``name`` of type ``kind``."""
        command = self._command(name, kind, channel.get("guild_id"))
        data: dict[str, Any] = {"id": command["id"], "name": name, "type": kind, **extra}
        if command.get("guild_id"):
            data["guild_id"] = command["guild_id"]
        return self._interaction(2, data, channel, user, roles)

    def button_press(
        self,
        message_id: str,
        custom_id: str,
        user: Mapping[str, Any],
        *,
        roles: Iterable[str] = (),
    ) -> dict[str, Any]:
        """An INTERACTION_CREATE payload for pressing a button of a message the server holds."""
        message = self.messages[message_id]
        channel = self.channels[message["channel_id"]]
        data = {"custom_id": custom_id, "component_type": 2}
        return self._interaction(3, data, channel, user, roles, message=message)

    def ready(self, guilds: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """The READY payload of a new gateway session: the bot user, its guilds unavailable
        until their GUILD_CREATE (discord.py dispatches ``on_ready`` once those came)."""
        return {
            "v": 10,
            "user": {**self.bot_user, "verified": True, "mfa_enabled": False, "flags": 0},
            "guilds": [{"id": g["id"], "unavailable": True} for g in guilds],
            "session_id": secrets.token_hex(16),
            "resume_gateway_url": "wss://gateway.invalid",
            "application": {"id": self.application_id, "flags": 1 << 19},
            "private_channels": [],
            "relationships": [],
            "shard": [0, 1],
        }

    def thread_create(self, thread_id: str) -> dict[str, Any]:
        """The THREAD_CREATE payload Discord sends after a thread was made."""
        return {**self.channels[thread_id], "newly_created": True}

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
        return _json({**self.bot_user, "verified": True, "mfa_enabled": False})

    async def _get_application(self, request: web.Request, body: Any) -> web.Response:
        return _json(
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
            raise _form_error("_", "LIST_TYPE_CONVERT", "Must be a list.")
        for key in [k for k in self.commands if k[0] == guild_id]:
            del self.commands[key]
        result = []
        for command in body:
            name = command.get("name", "")
            kind = command.get("type", 1)
            _check_command(command)
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
        return _json(self._store_commands(body, None))

    async def _put_guild_commands(
        self, request: web.Request, body: Any, app: str, guild_id: str
    ) -> web.Response:
        self._check_app(app)
        if guild_id not in self.guilds:
            raise DiscordError(403, 50001, "Missing Access")
        return _json(self._store_commands(body, guild_id))

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
            raise _form_error("type", "BASE_TYPE_CHOICES", f"Value must be one of {allowed}.")
        data = body.get("data") or {}
        if kind == 4:
            self._check_content(data, creating=True)
        if kind == 7:
            self._check_content(data, creating=False)
        record.acknowledged = True
        record.response_type = kind
        message: dict[str, Any] | None = None
        if kind in (4, 5):
            flags = (data.get("flags", 0) & EPHEMERAL) | (LOADING if kind == 5 else 0)
            message = self.message(
                record.channel_id,
                self.bot_user,
                data.get("content") or "",
                components=data.get("components"),
                embeds=data.get("embeds"),
                flags=flags,
                kind=20,
                webhook_id=self.application_id,
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
                message = self._edit(self.messages[record.message_id], data)
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
        return _json(result)

    def _original_message(self, record: Interaction) -> dict[str, Any]:
        if not record.original_id or record.original_id in self.deleted:
            raise DiscordError(404, 10008, "Unknown Message")
        return self.messages[record.original_id]

    async def _get_original(self, request: web.Request, body: Any, app: str, token: str):
        record = self._webhook(app, token)
        return _json(self._original_message(record))

    async def _patch_original(self, request: web.Request, body: Any, app: str, token: str):
        record = self._webhook(app, token)
        message = self._original_message(record)
        self._check_content(body or {}, creating=False, existing=message)
        return _json(self._edit(message, body or {}))

    async def _delete_original(self, request: web.Request, body: Any, app: str, token: str):
        record = self._webhook(app, token)
        message = self._original_message(record)
        self.deleted.add(message["id"])
        return web.Response(status=204)

    async def _post_followup(self, request: web.Request, body: Any, app: str, token: str):
        record = self._webhook(app, token)
        data = body or {}
        self._check_content(data, creating=True)
        message = self.message(
            record.channel_id,
            self.bot_user,
            data.get("content") or "",
            components=data.get("components"),
            embeds=data.get("embeds"),
            flags=data.get("flags", 0) & EPHEMERAL,
            kind=0,
            webhook_id=self.application_id,
        )
        record.followup_ids.append(message["id"])
        if request.query.get("wait") in ("1", "true", "True"):
            return _json(message)
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
        self._check_content(body or {}, creating=False, existing=message)
        return _json(self._edit(message, body or {}))

    async def _delete_followup(
        self, request: web.Request, body: Any, app: str, token: str, message_id: str
    ) -> web.Response:
        message = self._followup(self._webhook(app, token), message_id)
        self.deleted.add(message["id"])
        return web.Response(status=204)

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
        return _json(self._channel(channel_id))

    async def _post_message(self, request: web.Request, body: Any, channel_id: str):
        channel = self._channel(channel_id)
        data = body or {}
        self._check_content(data, creating=True)
        reference = data.get("message_reference")
        message = self.message(
            channel_id,
            self.bot_user,
            data.get("content") or "",
            components=data.get("components"),
            embeds=data.get("embeds"),
            flags=data.get("flags", 0),
            kind=19 if reference else 0,
            message_reference=reference,
        )
        if channel["type"] in (10, 11, 12):
            channel["message_count"] += 1
        return _json(message)

    async def _patch_message(self, request: web.Request, body: Any, channel_id: str, mid: str):
        message = self._channel_message(channel_id, mid)
        if message["author"]["id"] != self.bot_user["id"]:
            raise DiscordError(403, 50005, "Cannot edit a message authored by another user")
        self._check_content(body or {}, creating=False, existing=message)
        return _json(self._edit(message, body or {}))

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
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            raise _form_error("name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100.")
        thread = self.thread(channel, name, owner_id=self.bot_user["id"])
        thread["type"] = data.get("type", 12)
        thread["thread_metadata"]["auto_archive_duration"] = data.get("auto_archive_duration", 4320)
        return _json(thread, status=201)

    async def _post_message_thread(
        self, request: web.Request, body: Any, channel_id: str, message_id: str
    ) -> web.Response:
        channel = self._channel(channel_id)
        message = self._channel_message(channel_id, message_id)
        if message_id in self.channels:
            raise DiscordError(400, 160004, "A thread has already been created for this message")
        name = (body or {}).get("name", "")
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            raise _form_error("name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100.")
        thread = self.thread(channel, name, owner_id=self.bot_user["id"], thread_id=message_id)
        message["thread"] = thread
        return _json(thread, status=201)

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

    # messages ----------------------------------------------------------------------------------
    def _check_content(
        self, data: Mapping[str, Any], *, creating: bool, existing: Mapping[str, Any] | None = None
    ) -> None:
        content = data.get("content")
        if content is not None and not isinstance(content, str):
            raise _form_error("content", "STRING_TYPE_CONVERT", "Must be a string.")
        if content is not None and len(content) > MAX_CONTENT:
            raise _form_error(
                "content", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT} or fewer in length."
            )
        mentions = data.get("allowed_mentions")
        if mentions is not None and not (
            isinstance(mentions, dict)
            and set(mentions.get("parse", [])) <= {"users", "roles", "everyone"}
        ):
            raise _form_error("allowed_mentions", "MODEL_TYPE_CONVERT", "Invalid.")
        _check_embeds(data.get("embeds"))
        will_have_content = content if content is not None else (existing or {}).get("content")
        components = data.get("components", (existing or {}).get("components"))
        empty = not will_have_content and not components and not data.get("embeds")
        if (creating or content is not None) and empty:
            raise DiscordError(400, 50006, "Cannot send an empty message")

    def _edit(self, message: dict[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        if "content" in data:
            message["content"] = data["content"] or ""
        if "components" in data:
            message["components"] = _with_ids(data["components"] or [])
        if "embeds" in data:
            message["embeds"] = [dict(e) for e in data["embeds"] or []]
        message["flags"] = message.get("flags", 0) & ~LOADING
        message["edited_timestamp"] = _now_iso()
        return message


FAKE_TOKEN = "MTA5.fake-bot-token.for-tests"
EMBED_TOTAL = 6000
EMBED_LIMITS = {"title": 256, "description": 4096}
_NAME = re.compile(r"[-_a-z0-9]{1,32}")
_CHOICE_TYPES = {3: (str,), 4: (int,), 10: (int, float)}


def _check_embeds(embeds: Any) -> None:
    """Discord's embed limits: at most 10, title 256, description 4,096, footer 2,048, 25
    fields of 256 / 1,024, and 6,000 characters in all."""
    if embeds is None:
        return
    if not isinstance(embeds, list) or len(embeds) > 10:
        raise _form_error("embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
    total = 0
    for i, embed in enumerate(embeds):
        if not isinstance(embed, dict):
            raise _form_error(f"embeds.{i}", "MODEL_TYPE_CONVERT", "Must be an object.")
        texts = {name: embed.get(name) for name in EMBED_LIMITS}
        texts["footer.text"] = (embed.get("footer") or {}).get("text")
        texts["author.name"] = (embed.get("author") or {}).get("name")
        limits = {**EMBED_LIMITS, "footer.text": 2048, "author.name": 256}
        fields = embed.get("fields") or []
        if len(fields) > 25:
            raise _form_error(f"embeds.{i}.fields", "BASE_TYPE_MAX_LENGTH", "At most 25.")
        for j, item in enumerate(fields):
            for part, limit in (("name", 256), ("value", 1024)):
                texts[f"fields.{j}.{part}"] = item.get(part) or ""
                limits[f"fields.{j}.{part}"] = limit
                if not item.get(part):
                    raise _form_error(f"embeds.{i}.fields.{j}.{part}", "BASE_TYPE_REQUIRED", "")
        for name, value in texts.items():
            if value is None:
                continue
            if not isinstance(value, str) or len(value) > limits[name]:
                raise _form_error(
                    f"embeds.{i}.{name}",
                    "BASE_TYPE_MAX_LENGTH",
                    f"Must be {limits[name]} or fewer in length.",
                )
            total += len(value)
    if total > EMBED_TOTAL:
        raise _form_error("embeds", "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size")


def _check_named(item: Mapping[str, Any], where: str) -> None:
    if not isinstance(item.get("name"), str) or not _NAME.fullmatch(item["name"]):
        raise _form_error(f"{where}name", "APPLICATION_COMMAND_INVALID_NAME", "Invalid name.")
    description = item.get("description", "")
    if not isinstance(description, str) or not 1 <= len(description) <= 100:
        raise _form_error(f"{where}description", "BASE_TYPE_BAD_LENGTH", "1 to 100 characters.")


def _check_command(command: Any) -> None:
    """Discord's rules for a command in a sync: names, descriptions and options."""
    if not isinstance(command, dict):
        raise _form_error("_", "MODEL_TYPE_CONVERT", "Must be an object.")
    if command.get("type", 1) != 1:  # user and message commands: a name only
        if not 1 <= len(command.get("name", "")) <= 32 or command.get("options"):
            raise _form_error("name", "APPLICATION_COMMAND_INVALID_NAME", "Invalid name.")
        return
    _check_named(command, "")
    _check_options(command.get("options") or [], "options", None)


def _check_options(options: Any, where: str, parent: int | None) -> None:
    """Options of a command (``parent`` None), a subcommand (1) or a subcommand group (2):
    subcommands never sit beside other options, groups hold only subcommands, a subcommand
    holds none, required options come first, choices and ranges fit their option's type."""
    if not isinstance(options, list) or len(options) > 25:
        raise _form_error(where, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    names = [o.get("name") for o in options if isinstance(o, dict)]
    if len(names) != len(options) or len(set(names)) != len(names):
        raise _form_error(where, "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS", "Duplicate.")
    nested = [o.get("type") in (1, 2) for o in options]
    if (
        (any(nested) and not all(nested))
        or (parent == 1 and any(nested))
        or (parent == 2 and any(o.get("type") != 1 for o in options))
    ):
        raise _form_error(
            where, "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID", "Invalid option types here."
        )
    optional_seen = False
    for i, option in enumerate(options):
        path, kind = f"{where}.{i}.", option.get("type")
        if kind not in range(1, 12):
            raise _form_error(f"{path}type", "BASE_TYPE_CHOICES", "Invalid option type.")
        _check_named(option, path)
        if kind in (1, 2):
            _check_options(option.get("options") or [], f"{path}options", kind)
            continue
        if option.get("required") and optional_seen:
            raise _form_error(
                path, "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID", "Required options first."
            )
        optional_seen = optional_seen or not option.get("required")
        choices = option.get("choices")
        if choices is not None and (
            kind not in _CHOICE_TYPES
            or len(choices) > 25
            or any(
                not 1 <= len(c.get("name", "")) <= 100
                or not isinstance(c.get("value"), _CHOICE_TYPES[kind])
                for c in choices
            )
        ):
            raise _form_error(f"{path}choices", "BASE_TYPE_CHOICES", "Invalid choices.")
        if {"min_value", "max_value"} & option.keys() and kind not in (4, 10):
            raise _form_error(path, "APPLICATION_COMMAND_OPTION_INVALID", "No range here.")
        if {"min_length", "max_length"} & option.keys() and (
            kind != 3
            or not 0 <= option.get("min_length", 0) <= 6000
            or not 1 <= option.get("max_length", 1) <= 6000
        ):
            raise _form_error(path, "APPLICATION_COMMAND_OPTION_INVALID", "Bad lengths.")


def _json(data: Any, status: int = 200) -> web.Response:
    """A JSON response with Discord's exact content type (discord.py compares it verbatim)."""
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"}
    )


def _option_type(value: Any) -> int:
    if isinstance(value, bool):
        return 5
    if isinstance(value, int):
        return 4
    return 3


def _with_ids(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Components as Discord echoes them: each gets a numeric ``id``."""
    counter = itertools.count(1)

    def walk(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        result = []
        for item in items:
            copy = {**item, "id": item.get("id") or next(counter)}
            if "components" in copy:
                copy["components"] = walk(copy["components"])
            result.append(copy)
        return result

    return walk(components)


def buttons(message: Mapping[str, Any]) -> dict[str, str]:
    """A message's buttons: label -> custom_id."""
    found = {}
    for row in message.get("components", []):
        for item in row.get("components", []):
            if item.get("type") == 2:
                found[item.get("label", "")] = item.get("custom_id", "")
    return found


@asynccontextmanager
async def discord_api(fake: FakeDiscord) -> AsyncIterator[FakeDiscord]:
    """Point discord.py's REST routes at the fake for the duration (restored after)."""
    old = discord.http.Route.BASE
    discord.http.Route.BASE = fake.api_base
    try:
        yield fake
    finally:
        discord.http.Route.BASE = old


def inject(client: discord.Client, event: str, payload: Any) -> None:
    """Hand a gateway event to the client as its gateway reader does (through `parsers`)."""
    client._connection.parsers[event](payload)


def message_requests(fake: FakeDiscord) -> list[Recorded]:
    """Every request that creates or edits a message (content or components)."""
    found = []
    for r in fake.requests:
        body = r.json if isinstance(r.json, dict) else {}
        if "/interactions/" in r.path:
            if body.get("type") in (4, 7):
                found.append(r)
        elif r.method in ("POST", "PATCH") and (
            re.fullmatch(r"/webhooks/\d+/[^/]+(/messages/(@original|\d+))?", r.path)
            or re.fullmatch(r"/channels/\d+/messages(/\d+)?", r.path)
        ):
            found.append(r)
    return found


def assert_no_mentions(fake: FakeDiscord) -> None:
    """Every message the bot sent or edited went out with no allowed mentions."""
    sent = message_requests(fake)
    assert sent, "the bot sent no messages"
    for r in sent:
        mentions = r.data.get("allowed_mentions")
        assert mentions in ({"parse": []}, {"parse": [], "replied_user": False}), (
            r.method,
            r.path,
            r.data,
        )


@dataclass
class World:
    """A guild with two text channels, a role and two users, as the gateway announced it."""

    guild: dict[str, Any]
    general: dict[str, Any]
    random: dict[str, Any]
    member_role: str
    alice: dict[str, Any]
    bob: dict[str, Any]

    @property
    def guild_id(self) -> int:
        """The guild's id as an int (for settings)."""
        return int(self.guild["id"])


def make_world(fake: FakeDiscord) -> World:
    """Create the guild, channels and users on the fake server."""
    guild = fake.guild("Airoboros Lab", ["general", "random"], ["member"])
    general, random = (fake.channels[c["id"]] for c in guild["channels"])
    return World(
        guild, general, random, guild["roles"][1]["id"], fake.user("alice"), fake.user("bob")
    )


@asynccontextmanager
async def logged_in(
    fake: FakeDiscord, client: discord.Client, world: World
) -> AsyncIterator[discord.Client]:
    """Log ``client`` in against the fake (REST only), announce the guild, close it after."""
    try:
        await client.login(FAKE_TOKEN)
        inject(client, "GUILD_CREATE", world.guild)
        yield client
    finally:
        await client.close()
