"""Context blocks from Slack: ``/context`` threads, messages and text files posted in them,
the "Add as context" message shortcut, and a thread read in when the bot is mentioned in it.

Every block carries the metadata the closed-context prompt cites: url (the message's
permalink), date, author, channel and, for files, the file name. A message added from outside
a thread never lands in a conversation silently: the user is asked (privately) whether it goes
to the channel's current context thread or a new one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from airoboros_bot.bots.core.service import Actor, ChatService, ContextUsage
from airoboros_bot.bots.slack.api import (
    Origin,
    SlackApi,
    SlackCallFailed,
    reply_privately,
    text_field,
)
from airoboros_bot.bots.slack.format import (
    CONTEXT_TO_CURRENT,
    CONTEXT_TO_NEW,
    CONTEXT_USAGE,
    context_choice_blocks,
    context_intro,
    escape,
    link,
    message_date,
    plain_text,
    section,
)
from airoboros_bot.bots.slack.threads import conversation_key, link_thread, linked_conversation
from airoboros_bot.config.settings import SlackSettings
from airoboros_bot.conversations.errors import ChatError
from airoboros_bot.conversations.models import ContextBlock, ConversationKey

log = logging.getLogger(__name__)

TEXT_EXTENSIONS = frozenset(
    {".txt", ".md", ".markdown", ".rst", ".csv", ".tsv", ".json", ".log", ".yaml", ".yml"}
)
TEXT_FILETYPES = frozenset({"text", "markdown", "csv", "json", "yaml", "post"})
MAX_LISTED = 40


def is_text_file(file: Mapping[str, Any]) -> bool:
    """Whether a Slack file object is a text document the model can read."""
    mimetype = str(file.get("mimetype") or "")
    if mimetype.startswith("text/") or mimetype in ("application/json", "application/x-yaml"):
        return True
    suffix = PurePosixPath(str(file.get("name") or "")).suffix.lower()
    return suffix in TEXT_EXTENSIONS or file.get("filetype") in TEXT_FILETYPES


def usage_line(usage: ContextUsage) -> str:
    """How much of the model's window the blocks take."""
    share = 100 * usage.total_tokens / usage.window if usage.window else 0
    count = len(usage.blocks)
    return (
        f"{count} block{'s use' if count != 1 else ' uses'} {usage.total_tokens} of the model's "
        f"{usage.window}-token window ({share:.0f}%)."
    )


