"""What the fake Discord holds (users, guilds, channels, threads, messages, interactions,
commands, files) and the objects and gateway payloads built from it: READY, GUILD_CREATE,
MESSAGE_CREATE, INTERACTION_CREATE (slash commands, message commands, button presses) and
THREAD_CREATE, in the shapes discord.py parses."""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.fakes.discord.rules import LOADING

DISCORD_EPOCH_MS = 1_420_070_400_000
FAKE_TOKEN = "MTA5.fake-bot-token.for-tests"  # the bot token the fake accepts
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
MANAGE_MESSAGES = 1 << 13
MODERATOR_PERMISSIONS = str(int(MEMBER_PERMISSIONS) | MANAGE_MESSAGES)
APP_PERMISSIONS = str(
    (1 << 10) | (1 << 11) | (1 << 16) | (1 << 6) | (1 << 35) | (1 << 38) | (1 << 14)
)


def now_iso() -> str:
    """The current time as Discord writes timestamps."""
    return datetime.now(UTC).isoformat()


def with_ids(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
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


def _option_type(value: Any) -> int:
    if isinstance(value, bool):
        return 5
    if isinstance(value, int):
        return 4
    return 3


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
class DiscordState:
    """Everything the fake Discord knows, and the builders of its objects and payloads."""

    application_id: str = ""
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    guilds: dict[str, dict[str, Any]] = field(default_factory=dict)
    commands: dict[tuple[str | None, str, int], dict[str, Any]] = field(default_factory=dict)
    interactions: dict[str, Interaction] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    port: int = 0  # where the files are served (attachments' URLs)

    def __post_init__(self) -> None:
        self._counter = itertools.count(1)
        self.application_id = self.snowflake()
        self.bot_user = self.user("airoboros", bot=True, user_id=self.application_id)
        self.owner = self.user("owner")

    @property
    def base_url(self) -> str:
        """The server's root URL (attachments live under /cdn)."""
        return f"http://127.0.0.1:{self.port}"

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
        self,
        user: Mapping[str, Any],
        roles: Iterable[str] = (),
        *,
        admin: bool = False,
        moderator: bool = False,
    ) -> dict[str, Any]:
        """A guild member object for ``user``: an ordinary member, one who may also manage
        messages (``moderator``), or one with every permission (``admin``)."""
        return {
            "user": dict(user),
            "nick": None,
            "avatar": None,
            "roles": list(roles),
            "joined_at": now_iso(),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "permissions": (
                ALL_PERMISSIONS
                if admin
                else MODERATOR_PERMISSIONS
                if moderator
                else MEMBER_PERMISSIONS
            ),
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
        now = now_iso()
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
            "joined_at": now_iso(),
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
            "timestamp": now_iso(),
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
            "components": with_ids(components or []),
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
        reply_to: Mapping[str, Any] | None = None,
        ping: bool = False,
    ) -> dict[str, Any]:
        """A MESSAGE_CREATE payload for a user's message in ``channel``.

        ``reply_to`` makes it a reply (type 19) to that message, as Discord sends one: a
        message reference and the referenced message; its author is mentioned only with
        ``ping`` (the reply's "@ on" switch).
        """
        mentions = [dict(m) for m in mentions]
        reference = None
        if reply_to is not None:
            reference = {
                "type": 0,
                "message_id": reply_to["id"],
                "channel_id": reply_to["channel_id"],
                "fail_if_not_exists": False,
            }
            if channel.get("guild_id"):
                reference["guild_id"] = channel["guild_id"]
            if ping and all(m["id"] != reply_to["author"]["id"] for m in mentions):
                mentions.append(dict(reply_to["author"]))
        message = self.message(
            channel["id"],
            author,
            content,
            attachments=attachments,
            mentions=mentions,
            kind=19 if reply_to is not None else 0,
            message_reference=reference,
        )
        payload = dict(message)
        if reply_to is not None:
            payload["referenced_message"] = dict(self.messages.get(reply_to["id"], reply_to))
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
        *,
        moderator: bool = False,
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
            payload["member"] = self.member(user, roles, moderator=moderator)
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
        moderator: bool = False,
    ) -> dict[str, Any]:
        """An INTERACTION_CREATE payload for ``/name [subcommand] options...`` (run by someone
        who may manage messages there with ``moderator``)."""
        values = [
            {"name": key, "type": _option_type(value), "value": value}
            for key, value in (options or {}).items()
        ]
        if subcommand:
            values = [{"name": subcommand, "type": 1, "options": values}]
        return self._command_interaction(
            name, 1, {"options": values} if values else {}, channel, user, roles, moderator
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
        moderator: bool = False,
    ) -> dict[str, Any]:
        """An INTERACTION_CREATE payload running command ``name`` of type ``kind``."""
        command = self._command(name, kind, channel.get("guild_id"))
        data: dict[str, Any] = {"id": command["id"], "name": name, "type": kind, **extra}
        if command.get("guild_id"):
            data["guild_id"] = command["guild_id"]
        return self._interaction(2, data, channel, user, roles, moderator=moderator)

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

    # -- edits ----------------------------------------------------------------------------------
    def edit(self, message: dict[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        """Apply an edit to a message the fake holds (a deferred response stops loading)."""
        if "content" in data:
            message["content"] = data["content"] or ""
        if "components" in data:
            message["components"] = with_ids(data["components"] or [])
        if "embeds" in data:
            message["embeds"] = [dict(e) for e in data["embeds"] or []]
        message["flags"] = message.get("flags", 0) & ~LOADING
        message["edited_timestamp"] = now_iso()
        return message
