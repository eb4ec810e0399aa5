"""Context on Discord: `/context new|list|clear`, messages and .txt / .md files posted in a
context thread stored as cited blocks, and the "Add as context" message menu.

"Add as context" on a message in a thread adds it to that thread's conversation (in a DM, to
the DM's). Anywhere else it never lands in a conversation silently: the user is asked,
privately, whether it goes to the channel's current context thread, a new one, or nowhere; the
message's text and files wait in Redis meanwhile (`ChatService.hold`, 15 minutes).
"""

from __future__ import annotations

import contextlib

import discord
from discord import app_commands
from discord.ext import commands

from airoboros_bot.bots.core.render import split_message
from airoboros_bot.bots.core.service import ChatService, ContextUsage
from airoboros_bot.bots.discord import text
from airoboros_bot.bots.discord.access import Place
from airoboros_bot.bots.discord.buttons import CONTEXT_BUTTONS_COG, ContextChoiceButton, button_view
from airoboros_bot.bots.discord.places import Places, actor, command_place
from airoboros_bot.bots.discord.replies import NO_MENTIONS, reply_ephemeral, reply_to
from airoboros_bot.conversations.errors import ChatError
from airoboros_bot.conversations.models import ContextBlock, ConversationKey


def _where(key: ConversationKey) -> str:
    if key.thread:
        return f"<#{key.thread}>"
    return "this direct message" if key.workspace == "dm" else f"<#{key.channel}>"


Piece = tuple[str, dict[str, str]]  # a block's text and metadata, before it is added


