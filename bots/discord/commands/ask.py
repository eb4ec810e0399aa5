"""Questions and their answers on Discord: `/ask`, questions in chat messages, streaming into
a sink, the Stop button, and "Continue in thread".

Which conversation a question belongs to: a top-level `/ask` or mention in a channel starts a
new one, rooted at the bot's answer (a reply chain); a reply to any of the bot's answers
continues that answer's conversation, mention or not; a thread (and a DM) is one conversation;
a private `/ask` is the user's own conversation in that channel or thread, never shared. Every
answer message is linked to its conversation (`ChatService.link`)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import discord
from discord import app_commands
from discord.ext import commands

from airoboros_bot.bots.core.render import AnswerView, stream_answer
from airoboros_bot.bots.core.service import AnswerEvent, ChatService, Submitted
from airoboros_bot.bots.discord import text
from airoboros_bot.bots.discord.access import AccessRules, Place
from airoboros_bot.bots.discord.admission import Admission
from airoboros_bot.bots.discord.buttons import ANSWER_BUTTONS_COG
from airoboros_bot.bots.discord.places import (
    Places,
    command_place,
    interaction_place,
    interaction_refusal,
)
from airoboros_bot.bots.discord.replies import NO_MENTIONS, reply_ephemeral, reply_to
from airoboros_bot.bots.discord.running import RunningAnswer, RunningAnswers
from airoboros_bot.bots.discord.sinks import AnswerSink, InteractionSink, ReplySink
from airoboros_bot.config.errors import AiroborosError
from airoboros_bot.conversations.models import ConversationKey
from airoboros_bot.engine.client import EngineUnavailable

log = logging.getLogger(__name__)

EDIT_INTERVAL_S = 1.0
CHAT_THREAD_META = "discord_chat_thread"


@dataclass(frozen=True)
class Question:
    """A question asked in a chat message, and the conversation it continues (None: it starts
    a new one, rooted at the answer)."""

    text: str
    key: ConversationKey | None


def conversation_here(place: Place, user_id: int, *, private: bool) -> ConversationKey | None:
    """The conversation a question asked here with `/ask` belongs to: the user's private one,
    the thread's or the DM's, or None in a channel (each question there starts one)."""
    if private:
        return place.key.private_for(str(user_id))
    if place.in_thread or place.guild_id is None:
        return place.key
    return None


def _offers_thread(place: Place) -> bool:
    """Whether an answer here gets a "Continue in thread" button (server channels only)."""
    return place.guild_id is not None and not place.in_thread


class AskCommands(commands.Cog, name=ANSWER_BUTTONS_COG):
    """`/ask`, questions in chat messages, and the buttons under the answers."""

    def __init__(
        self,
        service: ChatService,
        admission: Admission,
        running: RunningAnswers,
        places: Places,
        access: AccessRules,
    ) -> None:
        self.service = service
        self.admission = admission
        self.running = running
        self.places = places
        self.access = access

    @app_commands.command(name="ask", description="Ask the assistant; the answer streams in")
    @app_commands.describe(question="Your question", private="Only you see the answer")
    async def ask(
        self, interaction: discord.Interaction, question: str, private: bool = False
    ) -> None:
        """`/ask`: check, defer, stream."""
        place = command_place(interaction)
        refusal = await self.admission.refusal(interaction.user.id)
        if refusal:
            await reply_ephemeral(interaction, refusal)
            return
        deferred = await interaction.response.defer(thinking=True, ephemeral=private)
        sink = InteractionSink(
            interaction,
            private=private,
            offer_thread=_offers_thread(place),
            first_id=deferred.message_id if deferred else None,
        )
        key = conversation_here(place, interaction.user.id, private=private)
        await self.answer(place, interaction.user.id, question, sink, key=key)

    async def answer_message(
        self, message: discord.Message, place: Place, question: Question
    ) -> None:
        """A question asked in a chat message (mention, reply, DM or chat thread)."""
        if not question.text:
            await reply_to(message, "Ask me something after the mention.")
            return
        refusal = await self.admission.refusal(message.author.id)
        if refusal:
            await reply_to(message, refusal)
            return
        sink = ReplySink(message, offer_thread=_offers_thread(place))
        await self.answer(place, message.author.id, question.text, sink, key=question.key)

    async def replied_conversation(
        self, message: discord.Message, place: Place
    ) -> ConversationKey | None:
        """The conversation a reply to one of the bot's answers continues (None: the message
        replies to nothing the bot wrote)."""
        reference = message.reference
        if (
            reference is None
            or reference.message_id is None
            or reference.type is not discord.MessageReferenceType.reply
            or reference.channel_id != message.channel.id
        ):
            return None
        return await self.service.conversation_of(place.key.at(str(reference.message_id)))

    async def answer(
        self,
        place: Place,
        user_id: int,
        question: str,
        sink: AnswerSink,
        *,
        key: ConversationKey | None,
    ) -> None:
        """Ask the service in conversation ``key`` (None: a new one, rooted at the answer) and
        stream the answer into ``sink``; failures replace it."""
        running = self.running.start(place.key, user_id)
        view = AnswerView(limit=text.MESSAGE_LIMIT, format_sources=text.format_sources)
        sink.running, sink.view = running, view
        job_id = self.service.new_job_id()
        try:
            await self.running.queued(running, job_id)  # Stop works from the first moment
            first = await sink.open()
            key = await self._conversation(place, key, user_id, first)
            asked = self.service.ask(key, question, job_id=job_id)
            async with contextlib.aclosing(asked) as events:
                tracked = self._track(events, running)
                await stream_answer(tracked, sink, view, interval_s=EDIT_INTERVAL_S)
            await sink.settle()
            if not key.user:
                for page in sink.page_ids():
                    await self.service.link(place.key.at(str(page)), key)
        except EngineUnavailable as exc:
            message = await self.admission.alerts.engine_offline(exc.user_message)
            with contextlib.suppress(discord.HTTPException):
                await sink.fail(message)
        except AiroborosError as exc:
            log.info("answer failed: %s", exc.user_message)
            with contextlib.suppress(discord.HTTPException):
                await sink.fail(exc.user_message)
        except discord.HTTPException as exc:
            log.warning("Discord refused an update of an answer: %s %s", exc.status, exc.text)
        finally:
            self.running.finish(running)

    async def _conversation(
        self, place: Place, key: ConversationKey | None, user_id: int, first: int | None
    ) -> ConversationKey:
        """The conversation to ask in, started (owner, channel mode) and linked to the
        answer's first message; ``key`` None starts one rooted at that message."""
        if key is None:
            assert first is not None, "a new conversation needs its answer's message"
            key = place.key.at(str(first))
        if key.user:
            return key  # private: ephemeral answers cannot be replied to
        await self.service.begin(key, str(user_id))
        if first is not None:
            await self.service.link(place.key.at(str(first)), key)
        return key

    async def _track(
        self, events: AsyncIterator[AnswerEvent], running: RunningAnswer
    ) -> AsyncIterator[AnswerEvent]:
        """Pass events on, noting the job id so the answer can be stopped (even by a /stop
        that came before the job was queued)."""
        async for event in events:
            if isinstance(event, Submitted):
                await self.running.queued(running, event.job_id)
            yield event

    # -- the buttons under an answer (`bots.discord.buttons`) ------------------------------------
    async def stop_button(
        self, interaction: discord.Interaction, job_id: str, owner_id: int
    ) -> None:
        """The Stop button under an answer."""
        if interaction.user.id != owner_id and not interaction.permissions.manage_messages:
            await reply_ephemeral(interaction, text.STOP_NOT_YOURS)
            return
        answer = self.running.by_job(job_id)
        if answer is not None:
            answer.stopping = True
            await interaction.response.defer()
        else:  # written by an earlier run of the bot: just remove the stale button
            await interaction.response.edit_message(view=None, allowed_mentions=NO_MENTIONS)
        await self.running.cancel_job(job_id)

    async def continue_in_thread(self, interaction: discord.Interaction) -> None:
        """The "Continue in thread" button: a thread on the answer, carrying the conversation."""
        place = interaction_place(interaction)
        reason = interaction_refusal(interaction, self.access)
        if place is None or reason or interaction.message is None or place.in_thread:
            await reply_ephemeral(interaction, reason or "This can't be continued in a thread.")
            return
        await interaction.response.defer()
        name = text.thread_name(f"{interaction.user.display_name}'s conversation")
        try:
            thread = await interaction.message.create_thread(name=name, auto_archive_duration=1440)
        except discord.HTTPException as exc:
            await reply_ephemeral(interaction, f"I could not open a thread here ({exc.text}).")
            return
        thread_key = Place(place.guild_id, thread.id, place.channel_id).key
        source = await self.service.conversation_of(place.key.at(str(interaction.message.id)))
        await self.service.begin(thread_key, str(interaction.user.id))
        if source is not None and source != thread_key:  # a later answer of a reply chain
            store = self.service.store
            for turn in await store.history(source):
                await store.add_turn(thread_key, turn)
            await self.service.set_mode(thread_key, await self.service.get_mode(source))
        await self.service.store.set_meta(thread_key, CHAT_THREAD_META, str(interaction.user.id))
        self.places.remember_thread(thread)
        await interaction.edit_original_response(view=None, allowed_mentions=NO_MENTIONS)
        await thread.send(text.CHAT_THREAD_WELCOME, allowed_mentions=NO_MENTIONS)

    async def is_chat_thread(self, key: ConversationKey) -> bool:
        """Whether ``key`` is a thread opened with "Continue in thread" (replies are questions)."""
        return bool(await self.service.store.get_meta(key, CHAT_THREAD_META))
