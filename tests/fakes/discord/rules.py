"""The rules of Discord's REST API the fake enforces, in Discord's own error format: message
content, allowed mentions and embeds within their limits, synced commands named and shaped as
Discord requires."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

INTERACTION_DEADLINE_S = 3.0
MAX_CONTENT = 2000
EPHEMERAL = 64
LOADING = 128
EMBED_TOTAL = 6000
EMBED_LIMITS = {"title": 256, "description": 4096}
_NAME = re.compile(r"[-_a-z0-9]{1,32}")
_CHOICE_TYPES = {3: (str,), 4: (int,), 10: (int, float)}


def json_response(data: Any, status: int = 200) -> web.Response:
    """A JSON response with Discord's exact content type (discord.py compares it verbatim)."""
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"}
    )


class DiscordError(Exception):
    """An error response in Discord's JSON format."""

    def __init__(self, status: int, code: int, message: str, errors: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.errors = status, code, message, errors

    def response(self) -> web.Response:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors is not None:
            body["errors"] = self.errors
        return json_response(body, status=self.status)


def form_error(field_name: str, code: str, message: str) -> DiscordError:
    """Discord's "Invalid Form Body" about one field."""
    errors = {field_name: {"_errors": [{"code": code, "message": message}]}}
    return DiscordError(400, 50035, "Invalid Form Body", errors)


def check_content(
    data: Mapping[str, Any], *, creating: bool, existing: Mapping[str, Any] | None = None
) -> None:
    """A message being created (or ``existing`` being edited): content, mentions, embeds, and
    never an empty message."""
    content = data.get("content")
    if content is not None and not isinstance(content, str):
        raise form_error("content", "STRING_TYPE_CONVERT", "Must be a string.")
    if content is not None and len(content) > MAX_CONTENT:
        raise form_error(
            "content", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT} or fewer in length."
        )
    mentions = data.get("allowed_mentions")
    if mentions is not None and not (
        isinstance(mentions, dict)
        and set(mentions.get("parse", [])) <= {"users", "roles", "everyone"}
    ):
        raise form_error("allowed_mentions", "MODEL_TYPE_CONVERT", "Invalid.")
    check_embeds(data.get("embeds"))
    will_have_content = content if content is not None else (existing or {}).get("content")
    components = data.get("components", (existing or {}).get("components"))
    empty = not will_have_content and not components and not data.get("embeds")
    if (creating or content is not None) and empty:
        raise DiscordError(400, 50006, "Cannot send an empty message")


def check_thread_name(name: Any) -> None:
    """A thread's name: 1 to 100 characters."""
    if not isinstance(name, str) or not 1 <= len(name) <= 100:
        raise form_error("name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100.")


def check_embeds(embeds: Any) -> None:
    """Discord's embed limits: at most 10, title 256, description 4,096, footer 2,048, 25
    fields of 256 / 1,024, and 6,000 characters in all."""
    if embeds is None:
        return
    if not isinstance(embeds, list) or len(embeds) > 10:
        raise form_error("embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
    total = 0
    for i, embed in enumerate(embeds):
        if not isinstance(embed, dict):
            raise form_error(f"embeds.{i}", "MODEL_TYPE_CONVERT", "Must be an object.")
        texts = {name: embed.get(name) for name in EMBED_LIMITS}
        texts["footer.text"] = (embed.get("footer") or {}).get("text")
        texts["author.name"] = (embed.get("author") or {}).get("name")
        limits = {**EMBED_LIMITS, "footer.text": 2048, "author.name": 256}
        fields = embed.get("fields") or []
        if len(fields) > 25:
            raise form_error(f"embeds.{i}.fields", "BASE_TYPE_MAX_LENGTH", "At most 25.")
        for j, item in enumerate(fields):
            for part, limit in (("name", 256), ("value", 1024)):
                texts[f"fields.{j}.{part}"] = item.get(part) or ""
                limits[f"fields.{j}.{part}"] = limit
                if not item.get(part):
                    raise form_error(f"embeds.{i}.fields.{j}.{part}", "BASE_TYPE_REQUIRED", "")
        for name, value in texts.items():
            if value is None:
                continue
            if not isinstance(value, str) or len(value) > limits[name]:
                raise form_error(
                    f"embeds.{i}.{name}",
                    "BASE_TYPE_MAX_LENGTH",
                    f"Must be {limits[name]} or fewer in length.",
                )
            total += len(value)
    if total > EMBED_TOTAL:
        raise form_error("embeds", "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size")


def _check_named(item: Mapping[str, Any], where: str) -> None:
    if not isinstance(item.get("name"), str) or not _NAME.fullmatch(item["name"]):
        raise form_error(f"{where}name", "APPLICATION_COMMAND_INVALID_NAME", "Invalid name.")
    description = item.get("description", "")
    if not isinstance(description, str) or not 1 <= len(description) <= 100:
        raise form_error(f"{where}description", "BASE_TYPE_BAD_LENGTH", "1 to 100 characters.")


def check_command(command: Any) -> None:
    """Discord's rules for a command in a sync: names, descriptions and options."""
    if not isinstance(command, dict):
        raise form_error("_", "MODEL_TYPE_CONVERT", "Must be an object.")
    if command.get("type", 1) != 1:  # user and message commands: a name only
        if not 1 <= len(command.get("name", "")) <= 32 or command.get("options"):
            raise form_error("name", "APPLICATION_COMMAND_INVALID_NAME", "Invalid name.")
        return
    _check_named(command, "")
    _check_options(command.get("options") or [], "options", None)


def _check_options(options: Any, where: str, parent: int | None) -> None:
    """Options of a command (``parent`` None), a subcommand (1) or a subcommand group (2):
    subcommands never sit beside other options, groups hold only subcommands, a subcommand
    holds none, required options come first, choices and ranges fit their option's type."""
    if not isinstance(options, list) or len(options) > 25:
        raise form_error(where, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    names = [o.get("name") for o in options if isinstance(o, dict)]
    if len(names) != len(options) or len(set(names)) != len(names):
        raise form_error(where, "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS", "Duplicate.")
    nested = [o.get("type") in (1, 2) for o in options]
    if (
        (any(nested) and not all(nested))
        or (parent == 1 and any(nested))
        or (parent == 2 and any(o.get("type") != 1 for o in options))
    ):
        raise form_error(
            where, "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID", "Invalid option types here."
        )
    optional_seen = False
    for i, option in enumerate(options):
        path, kind = f"{where}.{i}.", option.get("type")
        if kind not in range(1, 12):
            raise form_error(f"{path}type", "BASE_TYPE_CHOICES", "Invalid option type.")
        _check_named(option, path)
        if kind in (1, 2):
            _check_options(option.get("options") or [], f"{path}options", kind)
            continue
        if option.get("required") and optional_seen:
            raise form_error(
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
            raise form_error(f"{path}choices", "BASE_TYPE_CHOICES", "Invalid choices.")
        if {"min_value", "max_value"} & option.keys() and kind not in (4, 10):
            raise form_error(path, "APPLICATION_COMMAND_OPTION_INVALID", "No range here.")
        if {"min_length", "max_length"} & option.keys() and (
            kind != 3
            or not 0 <= option.get("min_length", 0) <= 6000
            or not 1 <= option.get("max_length", 1) <= 6000
        ):
            raise form_error(path, "APPLICATION_COMMAND_OPTION_INVALID", "Bad lengths.")
