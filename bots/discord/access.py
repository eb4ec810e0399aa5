"""Where a Discord event happened, who may use the bot there, and which payloads to ignore.

Plain data and rules only (ids as ints), so the rules are testable without Discord.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from airoboros_bot.config.settings import DiscordSettings
from airoboros_bot.conversations.models import ConversationKey

PLATFORM = "discord"
THREAD_TYPES = (10, 11, 12)  # announcement, public and private threads
BLOCKED = "You can't use me here."


@dataclass(frozen=True)
class Place:
    """A channel or thread: ``parent_id`` is set for threads (the channel they belong to)."""

    guild_id: int | None
    channel_id: int
    parent_id: int | None = None

    @property
    def in_thread(self) -> bool:
        """Whether this is a thread."""
        return self.parent_id is not None

    @property
    def key(self) -> ConversationKey:
        """The conversation of this channel or thread."""
        workspace = str(self.guild_id) if self.guild_id else "dm"
        if self.parent_id is not None:
            return ConversationKey(PLATFORM, workspace, str(self.parent_id), str(self.channel_id))
        return ConversationKey(PLATFORM, workspace, str(self.channel_id), "")

    @property
    def channel_key(self) -> ConversationKey:
        """The conversation of the channel (the parent channel for a thread)."""
        workspace = str(self.guild_id) if self.guild_id else "dm"
        return ConversationKey(PLATFORM, workspace, str(self.parent_id or self.channel_id), "")


@dataclass(frozen=True)
class AccessRules:
    """Allowed guilds, channels and roles (empty = all), whether DMs are answered, and the
    blocked users, roles and channels (a block wins over every allow list)."""

    guild_ids: frozenset[int] = frozenset()
    channel_ids: frozenset[int] = frozenset()
    role_ids: frozenset[int] = frozenset()
    allow_dms: bool = False
    blocked_user_ids: frozenset[int] = frozenset()
    blocked_role_ids: frozenset[int] = frozenset()
    blocked_channel_ids: frozenset[int] = frozenset()

    @classmethod
    def from_settings(cls, settings: DiscordSettings) -> AccessRules:
        """The rules the settings describe."""
        return cls(
            frozenset(settings.guild_ids),
            frozenset(settings.channel_ids),
            frozenset(settings.role_ids),
            settings.allow_dms,
            frozenset(settings.blocked_user_ids),
            frozenset(settings.blocked_role_ids),
            frozenset(settings.blocked_channel_ids),
        )

    def is_blocked(self, user_id: int | None) -> bool:
        """Whether the user is on the block list (their messages get no reply at all)."""
        return user_id is not None and user_id in self.blocked_user_ids

    def refusal(
        self, place: Place, role_ids: Collection[int] = (), user_id: int | None = None
    ) -> str | None:
        """Why the bot may not be used here by ``user_id`` with ``role_ids`` (None = allowed).

        Channel rules cover a thread through its parent channel too; role rules apply in
        servers only; a block (user, role, channel) wins over the allow lists.
        """
        if self.is_blocked(user_id):
            return BLOCKED
        if place.guild_id is None:
            return None if self.allow_dms else "I don't answer direct messages here."
        if self.guild_ids and place.guild_id not in self.guild_ids:
            return "This server is not set up to use me."
        in_channel = {c for c in (place.channel_id, place.parent_id) if c is not None}
        if self.blocked_channel_ids.intersection(in_channel):
            return "I'm switched off in this channel."
        if self.channel_ids and not self.channel_ids.intersection(in_channel):
            return "I'm not enabled in this channel: ask in one of the channels set up for me."
        if self.blocked_role_ids.intersection(role_ids):
            return BLOCKED
        if self.role_ids and not self.role_ids.intersection(role_ids):
            return "You need one of the roles set up for me to use me here."
        return None


def role_ids(user: Any) -> set[int]:
    """The ids of a member's roles (none for a user outside a server)."""
    return {role.id for role in getattr(user, "roles", ())}


def _is_snowflake(value: Any) -> bool:
    return isinstance(value, str | int) and str(value).isdigit()


def interaction_problem(payload: Any) -> str | None:
    """What makes an INTERACTION_CREATE payload unusable (None if it looks sound).

    Checks the fields the bot and discord.py rely on, so a malformed or unknown interaction is
    logged and dropped instead of raising inside the gateway reader.
    """
    if not isinstance(payload, Mapping):
        return "not a JSON object"
    for name in ("id", "application_id"):
        if not _is_snowflake(payload.get(name)):
            return f"missing or bad {name!r}"
    if not isinstance(payload.get("token"), str) or not payload["token"]:
        return "missing token"
    kind = payload.get("type")
    if kind not in (2, 3, 4, 5):
        return f"unknown interaction type {kind!r}"
    data = payload.get("data")
    if not isinstance(data, Mapping):
        return "missing data"
    if kind in (2, 4):
        if not isinstance(data.get("name"), str) or not _is_snowflake(data.get("id")):
            return "command without a name or id"
        if data.get("type", 1) not in (1, 2, 3):
            return f"unknown command type {data.get('type')!r}"
        options = data.get("options", [])
        if not isinstance(options, list) or not all(isinstance(o, Mapping) for o in options):
            return "bad options"
    elif kind == 3:
        if not isinstance(data.get("custom_id"), str) or not isinstance(
            data.get("component_type"), int
        ):
            return "component without custom_id or component_type"
        if not isinstance(payload.get("message"), Mapping):
            return "component interaction without its message"
    elif not isinstance(data.get("custom_id"), str):
        return "modal without custom_id"
    channel = payload.get("channel")
    if channel is not None and not (
        isinstance(channel, Mapping) and _is_snowflake(channel.get("id"))
    ):
        return "bad channel"
    if payload.get("guild_id") is not None:
        member = payload.get("member")
        if not isinstance(member, Mapping) or not isinstance(member.get("user"), Mapping):
            return "guild interaction without a member"
    elif not isinstance(payload.get("user"), Mapping):
        return "interaction without a user"
    return None