class SlackDocuments:
    """Turns Slack messages and files into context blocks of a conversation."""

    def __init__(self, service: ChatService, api: SlackApi, settings: SlackSettings) -> None:
        self.service = service
        self.api = api
        self.settings = settings

    # -- /context -----------------------------------------------------------------------------
    async def command(
        self, origin: Origin, text: str, bot_user_id: str | None, actor: Actor | None = None
    ) -> None:
        """``/context [title]``, ``/context list``, ``/context clear`` (the context thread's
        owner or an admin: ``actor``), ``/context help``."""
        verb = text.strip()
        channel = conversation_key(origin.team, origin.channel)
        if verb.lower() == "help":
            await reply_privately(self.api, origin, CONTEXT_USAGE)
        elif verb.lower() == "list":
            await reply_privately(self.api, origin, await self.listing(channel))
        elif verb.lower() == "clear":
            target = await self.service.current_context(channel)
            if target is None:
                text = "This channel has no context thread: `/context title` starts one."
            else:
                try:
                    removed = await self.service.clear_context(target, by=actor)
                    text = f"Removed {removed} context blocks from {await self.describe(target)}."
                except ChatError as exc:
                    text = exc.user_message
            await reply_privately(self.api, origin, text)
        else:
            await self.open_thread(origin, plain_text(verb) or "Context", bot_user_id)

    async def open_thread(
        self, origin: Origin, title: str, bot_user_id: str | None
    ) -> ConversationKey | None:
        """Post the parent message of a context thread (owned by the user) and make it the
        channel's current one; None (and the user told) when Slack refuses the post."""
        intro = context_intro(title, bot_user_id)
        try:
            ts = await self.api.post_message(origin.channel, intro, [section(intro)])
        except SlackCallFailed as exc:
            await reply_privately(self.api, origin, cannot_post(exc.error))
            return None
        thread = conversation_key(origin.team, origin.channel, ts)
        await self.service.open_context(
            conversation_key(origin.team, origin.channel), thread, title, owner=origin.user
        )
        await link_thread(self.service, origin.team, origin.channel, ts, thread)
        return thread

    async def listing(self, channel: ConversationKey) -> str:
        """The blocks of the channel's current context conversation and the window they use."""
        target = await self.service.context_target(channel)
        usage = await self.service.context_usage(target)
        lines = [f"Context of {await self.describe(target)}:"]
        for number, (block, tokens) in enumerate(
            zip(usage.blocks, usage.block_tokens, strict=True), 1
        ):
            if number > MAX_LISTED:
                lines.append(f"… and {len(usage.blocks) - MAX_LISTED} more.")
                break
            name = link(block.metadata.get("url", ""), block.label[:120])
            lines.append(f"[{number}] {name} ({tokens} tokens)")
        lines.append(usage_line(usage))
        return "\n".join(lines)

    async def describe(self, key: ConversationKey) -> str:
        """A human name for a conversation: the context thread's title or where it is."""
        if key.thread:
            title = await self.service.context_title(key)
            if title:
                return f"the context thread “{escape(title)}”"
            return "this thread's conversation"
        return "this channel's conversation (start a context thread with `/context title`)"

    # -- messages and files -------------------------------------------------------------------
    async def metadata(self, channel: str, message: Mapping[str, Any]) -> dict[str, str]:
        """url, date, author, channel of a message (each best effort)."""
        ts = str(message.get("ts") or "")
        user = message.get("user")
        author = await self.api.user_name(user) if isinstance(user, str) and user else ""
        return {
            "url": (await self.api.permalink(channel, ts) if ts else None) or "",
            "date": message_date(ts),
            "author": author or str(message.get("username") or ""),
            "channel": await self.api.channel_name(channel),
        }

    async def file_text(self, file: Mapping[str, Any]) -> str:
        """The UTF-8 text of an uploaded text file; ChatError when it is not one."""
        if not file.get("url_private") and file.get("id"):
            file = await self.api.file_info(str(file["id"]))
        name = str(file.get("name") or file.get("title") or "file")
        if not is_text_file(file):
            raise ChatError(f"{name}: only text files (.txt, .md, …) can become context.")
        limit = self.settings.max_file_bytes
        if int(file.get("size") or 0) > limit:
            raise ChatError(f"{name}: too large (the limit is {limit:,} bytes).")
        url = str(file.get("url_private_download") or file.get("url_private") or "")
        if not url:
            raise ChatError(f"{name}: Slack gave no download link for it.")
        try:
            data = await self.api.download(url, limit)
        except SlackCallFailed as exc:
            raise ChatError(f"{name}: could not download it ({exc.error}).") from None
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ChatError(f"{name}: not UTF-8 text.") from None

    async def add_message(
        self, key: ConversationKey, channel: str, message: Mapping[str, Any]
    ) -> list[str]:
        """Add a message (its text, or each text file attached to it) as context blocks of
        ``key``; returns one line per block added or refused."""
        meta = await self.metadata(channel, message)
        files = [f for f in message.get("files") or [] if isinstance(f, Mapping)]
        documents: list[tuple[str, dict[str, str]] | ChatError] = []
        for file in files:
            try:
                text = await self.file_text(file)
            except ChatError as exc:
                documents.append(exc)
                continue
            documents.append((text, {**meta, "file": str(file.get("name") or "file")}))
        if not files:
            documents.append((plain_text(str(message.get("text") or "")), meta))
        lines = []
        usage: ContextUsage | None = None
        for document in documents:
            if isinstance(document, ChatError):
                lines.append(f":warning: {escape(document.user_message)}")
                continue
            try:
                block, usage = await self.service.add_context(key, *document)
            except ChatError as exc:
                lines.append(f":warning: {escape(exc.user_message)}")
                continue
            lines.append(f"Added block {len(usage.blocks)}: {escape(_short(block))}")
        if usage is not None:
            lines.append(usage_line(usage))
        return lines

    async def thread_message(
        self, origin: Origin, key: ConversationKey, message: Mapping[str, Any]
    ) -> None:
        """A message posted in a context thread becomes context blocks."""
        lines = await self.add_message(key, origin.channel, message)
        await reply_privately(self.api, origin, "\n".join(lines))

    # -- "Add as context" ---------------------------------------------------------------------
    async def shortcut(self, payload: Mapping[str, Any]) -> None:
        """The message shortcut: a message in a thread conversation is added to it; anywhere
        else the user is asked privately where it goes (see `choose`)."""
        origin = Origin(
            team=text_field(payload, "team", "id"),
            channel=text_field(payload, "channel", "id"),
            user=text_field(payload, "user", "id"),
            response_url=payload.get("response_url") or None,
        )
        message = payload.get("message")
        if not isinstance(message, Mapping) or not message.get("ts"):
            raise ChatError("Sorry, Slack sent no message with that shortcut; nothing was added.")
        thread = message.get("thread_ts")
        source = conversation_key(origin.team, origin.channel)
        if isinstance(thread, str) and thread:
            linked = await linked_conversation(self.service, origin.team, origin.channel, thread)
            source = linked or source
        placement = await self.service.context_placement(source)
        if placement.target is not None:
            await self._add_and_tell(origin, placement.target, message)
            return
        token = await self.service.hold(origin.user, {"message": dict(message)})
        blocks = context_choice_blocks(token, placement.current_title)
        await reply_privately(self.api, origin, blocks[0]["text"]["text"], blocks)

    async def choose(
        self, payload: Mapping[str, Any], action_id: str, bot_user_id: str | None
    ) -> None:
        """The user's answer to "where should this message go?"."""
        origin = Origin(
            team=text_field(payload, "team", "id"),
            channel=text_field(payload, "channel", "id"),
            user=text_field(payload, "user", "id"),
            response_url=payload.get("response_url") or None,
        )
        actions = payload.get("actions")
        action = actions[0] if isinstance(actions, list) and actions else {}
        token = str(action.get("value") or "") if isinstance(action, Mapping) else ""
        held = await self.service.take_held(origin.user, token) if token else None
        message = held.get("message") if held else None
        if not isinstance(message, Mapping):
            await self._tell(origin, "That choice has expired: use *Add as context* again.")
            return
        target: ConversationKey | None = None
        if action_id == CONTEXT_TO_CURRENT:
            target = await self.service.current_context(
                conversation_key(origin.team, origin.channel)
            )
            if target is None:
                await self._tell(origin, "This channel has no context thread any more.")
                return
        elif action_id == CONTEXT_TO_NEW:
            user = message.get("user")
            author = await self.api.user_name(user) if isinstance(user, str) and user else ""
            title = f"Context from {author}" if author else "Context"
            target = await self.open_thread(origin, title, bot_user_id)
        if target is None:
            await self._tell(origin, "Nothing was added.")
            return
        await self._add_and_tell(origin, target, message)

    async def _add_and_tell(
        self, origin: Origin, target: ConversationKey, message: Mapping[str, Any]
    ) -> None:
        lines = await self.add_message(target, origin.channel, message)
        where = await self.describe(target)
        await self._tell(origin, f"Context for {where}:\n" + "\n".join(lines))

    async def _tell(self, origin: Origin, text: str) -> None:
        """Answer a shortcut or a button privately (in place of the question, if any)."""
        if origin.response_url:
            try:
                await self.api.respond(origin.response_url, text, replace_original=True)
                return
            except SlackCallFailed as exc:
                log.info("response_url refused: %s", exc.error)
        await reply_privately(self.api, origin, text)

    # -- reading a thread ---------------------------------------------------------------------
    async def read_thread(
        self,
        origin: Origin,
        key: ConversationKey,
        thread_ts: str,
        mention_ts: str,
        bot_user_id: str | None,
    ) -> int:
        """Read an existing thread (the bot was just mentioned in it) into context blocks of
        ``key``, each with its permalink; returns how many blocks were added. Done once per
        thread; a thread Slack will not give is told to the user, and the question still
        answered."""
        if not await self.service.store.set_meta_once(key, "thread_read", mention_ts):
            return 0
        limit = self.settings.thread_read_limit
        try:
            messages = await self.api.thread_messages(origin.channel, thread_ts, limit + 1)
        except SlackCallFailed as exc:
            log.info("could not read thread %s: %s", thread_ts, exc.error)
            await reply_privately(
                self.api, origin, f"I could not read this thread ({exc.error}); answering anyway."
            )
            return 0
        added = 0
        for message in messages:
            if message.get("ts") == mention_ts or message.get("user") == bot_user_id:
                continue
            if message.get("subtype") not in (None, "file_share", "thread_broadcast"):
                continue
            if added >= limit:
                break
            lines = await self.add_message(key, origin.channel, message)
            added += sum(line.startswith("Added block") for line in lines)
        return added


def _short(block: ContextBlock) -> str:
    label = block.metadata.get("file") or " ".join(block.text.split()[:10])
    return label[:80] + ("…" if len(label) > 80 else "")


def cannot_post(error: str) -> str:
    """What to tell a user when the bot cannot post in the channel."""
    if error in ("not_in_channel", "channel_not_found"):
        return "I can't post in this channel: invite me first (`/invite @airoboros`)."
    return f"Sorry, Slack refused my message ({error})."