class ContextCommands(
    commands.GroupCog,
    name=CONTEXT_BUTTONS_COG,
    group_name="context",
    group_description="Document conversations in threads",
):
    """Messages and files turned into context blocks of a conversation; ``menu`` is the
    "Add as context" message menu (discord.py adds no context menus from a cog by itself)."""

    def __init__(self, service: ChatService, places: Places, max_attachment_bytes: int) -> None:
        super().__init__()
        self.service = service
        self.places = places
        self.max_attachment_bytes = max_attachment_bytes
        self.menu = app_commands.ContextMenu(name="Add as context", callback=self.add_as_context)

    @app_commands.command(
        name="new", description="Open a thread whose messages and files are context"
    )
    @app_commands.describe(title="Name of the thread")
    async def new_thread(
        self,
        interaction: discord.Interaction,
        title: app_commands.Range[str, 1, 100] | None = None,
    ) -> None:
        """`/context new`: open a context thread (or make the current thread one), owned by
        the user who ran it."""
        place = command_place(interaction)
        owner = str(interaction.user.id)
        if place.guild_id is None:
            await reply_ephemeral(interaction, text.NO_THREADS_HERE)
            return
        if place.in_thread:
            name = title or getattr(interaction.channel, "name", "") or "Context"
            await self.service.open_context(place.channel_key, place.key, name, owner=owner)
            await interaction.response.send_message(
                f"This thread is now a context thread.\n{text.CONTEXT_WELCOME}",
                allowed_mentions=NO_MENTIONS,
            )
            return
        channel = interaction.channel
        if not isinstance(channel, discord.TextChannel):
            await reply_ephemeral(interaction, text.NO_THREADS_HERE)
            return
        await interaction.response.defer(thinking=True)
        try:
            thread = await self.open_thread(channel, place, title or "", owner)
        except discord.HTTPException as exc:
            with contextlib.suppress(discord.HTTPException):
                await interaction.delete_original_response()
            await reply_ephemeral(interaction, text.cannot_open_thread(exc.text))
            return
        await interaction.edit_original_response(
            content=f"Opened the context thread {thread.mention}: post text or .txt / .md files "
            "there, then ask with `/ask` or by mentioning me. **Add as context** (message menu "
            "→ Apps) adds messages from this channel to it.",
            allowed_mentions=NO_MENTIONS,
        )

    async def open_thread(
        self, channel: discord.TextChannel, place: Place, title: str, owner: str
    ) -> discord.Thread:
        """Open a context thread in ``channel`` (the channel's current one from now on), owned
        by ``owner``, with its welcome; raises `discord.HTTPException` if Discord refuses."""
        name = text.thread_name(title, "Context")
        thread = await channel.create_thread(
            name=name, type=discord.ChannelType.public_thread, auto_archive_duration=1440
        )
        thread_place = Place(place.guild_id, thread.id, channel.id)
        self.places.remember_thread(thread)
        await self.service.open_context(place.channel_key, thread_place.key, name, owner=owner)
        await thread.send(text.CONTEXT_WELCOME, allowed_mentions=NO_MENTIONS)
        return thread

    @app_commands.command(
        name="list", description="The context blocks and how much window they use"
    )
    async def list_blocks(self, interaction: discord.Interaction) -> None:
        """`/context list`: the blocks of this channel's context conversation and their size."""
        place = command_place(interaction)
        target = await self.service.context_target(place.key)
        usage = await self.service.context_usage(target)
        pages = split_message(text.usage_report(usage, _where(target)), text.MESSAGE_LIMIT)
        await interaction.response.send_message(
            pages[0], ephemeral=True, allowed_mentions=NO_MENTIONS
        )
        for page in pages[1:]:
            await interaction.followup.send(page, ephemeral=True, allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="clear", description="Remove the context blocks")
    async def clear_blocks(self, interaction: discord.Interaction) -> None:
        """`/context clear`: remove the blocks of this thread's or this channel's context
        conversation (whoever opened it, or Manage Messages)."""
        place = command_place(interaction)
        if place.guild_id is None:
            await self.service.begin(place.key, str(interaction.user.id))  # the DM is theirs
        target = await self.service.context_target(place.key)
        removed = await self.service.clear_context(target, by=actor(interaction))
        await interaction.response.send_message(
            f"Removed {removed} context block(s) from {_where(target)}.",
            allowed_mentions=NO_MENTIONS,
        )

    async def add_as_context(
        self, interaction: discord.Interaction, message: discord.Message
    ) -> None:
        """Message menu "Add as context": in a thread (or DM) into its conversation; anywhere
        else the user is asked where it goes (the channel's context thread, a new one)."""
        place = command_place(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        pieces, problems = await self.read_message(message)
        author = message.author.display_name
        target = place.key if place.guild_id is None else None
        placement = None
        if target is None:
            placement = await self.service.context_placement(place.key)
            target = placement.target
        if target is not None or not pieces:
            report = await self._add_and_report(target, pieces, problems, author)
            await interaction.edit_original_response(content=report, allowed_mentions=NO_MENTIONS)
            return
        assert placement is not None
        user = str(interaction.user.id)
        token = await self.service.hold(user, {"pieces": pieces, "author": author})
        choices = []
        if placement.current is not None:
            title = placement.current_title or "the context thread"
            choices.append(ContextChoiceButton("current", token, f"Add to {title}"))
        if isinstance(interaction.channel, discord.TextChannel):
            choices.append(ContextChoiceButton("new", token))
        choices.append(ContextChoiceButton("cancel", token))
        question = text.context_question(author, placement.current, placement.current_title)
        await interaction.edit_original_response(
            content="\n".join([question, *problems])[: text.MESSAGE_LIMIT],
            view=button_view(*choices),
            allowed_mentions=NO_MENTIONS,
        )

    async def context_choice(
        self, interaction: discord.Interaction, choice: str, token: str
    ) -> None:
        """The answer to "where should this message go?" (`ContextChoiceButton`)."""
        place = command_place(interaction)
        held = await self.service.take_held(str(interaction.user.id), token)
        if held is None:
            await interaction.response.edit_message(
                content=text.CHOICE_EXPIRED, view=None, allowed_mentions=NO_MENTIONS
            )
            return
        await interaction.response.defer()
        pieces: list[Piece] = [(str(t), dict(m)) for t, m in held.get("pieces", [])]
        author = str(held.get("author", "someone"))
        target: ConversationKey | None = None
        report = "Nothing was added."
        if choice == "current":
            target = await self.service.current_context(place.channel_key)
            if target is None:
                report = "This channel has no context thread any more: nothing was added."
        elif choice == "new" and isinstance(interaction.channel, discord.TextChannel):
            try:
                thread = await self.open_thread(
                    interaction.channel, place, f"Context from {author}", str(interaction.user.id)
                )
            except discord.HTTPException as exc:
                report = text.cannot_open_thread(exc.text)
            else:
                target = Place(place.guild_id, thread.id, interaction.channel.id).key
        if target is not None:
            report = await self._add_and_report(target, pieces, [], author)
        await interaction.edit_original_response(
            content=report, view=None, allowed_mentions=NO_MENTIONS
        )

    async def _add_and_report(
        self,
        target: ConversationKey | None,
        pieces: list[Piece],
        problems: list[str],
        author: str,
    ) -> str:
        """Add ``pieces`` to ``target``; what to tell the user (added where, what was not)."""
        lines = []
        if target is not None and pieces:
            added, refused, usage = await self.add_pieces(target, pieces)
            if added and usage is not None:
                lines.append(
                    f"Added {author}'s message ({len(added)} block(s)) to {_where(target)}: "
                    f"{usage.total_tokens} of {usage.window} tokens in use."
                )
            problems = [*problems, *refused]
        lines.extend(problems)
        return "\n".join(lines)[: text.MESSAGE_LIMIT] or "Nothing was added."

    # -- posts in a context thread --------------------------------------------------------------
    async def context_message(self, message: discord.Message, key: ConversationKey) -> None:
        """A message posted in a context thread: store it, mark it, report what was skipped."""
        added, problems, _ = await self.store_message(key, message)
        if added:
            with contextlib.suppress(discord.HTTPException):
                await message.add_reaction(text.STORED_REACTION)
        if problems:
            await reply_to(message, "\n".join(problems))

    async def store_message(
        self, key: ConversationKey, message: discord.Message
    ) -> tuple[list[ContextBlock], list[str], ContextUsage | None]:
        """Store a message's text and .txt / .md attachments as context blocks.

        Returns the blocks added, one line per part that was not added (and why), and the
        conversation's context usage after adding.
        """
        pieces, problems = await self.read_message(message)
        added, refused, usage = await self.add_pieces(key, pieces)
        return added, problems + refused, usage

    async def read_message(self, message: discord.Message) -> tuple[list[Piece], list[str]]:
        """A message's text and .txt / .md attachments with their metadata, and one line per
        part that cannot become context (and why)."""
        meta = {
            "url": message.jump_url,
            "date": message.created_at.date().isoformat(),
            "author": message.author.display_name,
            "channel": await self.places.channel_label(message.channel),
        }
        pieces: list[Piece] = []
        problems: list[str] = []
        if message.content.strip():
            pieces.append((message.content, meta))
        for attachment in message.attachments:
            body = await self._read_attachment(attachment, problems)
            if body is not None:
                pieces.append((body, {**meta, "file": attachment.filename}))
        if not pieces and not problems:
            problems.append("That message has no text or .txt / .md file to add as context.")
        return pieces, problems

    async def add_pieces(
        self, key: ConversationKey, pieces: list[Piece]
    ) -> tuple[list[ContextBlock], list[str], ContextUsage | None]:
        """Add pieces as context blocks of ``key``: the blocks added, the refusals, the usage."""
        added: list[ContextBlock] = []
        problems: list[str] = []
        usage = None
        for body, metadata in pieces:
            try:
                block, usage = await self.service.add_context(key, body, metadata)
            except ChatError as exc:
                problems.append(f"{metadata.get('file', 'The message text')}: {exc.user_message}")
            else:
                added.append(block)
        return added, problems, usage

    async def _read_attachment(
        self, attachment: discord.Attachment, problems: list[str]
    ) -> str | None:
        name = attachment.filename
        if not text.is_text_file(name):
            problems.append(f"{name}: only .txt and .md files become context; skipped.")
            return None
        limit = self.max_attachment_bytes
        if attachment.size > limit:
            problems.append(
                f"{name}: {attachment.size} bytes is over the {limit}-byte limit "
                "(AIROBOROS_DISCORD_MAX_ATTACHMENT_BYTES); skipped."
            )
            return None
        try:
            data = await attachment.read()
        except discord.HTTPException as exc:
            problems.append(f"{name}: could not download it ({exc.status}); post it again.")
            return None
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            problems.append(f"{name}: not UTF-8 text; skipped.")
            return None
