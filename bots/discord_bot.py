"""The Discord bot: slash commands, context threads, a message menu and streamed answers.

A thin adapter: every command maps onto `ChatService`; rendering (2,000-character pages, about
one edit a second) is `bots.render`; the texts are `bots.discord_text`; access rules and payload
checks are `bots.discord_access`. Every message goes out with no allowed mentions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

import discord
from discord import app_commands
from redis.exceptions import RedisError

from bots import discord_text as text
from bots.discord_access import AccessRules, Place, interaction_problem
from bots.discord_running import RunningAnswer, RunningAnswers
from bots.ratelimit import RateLimiter
from bots.render import AnswerView, split_message, stream_answer
from bots.runtime import Runtime
from bots.service import AnswerEvent, ChatService, ContextUsage, Submitted
from config.settings import DiscordSettings
from conversations.errors import ChatError
from conversations.models import ContextBlock, ConversationKey
from engine.errors import EngineError

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
EDIT_INTERVAL_S = 1.0
ADMIT_TIMEOUT_S = 1.5  # Redis checks before the deferral must leave room in Discord's 3 s
DRAIN_TIMEOUT_S = 5.0
CHAT_THREAD_META = "discord_chat_thread"
ENGINE_DOWN = "The answer engine is down (no worker is running): try again in a little while."
QUEUE_DOWN = "The answer engine's queue cannot be reached right now: try again in a moment."


def _role_ids(user: discord.abc.User) -> set[int]:
    return {role.id for role in getattr(user, "roles", ())}


# -- buttons ---------------------------------------------------------------------------------
class StopButton(
    discord.ui.DynamicItem[discord.ui.Button],
    template=r"airoboros:stop:(?P<job>[0-9a-f]{1,64}):(?P<user>[0-9]{1,20})",
):
    """Stops the answer of job ``job_id``; only its asker (or a message manager) may."""

    def __init__(self, job_id: str, user_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Stop",
                style=discord.ButtonStyle.danger,
                custom_id=f"airoboros:stop:{job_id}:{user_id}",
            )
        )
        self.job_id = job_id
        self.user_id = user_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: Any
    ) -> StopButton:
        return cls(match["job"], int(match["user"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        bot = interaction.client
        if isinstance(bot, AiroborosBot):
            await bot.stop_button(interaction, self.job_id, self.user_id)


class ContinueButton(discord.ui.DynamicItem[discord.ui.Button], template=r"airoboros:thread"):
    """Opens a thread on the answer where plain replies continue the conversation."""

    def __init__(self) -> None:
        super().__init__(
            discord.ui.Button(
                label="Continue in thread",
                style=discord.ButtonStyle.secondary,
                custom_id="airoboros:thread",
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: Any
    ) -> ContinueButton:
        return cls()

    async def callback(self, interaction: discord.Interaction) -> None:
        bot = interaction.client
        if isinstance(bot, AiroborosBot):
            await bot.continue_in_thread(interaction)


def _buttons(*items: discord.ui.Item) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for item in items:
        view.add_item(item)
    return view


# -- where answers are shown -----------------------------------------------------------------
class AnswerSink:
    """Shows one answer: page 0 carries the buttons, later pages are further messages."""

    def __init__(self, *, offer_thread: bool) -> None:
        self.offer_thread = offer_thread
        self.running: RunningAnswer | None = None  # set by `AiroborosBot.answer`
        self.view: AnswerView | None = None  # likewise
        self.more: list[discord.Message | discord.WebhookMessage] = []
        self._buttons_shown = ""  # "", "stop" or "thread": what page 0 carries now

    def _wanted_buttons(self, final: bool) -> str:
        running = self.running
        if not final:
            return "stop" if running and running.job_id and not running.stopping else ""
        answer = self.view.final if self.view else None
        stopped = answer is not None and answer.finish_reason == "cancelled"
        return "thread" if self.offer_thread and answer is not None and not stopped else ""

    def _view(self, kind: str) -> discord.ui.View | None:
        if kind == "stop" and self.running:
            return _buttons(StopButton(self.running.job_id, self.running.user_id))
        if kind == "thread":
            return _buttons(ContinueButton())
        return None

    async def update(self, index: int, content: str, *, final: bool) -> None:
        """Create or edit page ``index`` (the `MessageSink` protocol of `bots.render`)."""
        if index == 0:
            kind = self._wanted_buttons(final)
            await self._set_first(content, self._view(kind))
            self._buttons_shown = kind
        elif index - 1 < len(self.more):
            await self.more[index - 1].edit(content=content, allowed_mentions=NO_MENTIONS)
        else:
            self.more.append(await self._send_more(content))

    async def settle(self) -> None:
        """After the last update: give page 0 its final buttons if it was not edited last."""
        kind = self._wanted_buttons(True)
        if kind != self._buttons_shown:
            await self._set_first(None, self._view(kind))
            self._buttons_shown = kind

    async def fail(self, message: str) -> None:
        """Replace the partial answer with ``message``."""
        raise NotImplementedError

    async def _set_first(self, content: str | None, view: discord.ui.View | None) -> None:
        raise NotImplementedError

    async def _send_more(self, content: str) -> discord.Message | discord.WebhookMessage:
        raise NotImplementedError


class InteractionSink(AnswerSink):
    """An answer to a deferred interaction: edits of @original, then follow-ups."""

    def __init__(
        self, interaction: discord.Interaction, *, private: bool, offer_thread: bool
    ) -> None:
        super().__init__(offer_thread=offer_thread and not private)
        self.interaction = interaction
        self.private = private

    async def _set_first(self, content: str | None, view: discord.ui.View | None) -> None:
        options: dict[str, Any] = {"view": view, "allowed_mentions": NO_MENTIONS}
        if content is not None:
            options["content"] = content
        await self.interaction.edit_original_response(**options)

    async def _send_more(self, content: str) -> discord.WebhookMessage:
        return await self.interaction.followup.send(
            content, wait=True, ephemeral=self.private, allowed_mentions=NO_MENTIONS
        )

    async def fail(self, message: str) -> None:
        """Remove what was shown and tell the asker alone (ephemeral)."""
        with contextlib.suppress(discord.HTTPException):
            await self.interaction.delete_original_response()
        for page in self.more:
            with contextlib.suppress(discord.HTTPException):
                await page.delete()
        await self.interaction.followup.send(message, ephemeral=True, allowed_mentions=NO_MENTIONS)


class ReplySink(AnswerSink):
    """An answer to a chat message: a reply that is edited, then further messages."""

    def __init__(self, message: discord.Message, *, offer_thread: bool) -> None:
        super().__init__(offer_thread=offer_thread)
        self.source = message
        self.first: discord.Message | None = None

    async def _set_first(self, content: str | None, view: discord.ui.View | None) -> None:
        if self.first is None:
            self.first = await self.source.channel.send(
                content or "…",
                reference=self.source.to_reference(fail_if_not_exists=False),
                mention_author=False,
                allowed_mentions=NO_MENTIONS,
                view=view or discord.utils.MISSING,
            )
            return
        options: dict[str, Any] = {"view": view, "allowed_mentions": NO_MENTIONS}
        if content is not None:
            options["content"] = content
        self.first = await self.first.edit(**options)

    async def _send_more(self, content: str) -> discord.Message:
        return await self.source.channel.send(content, allowed_mentions=NO_MENTIONS)

    async def fail(self, message: str) -> None:
        """Put ``message`` where the answer was (a reply cannot be ephemeral)."""
        for page in self.more:
            with contextlib.suppress(discord.HTTPException):
                await page.delete()
        await self._set_first(message, None)


# -- the command tree ------------------------------------------------------------------------
class BotTree(app_commands.CommandTree):
    """Applies the access rules to every command and answers every failure ephemerally."""

    client: AiroborosBot

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        reason = self.client.refusal(interaction)
        if reason:
            log.info(
                "refused %s for user %s: %s", _command_name(interaction), _uid(interaction), reason
            )
            await self.client.reply_ephemeral(interaction, reason)
            return False
        return True

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError, /
    ) -> None:
        if isinstance(error, app_commands.CommandNotFound):
            log.warning("ignoring unknown command /%s (commands may still be syncing)", error.name)
            message = f"I don't know `/{error.name}` (my commands may be updating): see `/help`."
        elif isinstance(error, app_commands.TransformerError):
            log.warning("ignoring a command with a bad option value: %s", error)
            message = "That command came with an option value I can't read: try again."
        else:
            original = getattr(error, "original", error)
            if isinstance(original, ChatError | EngineError):
                message = original.user_message
            else:
                log.error("command %s failed", _command_name(interaction), exc_info=error)
                message = "Something went wrong on my side (it is logged): try again."
        await self.client.reply_ephemeral(interaction, message)


def _command_name(interaction: discord.Interaction) -> str:
    command = interaction.command
    return f"/{command.qualified_name}" if command else "an interaction"


def _uid(interaction: discord.Interaction) -> int:
    return interaction.user.id if interaction.user else 0


def _guard_parsers(parsers: dict[str, Callable[[Any], Any]]) -> None:
    """Make gateway events that are malformed, unknown or failing get logged and dropped.

    discord.py runs these parsers in its gateway reader, where an exception would end the
    connection; an interaction payload is checked before discord.py sees it.
    """

    def guard(event: str, parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def guarded(data: Any) -> None:
            if event == "INTERACTION_CREATE":
                problem = interaction_problem(data)
                if problem:
                    log.warning("ignoring a malformed or unknown interaction: %s", problem)
                    return
            try:
                parse(data)
            except Exception:
                log.exception("ignoring a %s event that could not be handled", event)

        return guarded

    for event, parse in list(parsers.items()):
        parsers[event] = guard(event, parse)


# -- the bot ---------------------------------------------------------------------------------
class AiroborosBot(discord.Client):
    """The Discord client: commands in `tree`, chat messages in `on_message`."""

    def __init__(
        self, service: ChatService, limiter: RateLimiter, settings: DiscordSettings
    ) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_messages = True
        intents.dm_messages = True
        intents.message_content = True
        super().__init__(
            intents=intents, allowed_mentions=NO_MENTIONS, chunk_guilds_at_startup=False
        )
        self.service = service
        self.limiter = limiter
        self.settings = settings
        self.access = AccessRules.from_settings(settings)
        self.running = RunningAnswers()
        self.tree = BotTree(
            self,
            allowed_contexts=app_commands.AppCommandContext(
                guild=True, dm_channel=settings.allow_dms, private_channel=False
            ),
            allowed_installs=app_commands.AppInstallationType(guild=True, user=False),
        )
        self._looked_up: dict[int, discord.abc.GuildChannel | discord.Thread] = {}
        self._lookups: dict[int, asyncio.Future[Any]] = {}
        self._channel_order: weakref.WeakValueDictionary[int, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._closing = False
        _register_commands(self)
        _guard_parsers(self._connection.parsers)

    # -- start-up ----------------------------------------------------------------------------
    async def setup_hook(self) -> None:
        self.add_dynamic_items(StopButton, ContinueButton)
        await self.sync_commands()

    async def sync_commands(self) -> None:
        """Register the commands with Discord: to the configured guilds, else globally."""
        guild_ids = self.settings.guild_ids
        if not guild_ids:
            synced = await self.tree.sync()
            log.info(
                "synced %d commands globally (set AIROBOROS_DISCORD_GUILD_IDS to sync to "
                "guilds instead, which shows changes at once)",
                len(synced),
            )
            return
        done = []
        for guild_id in guild_ids:
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)
            try:
                synced = await self.tree.sync(guild=guild)
            except discord.HTTPException as exc:
                log.error(
                    "could not sync commands to guild %s (%s %s): is the bot in it, invited "
                    "with the applications.commands scope?",
                    guild_id,
                    exc.status,
                    exc.text,
                )
                continue
            done.append(guild_id)
        log.info(
            "synced %d commands to %d of %d configured guild(s) %s (AIROBOROS_DISCORD_GUILD_IDS)",
            len(self.tree.get_commands()),
            len(done),
            len(guild_ids),
            ", ".join(map(str, done)) or "-",
        )

    async def on_ready(self) -> None:
        log.info("connected to Discord as %s in %d guild(s)", self.user, len(self.guilds))

    async def close(self) -> None:
        """Let running answers finish briefly, stop the rest, then disconnect."""
        if not self._closing:
            self._closing = True
            if not await self.running.wait_idle(DRAIN_TIMEOUT_S):
                for answer in self.running.all():
                    await self._stop(answer)
                await self.running.wait_idle(2.0)
        await super().close()

    # -- places, access, admission ------------------------------------------------------------
    def interaction_place(self, interaction: discord.Interaction) -> Place | None:
        """Where an interaction happened (None if its channel is of an unknown kind)."""
        channel = interaction.channel
        if channel is None:
            return None
        if isinstance(channel, discord.Thread):
            return Place(interaction.guild_id, channel.id, channel.parent_id)
        return Place(interaction.guild_id, channel.id)

    async def message_place(self, message: discord.Message) -> Place:
        """Where a message was posted, looking up uncached threads' parents over REST."""
        channel = message.channel
        guild_id = message.guild.id if message.guild else getattr(channel, "guild_id", None)
        if guild_id is None:
            return Place(None, channel.id)
        if isinstance(channel, discord.Thread):
            return Place(guild_id, channel.id, channel.parent_id)
        if isinstance(channel, discord.PartialMessageable):
            found = await self._look_up(channel.id)
            parent = found.parent_id if isinstance(found, discord.Thread) else None
            return Place(guild_id, channel.id, parent)
        return Place(guild_id, channel.id)

    async def _look_up(self, channel_id: int) -> discord.abc.GuildChannel | discord.Thread | None:
        """A channel the cache does not know (a thread from before the bot started)."""
        if channel_id in self._looked_up:
            return self._looked_up[channel_id]
        pending = self._lookups.get(channel_id)
        if pending is None:  # one request, however many messages arrive meanwhile
            pending = self._lookups[channel_id] = asyncio.ensure_future(
                self.fetch_channel(channel_id)
            )
        try:
            channel = await asyncio.shield(pending)
        except discord.HTTPException as exc:
            log.warning("could not look up channel %s: %s", channel_id, exc)
            return None
        finally:
            if pending.done():
                self._lookups.pop(channel_id, None)
        if isinstance(channel, discord.abc.GuildChannel | discord.Thread):
            self._looked_up[channel_id] = channel
        return self._looked_up.get(channel_id)

    async def channel_label(self, channel: Any) -> str:
        """``#name`` of a channel or thread, for context metadata."""
        name = getattr(channel, "name", None)
        if not name and isinstance(channel, discord.PartialMessageable) and channel.guild_id:
            name = getattr(await self._look_up(channel.id), "name", None)
        if name:
            return f"#{name}"
        return "direct message" if getattr(channel, "guild", None) is None else "#unknown"

    def refusal(self, interaction: discord.Interaction) -> str | None:
        """Why this interaction's user may not use the bot where it happened (None = allowed)."""
        place = self.interaction_place(interaction)
        if place is None:
            return "I can't work in this kind of channel."
        return self.access.refusal(place, _role_ids(interaction.user))

    async def admit(self, user_id: int) -> str | None:
        """Check the engine is up and the user is within the rate limit (None = go ahead)."""
        try:
            async with asyncio.timeout(ADMIT_TIMEOUT_S):
                if not await self.service.engine.live_workers():
                    return ENGINE_DOWN
                wait = await self.limiter.check(f"discord:{user_id}")
        except (TimeoutError, RedisError, OSError, EngineError) as exc:
            log.warning("cannot check the engine or rate limit: %s", type(exc).__name__)
            return QUEUE_DOWN
        if wait:
            return text.rate_limited(wait, self.limiter.limit)
        return None

    async def reply_ephemeral(self, interaction: discord.Interaction, content: str) -> None:
        """Answer only the user who interacted, whether or not the interaction was answered."""
        content = content[: text.MESSAGE_LIMIT]
        try:
            if interaction.response.is_done():
                await interaction.followup.send(
                    content, ephemeral=True, allowed_mentions=NO_MENTIONS
                )
            else:
                await interaction.response.send_message(
                    content, ephemeral=True, allowed_mentions=NO_MENTIONS
                )
        except discord.HTTPException as exc:
            log.warning("could not reply to an interaction: %s %s", exc.status, exc.text)

    # -- answers ------------------------------------------------------------------------------
    async def answer(
        self, key: ConversationKey, user_id: int, question: str, sink: AnswerSink
    ) -> None:
        """Ask the service and stream the answer into ``sink``; failures replace it."""
        running = self.running.start(key, user_id)
        view = AnswerView(limit=text.MESSAGE_LIMIT, format_sources=text.format_sources)
        sink.running, sink.view = running, view
        try:
            async with contextlib.aclosing(self.service.ask(key, question)) as events:
                tracked = self._track(events, running)
                await stream_answer(tracked, sink, view, interval_s=EDIT_INTERVAL_S)
            await sink.settle()
        except (ChatError, EngineError) as exc:
            log.info("answer failed: %s", exc.user_message)
            with contextlib.suppress(discord.HTTPException):
                await sink.fail(exc.user_message)
        except discord.HTTPException as exc:
            log.warning("Discord refused an update of an answer: %s %s", exc.status, exc.text)
        finally:
            self.running.finish(running)

    async def _track(
        self, events: AsyncIterator[AnswerEvent], running: RunningAnswer
    ) -> AsyncIterator[AnswerEvent]:
        """Pass events on, noting the job id so the answer can be stopped (even by a /stop
        that came before the job was queued)."""
        async for event in events:
            if isinstance(event, Submitted):
                running.job_id = event.job_id
                if running.stopping:
                    await self._cancel_job(event.job_id)
            yield event

    async def ask_command(
        self, interaction: discord.Interaction, question: str, private: bool
    ) -> None:
        """`/ask`: check, defer, stream."""
        place = self.interaction_place(interaction)
        assert place is not None  # interaction_check refused the others
        refusal = await self.admit(interaction.user.id)
        if refusal:
            await self.reply_ephemeral(interaction, refusal)
            return
        await interaction.response.defer(thinking=True, ephemeral=private)
        offer_thread = place.guild_id is not None and not place.in_thread
        sink = InteractionSink(interaction, private=private, offer_thread=offer_thread)
        await self.answer(place.key, interaction.user.id, question, sink)

    async def answer_message(self, message: discord.Message, place: Place, question: str) -> None:
        """A question asked in a chat message (mention, DM or chat thread)."""
        if not question:
            await message.reply(
                "Ask me something after the mention.",
                mention_author=False,
                allowed_mentions=NO_MENTIONS,
            )
            return
        refusal = await self.admit(message.author.id)
        if refusal:
            await message.reply(refusal, mention_author=False, allowed_mentions=NO_MENTIONS)
            return
        offer_thread = place.guild_id is not None and not place.in_thread
        sink = ReplySink(message, offer_thread=offer_thread)
        await self.answer(place.key, message.author.id, question, sink)

    async def _stop(self, answer: RunningAnswer) -> None:
        answer.stopping = True
        if answer.job_id:
            await self._cancel_job(answer.job_id)

    async def _cancel_job(self, job_id: str) -> None:
        try:
            await self.service.cancel(job_id)
        except (RedisError, OSError) as exc:
            log.warning("could not cancel job %s: %s", job_id, type(exc).__name__)

    async def stop_command(self, interaction: discord.Interaction) -> None:
        """`/stop`: stop the user's answers in this channel or thread."""
        place = self.interaction_place(interaction)
        assert place is not None
        answers = self.running.of_user(place.key, interaction.user.id)
        for answer in answers:
            await self._stop(answer)
        await self.reply_ephemeral(
            interaction,
            f"Stopping {len(answers)} answer(s)."
            if answers
            else "Nothing of yours is being written here.",
        )

    async def stop_button(
        self, interaction: discord.Interaction, job_id: str, owner_id: int
    ) -> None:
        """The Stop button under an answer."""
        if interaction.user.id != owner_id and not interaction.permissions.manage_messages:
            await self.reply_ephemeral(interaction, text.STOP_NOT_YOURS)
            return
        answer = self.running.by_job(job_id)
        if answer is not None:
            answer.stopping = True
            await interaction.response.defer()
        else:  # written by an earlier run of the bot: just remove the stale button
            await interaction.response.edit_message(view=None, allowed_mentions=NO_MENTIONS)
        await self._cancel_job(job_id)

    async def continue_in_thread(self, interaction: discord.Interaction) -> None:
        """The "Continue in thread" button: a thread on the answer, carrying the conversation."""
        place = self.interaction_place(interaction)
        reason = self.refusal(interaction)
        if place is None or reason or interaction.message is None or place.in_thread:
            await self.reply_ephemeral(
                interaction, reason or "This can't be continued in a thread."
            )
            return
        await interaction.response.defer()
        name = text.thread_name(f"{interaction.user.display_name}'s conversation")
        try:
            thread = await interaction.message.create_thread(name=name, auto_archive_duration=1440)
        except discord.HTTPException as exc:
            await self.reply_ephemeral(interaction, f"I could not open a thread here ({exc.text}).")
            return
        thread_key = Place(place.guild_id, thread.id, place.channel_id).key
        store = self.service.store
        for turn in await store.history(place.key):
            await store.add_turn(thread_key, turn)
        await self.service.set_mode(thread_key, await self.service.get_mode(place.key))
        await store.set_meta(thread_key, CHAT_THREAD_META, str(interaction.user.id))
        self._looked_up[thread.id] = thread
        await interaction.edit_original_response(view=None, allowed_mentions=NO_MENTIONS)
        await thread.send(text.CHAT_THREAD_WELCOME, allowed_mentions=NO_MENTIONS)

    # -- context ------------------------------------------------------------------------------
    async def store_message(
        self, key: ConversationKey, message: discord.Message
    ) -> tuple[list[ContextBlock], list[str], ContextUsage | None]:
        """Store a message's text and .txt / .md attachments as context blocks.

        Returns the blocks added, one line per part that was not added (and why), and the
        conversation's context usage after adding.
        """
        meta = {
            "url": message.jump_url,
            "date": message.created_at.date().isoformat(),
            "author": message.author.display_name,
            "channel": await self.channel_label(message.channel),
        }
        pieces: list[tuple[str, dict[str, str]]] = []
        problems: list[str] = []
        if message.content.strip():
            pieces.append((message.content, meta))
        for attachment in message.attachments:
            body = await self._read_attachment(attachment, problems)
            if body is not None:
                pieces.append((body, {**meta, "file": attachment.filename}))
        if not pieces and not problems:
            problems.append("That message has no text or .txt / .md file to add as context.")
        added: list[ContextBlock] = []
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
        limit = self.settings.max_attachment_bytes
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

    async def context_message(self, message: discord.Message, key: ConversationKey) -> None:
        """A message posted in a context thread: store it, mark it, report what was skipped."""
        added, problems, _ = await self.store_message(key, message)
        if added:
            with contextlib.suppress(discord.HTTPException):
                await message.add_reaction(text.STORED_REACTION)
        if problems:
            await message.reply(
                "\n".join(problems)[: text.MESSAGE_LIMIT],
                mention_author=False,
                allowed_mentions=NO_MENTIONS,
            )

    async def context_new(self, interaction: discord.Interaction, title: str | None) -> None:
        """`/context new`: open a context thread (or make the current thread one)."""
        place = self.interaction_place(interaction)
        assert place is not None
        if place.guild_id is None:
            await self.reply_ephemeral(interaction, text.NO_THREADS_HERE)
            return
        if place.in_thread:
            name = title or getattr(interaction.channel, "name", "") or "Context"
            await self.service.open_context(place.channel_key, place.key, name)
            await interaction.response.send_message(
                f"This thread is now a context thread.\n{text.CONTEXT_WELCOME}",
                allowed_mentions=NO_MENTIONS,
            )
            return
        channel = interaction.channel
        if not isinstance(channel, discord.TextChannel):
            await self.reply_ephemeral(interaction, text.NO_THREADS_HERE)
            return
        await interaction.response.defer(thinking=True)
        name = text.thread_name(title or "", "Context")
        try:
            thread = await channel.create_thread(
                name=name, type=discord.ChannelType.public_thread, auto_archive_duration=1440
            )
        except discord.HTTPException as exc:
            with contextlib.suppress(discord.HTTPException):
                await interaction.delete_original_response()
            await self.reply_ephemeral(
                interaction,
                f"I could not open a thread here ({exc.text}): I need the Create Public "
                "Threads and Send Messages in Threads permissions.",
            )
            return
        thread_place = Place(place.guild_id, thread.id, channel.id)
        self._looked_up[thread.id] = thread
        await self.service.open_context(place.channel_key, thread_place.key, name)
        await thread.send(text.CONTEXT_WELCOME, allowed_mentions=NO_MENTIONS)
        await interaction.edit_original_response(
            content=f"Opened the context thread {thread.mention}: post text or .txt / .md files "
            "there, then ask with `/ask` or by mentioning me. **Add as context** (message menu "
            "→ Apps) adds messages from this channel to it.",
            allowed_mentions=NO_MENTIONS,
        )

    async def context_list(self, interaction: discord.Interaction) -> None:
        """`/context list`: the blocks of this channel's context conversation and their size."""
        place = self.interaction_place(interaction)
        assert place is not None
        target = await self.service.context_target(place.key)
        usage = await self.service.context_usage(target)
        pages = split_message(text.usage_report(usage, _where(target)), text.MESSAGE_LIMIT)
        await interaction.response.send_message(
            pages[0], ephemeral=True, allowed_mentions=NO_MENTIONS
        )
        for page in pages[1:]:
            await interaction.followup.send(page, ephemeral=True, allowed_mentions=NO_MENTIONS)

    async def context_clear(self, interaction: discord.Interaction) -> None:
        """`/context clear`: remove the blocks of this channel's context conversation."""
        place = self.interaction_place(interaction)
        assert place is not None
        target = await self.service.context_target(place.key)
        removed = await self.service.clear_context(target)
        await interaction.response.send_message(
            f"Removed {removed} context block(s) from {_where(target)}.",
            allowed_mentions=NO_MENTIONS,
        )

    async def add_as_context(
        self, interaction: discord.Interaction, message: discord.Message
    ) -> None:
        """Message menu "Add as context": into this channel's context thread (or this one)."""
        place = self.interaction_place(interaction)
        assert place is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        target = await self.service.context_target(place.key)
        added, problems, usage = await self.store_message(target, message)
        lines = []
        if added and usage is not None:
            lines.append(
                f"Added {message.author.display_name}'s message ({len(added)} block(s)) to "
                f"{_where(target)}: {usage.total_tokens} of {usage.window} tokens in use."
            )
        lines.extend(problems)
        await interaction.edit_original_response(
            content="\n".join(lines)[: text.MESSAGE_LIMIT], allowed_mentions=NO_MENTIONS
        )

    # -- settings of a conversation -------------------------------------------------------------
    async def mode_command(self, interaction: discord.Interaction, mode: str | None) -> None:
        """`/mode`: show or set history / no-history for this channel or thread."""
        place = self.interaction_place(interaction)
        assert place is not None
        if mode is None:
            current = await self.service.get_mode(place.key)
            await self.reply_ephemeral(interaction, f"Mode here: **{current.value}**.")
            return
        chosen = await self.service.set_mode(place.key, mode)
        note = (
            "earlier questions and answers are sent with each new question"
            if chosen.value == "history"
            else "each question is answered on its own"
        )
        await interaction.response.send_message(
            f"Mode here is now **{chosen.value}**: {note}.", allowed_mentions=NO_MENTIONS
        )

    async def reset_command(self, interaction: discord.Interaction) -> None:
        """`/reset`: forget this channel's or thread's turns."""
        place = self.interaction_place(interaction)
        assert place is not None
        dropped = await self.service.reset(place.key)
        await interaction.response.send_message(
            f"Conversation reset: {dropped} earlier turn(s) forgotten.",
            allowed_mentions=NO_MENTIONS,
        )

    # -- chat messages ------------------------------------------------------------------------
    async def on_message(self, message: discord.Message) -> None:
        """Questions (mentions, DMs, chat threads) and posts in context threads."""
        if message.author.bot or message.webhook_id or self.user is None:
            return
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return
        # Messages of one channel are handled in the order they were posted (context blocks
        # keep that order); answering happens outside the lock.
        order = self._channel_order.setdefault(message.channel.id, asyncio.Lock())
        async with order:
            place = await self.message_place(message)
            question = await self._question_in(message, place)
        if question is not None:
            await self.answer_message(message, place, question)

    async def _question_in(self, message: discord.Message, place: Place) -> str | None:
        """Store context posts; return the question a message asks (None if it asks none)."""
        assert self.user is not None
        reason = self.access.refusal(place, _role_ids(message.author))
        if reason:
            if place.guild_id is None:
                await message.reply(reason, mention_author=False, allowed_mentions=NO_MENTIONS)
            return None
        mentioned = any(user.id == self.user.id for user in message.mentions)
        if place.guild_id is None or mentioned:
            return text.strip_mention(message.content, self.user.id)
        if not place.in_thread:
            return None
        if await self.service.context_title(place.key) is not None:
            await self.context_message(message, place.key)
            return None
        if await self.service.store.get_meta(place.key, CHAT_THREAD_META):
            return message.content.strip()
        return None

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        if interaction.type is discord.InteractionType.component:
            custom_id = str((interaction.data or {}).get("custom_id", ""))
            if not custom_id.startswith("airoboros:"):
                log.warning("ignoring a component this bot did not make: %r", custom_id[:100])


def _where(key: ConversationKey) -> str:
    if key.thread:
        return f"<#{key.thread}>"
    return "this direct message" if key.workspace == "dm" else f"<#{key.channel}>"


def _register_commands(bot: AiroborosBot) -> None:
    """The slash commands and the message menu; each delegates to a method of ``bot``."""
    tree = bot.tree

    @tree.command(name="ask", description="Ask the assistant; the answer streams in")
    @app_commands.describe(question="Your question", private="Only you see the answer")
    async def ask(interaction: discord.Interaction, question: str, private: bool = False) -> None:
        await bot.ask_command(interaction, question, private)

    context = app_commands.Group(name="context", description="Document conversations in threads")

    @context.command(name="new", description="Open a thread whose messages and files are context")
    @app_commands.describe(title="Name of the thread")
    async def context_new(
        interaction: discord.Interaction, title: app_commands.Range[str, 1, 100] | None = None
    ) -> None:
        await bot.context_new(interaction, title)

    @context.command(name="list", description="The context blocks and how much window they use")
    async def context_list(interaction: discord.Interaction) -> None:
        await bot.context_list(interaction)

    @context.command(name="clear", description="Remove the context blocks")
    async def context_clear(interaction: discord.Interaction) -> None:
        await bot.context_clear(interaction)

    tree.add_command(context)

    @tree.context_menu(name="Add as context")
    async def add_as_context(interaction: discord.Interaction, message: discord.Message) -> None:
        await bot.add_as_context(interaction, message)

    @tree.command(name="mode", description="Show or set whether earlier turns are sent along")
    @app_commands.describe(mode="history: remember the conversation; no-history: each on its own")
    @app_commands.choices(
        mode=[
            app_commands.Choice(name="history", value="history"),
            app_commands.Choice(name="no-history", value="no-history"),
        ]
    )
    async def mode(
        interaction: discord.Interaction, mode: app_commands.Choice[str] | None = None
    ) -> None:
        await bot.mode_command(interaction, mode.value if mode else None)

    @tree.command(name="reset", description="Forget this channel's or thread's conversation")
    async def reset(interaction: discord.Interaction) -> None:
        await bot.reset_command(interaction)

    @tree.command(name="stop", description="Stop your answer being written here")
    async def stop(interaction: discord.Interaction) -> None:
        await bot.stop_command(interaction)

    @tree.command(name="help", description="What I can do")
    async def help_(interaction: discord.Interaction) -> None:
        await bot.reply_ephemeral(interaction, text.HELP)


def build_discord_bot(
    service: ChatService, limiter: RateLimiter, settings: DiscordSettings
) -> AiroborosBot:
    """The bot, not yet logged in: `login()` syncs the commands, `connect()` opens the gateway."""
    return AiroborosBot(service, limiter, settings)


async def run_discord(runtime: Runtime) -> int:
    """Run the bot until it is stopped (SIGINT / SIGTERM); returns the exit code.

    2: no token set; 1: Discord refused the token or the Message Content intent is off.
    """
    settings = runtime.settings.discord
    token = settings.token.get_secret_value().strip() if settings.token else ""
    if not token:
        print(
            "airoboros-bot: AIROBOROS_DISCORD_TOKEN is not set: put your bot's token from the "
            "Discord developer portal in it (see README, Discord).",
            file=sys.stderr,
        )
        return 2
    assert runtime.redis is not None, "open the runtime first"
    limiter = RateLimiter(runtime.redis, runtime.keys.prefix, settings.rate_limit_per_minute)
    bot = build_discord_bot(runtime.service(), limiter, settings)
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, lambda: stopping.append(loop.create_task(bot.close())))
    try:
        async with bot:
            await bot.start(token)
    except discord.LoginFailure:
        print(
            "airoboros-bot: Discord refused the token in AIROBOROS_DISCORD_TOKEN: copy it again "
            "from the developer portal (Bot, Reset Token).",
            file=sys.stderr,
        )
        return 1
    except discord.PrivilegedIntentsRequired:
        print(
            "airoboros-bot: enable the Message Content intent for the bot in the Discord "
            "developer portal (Bot, Privileged Gateway Intents) and start again.",
            file=sys.stderr,
        )
        return 1
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        if stopping:
            await asyncio.gather(*stopping, return_exceptions=True)
    return 0
