"""The platform-neutral chat service: ask, context blocks, modes, reset.

Every adapter (terminal, Discord, Slack) drives this one class and renders the events it yields;
nothing here knows about any platform.

Conversations in a team channel: a conversation is a thread or a reply chain, keyed by its
`ConversationKey` (the thread, or the root message of the chain). `begin` gives a new one its
owner and the channel's default mode; `link` / `conversation_of` map the bot's answers (or a
thread) to the conversation that replies continue. A key with a ``user``
(`ConversationKey.private_for`) is that person's private conversation: it reads the shared
conversation's context blocks, and its turns never enter the shared history. Destructive
commands take ``by=Actor(...)``: only the owner or an admin may then go on (`NotAllowed`).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

from airoboros_bot.config.settings import ChatSettings, EngineSettings
from airoboros_bot.conversations.citations import cited_blocks
from airoboros_bot.conversations.errors import ChatError, EmptyPrompt
from airoboros_bot.conversations.models import ContextBlock, ConversationKey, Mode, Turn
from airoboros_bot.conversations.prompt import closed_context, fit_prompt
from airoboros_bot.conversations.store import ConversationStore
from airoboros_bot.conversations.text import clean_text
from airoboros_bot.engine.client import EngineClient, Queued
from airoboros_bot.engine.protocol import Job, Sampling

STOP_STRINGS = ("USER:",)
MAX_CHARS_PER_TOKEN = 16
"""A context block longer than this many characters per token of the window is refused before
its tokens are counted."""


@dataclass(frozen=True)
class Submitted:
    """The question is on the queue as job ``job_id`` (use it to cancel)."""

    job_id: str
    prompt_tokens: int
    dropped_turns: int
    omitted_blocks: tuple[ContextBlock, ...]


@dataclass(frozen=True)
class Delta:
    """More answer text to append."""

    text: str


@dataclass(frozen=True)
class Restart:
    """Discard the answer text so far: the engine is running the question again."""


@dataclass(frozen=True)
class Answer:
    """The complete answer."""

    text: str
    finish_reason: str
    tokens: int
    prompt_tokens: int
    sources: tuple[ContextBlock, ...]


AnswerEvent = Submitted | Queued | Delta | Restart | Answer


@dataclass(frozen=True)
class Actor:
    """Who runs a command, and whether the platform says they are an admin (Discord: Manage
    Messages; Slack: the admin list or a workspace admin)."""

    user: str
    is_admin: bool = False


class NotAllowed(ChatError):
    """Only the conversation's owner (or an admin) may do that."""

    def __init__(self, owner: str | None, what: str = "do that") -> None:
        who = "an admin" if not owner else "the person who started this conversation or an admin"
        super().__init__(f"Only {who} can {what}.")
        self.owner = owner


@dataclass(frozen=True)
class ContextPlacement:
    """Where a context block from some message may go.

    ``target`` is set when the message is in a thread conversation: the block goes there
    without asking. Otherwise the user is asked (privately): the channel's ``current`` context
    thread (when there is one, titled ``current_title``), a new context thread, or cancel.
    """

    target: ConversationKey | None
    current: ConversationKey | None = None
    current_title: str | None = None


@dataclass(frozen=True)
class ContextUsage:
    """The context blocks of a conversation and how much of the window they take."""

    blocks: tuple[ContextBlock, ...]
    block_tokens: tuple[int, ...]
    window: int

    @property
    def total_tokens(self) -> int:
        """Tokens all blocks take together."""
        return sum(self.block_tokens)


class ChatService:
    """What users can do in any chat, whatever the platform."""

    def __init__(
        self,
        store: ConversationStore,
        engine: EngineClient,
        count_tokens: Callable[[str], int],
        chat: ChatSettings,
        engine_settings: EngineSettings,
    ) -> None:
        self.store = store
        self.engine = engine
        self._count_tokens = count_tokens
        self.chat = chat
        self.engine_settings = engine_settings

    async def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in the model's tokenizer (off the event loop)."""
        return await asyncio.to_thread(self._count_tokens, text)

    def new_job_id(self) -> str:
        """A fresh job id, for an adapter that shows a Stop button before asking (`ask`'s
        ``job_id``): a cancel sent before the job is queued still stops it. The engine client
        makes it, so the answer is read with all others (one slot on a Redis Cluster)."""
        return self.engine.new_job_id()

    def _job(
        self,
        prompt: str,
        max_new_tokens: int,
        temperature: float | None,
        job_id: str | None = None,
    ) -> Job:
        """A generation job with the configured sampling, stop strings and deadline."""
        settings = self.engine_settings
        sampling = Sampling(
            temperature=settings.temperature if temperature is None else temperature,
            top_k=settings.top_k,
            top_p=settings.top_p,
            repetition_penalty=settings.repetition_penalty,
        )
        return Job(
            prompt=prompt,
            max_new_tokens=max_new_tokens,
            sampling=sampling,
            stop=STOP_STRINGS,
            deadline=time.time() + settings.job_timeout_s,
            id=job_id or self.engine.new_job_id(),
        )

    def _check_question(self, question: str) -> str:
        question = clean_text(question).strip()
        if not question:
            raise EmptyPrompt()
        if len(question) > self.chat.max_prompt_chars:
            raise ChatError(
                f"Question too long: {len(question)} characters, "
                f"the limit is {self.chat.max_prompt_chars}. Attach long text as context instead."
            )
        return question

    async def ask(
        self,
        key: ConversationKey,
        question: str,
        *,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        job_id: str | None = None,
    ) -> AsyncIterator[AnswerEvent]:
        """Ask a question in a conversation; yields events until the `Answer`.

        Raises `ChatError` (empty or oversized question) or `EngineError` (engine down, failed,
        timed out), each with a one-line ``user_message``. In history mode the finished turn is
        stored under ``key`` (a private key keeps it private); a cancelled answer is not. The
        answer's ``sources`` are the context blocks it cites (all it was given when it cites
        none).
        """
        question = self._check_question(question)
        mode = await self.get_mode(key)
        history = await self.store.history(key) if mode is Mode.HISTORY else []
        blocks = await self.store.blocks(key.shared)
        settings = self.engine_settings
        fitted = await asyncio.to_thread(
            lambda: fit_prompt(
                system=self.chat.system_prompt,
                history=history,
                question=question,
                blocks=blocks,
                count_tokens=self._count_tokens,
                context_length=settings.context_length,
                max_new_tokens=max_new_tokens or settings.max_new_tokens,
            )
        )
        await self.store.set_meta(key, "last_question", question)
        job = self._job(fitted.text, fitted.max_new_tokens, temperature, job_id)
        handle = await self.engine.submit(job)
        yield Submitted(job.id, fitted.prompt_tokens, fitted.dropped_turns, fitted.omitted_blocks)
        async for chunk in self.engine.stream(handle, deadline=job.deadline + 5):
            if isinstance(chunk, Queued):
                yield chunk
            elif chunk.kind == "token":
                yield Delta(chunk.text)
            elif chunk.kind == "reset":
                yield Restart()
            elif chunk.kind == "done":
                reason = chunk.finish_reason or "eos"
                if mode is Mode.HISTORY and reason != "cancelled":
                    await self.store.add_turn(key, Turn(question, chunk.text, id=job.id))
                sources = cited_blocks(chunk.text, fitted.included_blocks)
                yield Answer(chunk.text, reason, chunk.tokens, chunk.prompt_tokens, sources)

    async def regenerate(
        self, key: ConversationKey, **options: float | int | None
    ) -> AsyncIterator[AnswerEvent]:
        """Answer the last question again (its stored turn is replaced)."""
        question = await self.store.get_meta(key, "last_question")
        if await self.get_mode(key) is Mode.HISTORY:
            turn = await self.store.pop_turn(key)
            question = turn.user if turn else question
        if not question:
            raise ChatError("Nothing to regenerate yet: ask a question first.")
        async for event in self.ask(key, question, **options):  # type: ignore[arg-type]
            yield event

    async def cancel(self, job_id: str) -> None:
        """Stop a running answer."""
        await self.engine.cancel(job_id)

    # -- conversations: owner, links, permissions ------------------------------------------------
    async def begin(self, key: ConversationKey, owner: str) -> None:
        """Start conversation ``key`` (a thread or a reply chain's root) for ``owner``.

        Its owner is kept (the first one wins: safe to repeat) and its mode is the channel's
        default at this moment (`set_channel_mode`, else the configured default), unless it has
        one already: a later change of the channel's default does not reach it, even through a
        repeated `begin`.
        """
        if owner:
            await self.store.set_meta_once(key, "owner", owner)
        if key != key.channel_key:
            mode = await self.store.stored_mode(key.channel_key) or self.store.default_mode
            await self.store.set_meta_once(key, "mode", mode.value)

    async def owner(self, key: ConversationKey) -> str | None:
        """Who started the conversation (None when nobody is recorded)."""
        if key.user:
            return key.user
        return await self.store.get_meta(key, "owner")

    async def link(self, ref: ConversationKey, conversation: ConversationKey) -> None:
        """Make replies under ``ref`` continue ``conversation``: ``ref`` is a thread, or one of
        the bot's answer messages (Discord reply chains: ``key.at(message_id)``)."""
        await self.store.link(ref, conversation)

    async def conversation_of(self, ref: ConversationKey) -> ConversationKey | None:
        """The conversation a reply under ``ref`` continues (None: the bot never answered
        there, so the reply is not for it)."""
        return await self.store.linked(ref)

    async def may_manage(self, key: ConversationKey, by: Actor) -> bool:
        """Whether ``by`` may reset, switch or clear conversation ``key``: its owner or an
        admin (a private conversation: its person)."""
        if by.is_admin:
            return True
        owner = await self.owner(key)
        return owner is not None and owner == by.user

    async def check_manager(
        self, key: ConversationKey, by: Actor | None, what: str = "do that"
    ) -> None:
        """Raise `NotAllowed` unless ``by`` may manage ``key`` (``None``: not checked)."""
        if by is not None and not await self.may_manage(key, by):
            raise NotAllowed(await self.owner(key), what)

    # -- modes --------------------------------------------------------------------------------
    @staticmethod
    def _mode(mode: Mode | str) -> Mode:
        try:
            return Mode(mode)
        except ValueError:
            raise ChatError("Unknown mode: use `history` or `no-history`.") from None

    async def set_mode(
        self, key: ConversationKey, mode: Mode | str, *, by: Actor | None = None
    ) -> Mode:
        """Switch the conversation between history and no-history (``by``: owner or admin)."""
        mode = self._mode(mode)
        await self.check_manager(key, by, "change this conversation's mode")
        await self.store.set_mode(key, mode)
        return mode

    async def get_mode(self, key: ConversationKey) -> Mode:
        """The conversation's mode: its own, else (private ones) the channel's default, else
        the configured default."""
        mode = await self.store.stored_mode(key)
        if mode is None and key.user:
            mode = await self.store.stored_mode(key.channel_key)
        return mode or self.store.default_mode

    async def set_channel_mode(
        self, channel: ConversationKey, mode: Mode | str, *, by: Actor | None = None
    ) -> Mode:
        """The mode of conversations started in ``channel`` from now on (``by``: admins only;
        conversations already started keep theirs)."""
        mode = self._mode(mode)
        if by is not None and not by.is_admin:
            raise NotAllowed(None, "change this channel's default mode")
        await self.store.set_channel_mode(channel, mode)
        return mode

    async def channel_mode(self, channel: ConversationKey) -> Mode:
        """The mode new conversations in ``channel`` get."""
        return await self.store.stored_mode(channel.channel_key) or self.store.default_mode

    async def reset(self, key: ConversationKey, *, by: Actor | None = None) -> int:
        """Forget the conversation's turns; returns how many were dropped (``by``: owner or
        admin)."""
        await self.check_manager(key, by, "reset this conversation")
        return await self.store.reset(key)

    # -- context blocks -----------------------------------------------------------------------
    async def add_context(
        self, key: ConversationKey, text: str, metadata: Mapping[str, str] | None = None
    ) -> tuple[ContextBlock, ContextUsage]:
        """Attach a document to the conversation as a context block.

        Refuses (ChatError) empty text, a block too large for the model's window on its own and
        more blocks than the configured maximum; nothing is stored then.
        """
        text = clean_text(text).strip()
        if not text:
            raise ChatError("Empty context: paste some text or attach a .txt / .md file.")
        window = self.engine_settings.context_length
        if len(text) > MAX_CHARS_PER_TOKEN * window:  # too large without counting its tokens
            raise ChatError(
                f"Context too large: {len(text)} characters, far more than the model's "
                f"{window}-token window holds. Split the document into smaller parts."
            )
        if await self.store.count_blocks(key) >= self.chat.max_context_blocks:
            raise ChatError(
                f"This conversation already has {self.chat.max_context_blocks} context blocks: "
                "clear them before adding more."
            )
        block = ContextBlock(
            text=text,
            metadata={clean_text(k): clean_text(v) for k, v in (metadata or {}).items() if v},
        )
        tokens = await self.count_tokens(closed_context([block], ""))
        if tokens > window // 2:
            raise ChatError(
                f"Context too large: {tokens} tokens, but a block may use at most {window // 2} "
                f"of the model's {window}-token window. Split the document into smaller parts."
            )
        await self.store.add_block(key, block)
        return block, await self.context_usage(key)

    async def context_usage(self, key: ConversationKey) -> ContextUsage:
        """The conversation's context blocks and their token counts."""
        blocks = tuple(await self.store.blocks(key))
        counts = [await self.count_tokens(closed_context([b], "")) for b in blocks]
        return ContextUsage(blocks, tuple(counts), self.engine_settings.context_length)

    async def open_context(
        self, channel: ConversationKey, thread: ConversationKey, title: str, owner: str = ""
    ) -> None:
        """Make ``thread`` a document conversation (started by ``owner``) and the channel's
        current context thread."""
        await self.begin(thread, owner)
        await self.store.set_meta(thread, "context_title", clean_text(title).strip() or "Context")
        await self.store.set_meta(channel.channel_key, "context_thread", thread.thread)

    async def context_title(self, key: ConversationKey) -> str | None:
        """The title of a document conversation opened with `open_context` (else None)."""
        return await self.store.get_meta(key, "context_title")

    async def context_target(self, key: ConversationKey) -> ConversationKey:
        """The thread itself, or the channel's current context thread, or else the channel's
        own conversation (what `/context list` and `/context clear` act on).

        "Add as context" should use `context_placement`, which never falls back to the
        channel's conversation silently.
        """
        if key.thread:
            return key
        current = await self.current_context(key)
        return current or key

    async def current_context(self, key: ConversationKey) -> ConversationKey | None:
        """The channel's current context thread (the last one opened), if any."""
        thread = await self.store.get_meta(key.channel_key, "context_thread")
        return key.at(thread) if thread else None

    async def context_placement(self, source: ConversationKey) -> ContextPlacement:
        """Where a block from a message in ``source`` goes: a thread conversation takes it
        directly; outside one the user must choose (see `ContextPlacement`)."""
        if source.thread:
            return ContextPlacement(target=source.shared)
        current = await self.current_context(source)
        title = await self.context_title(current) if current else None
        return ContextPlacement(target=None, current=current, current_title=title)

    async def clear_context(self, key: ConversationKey, *, by: Actor | None = None) -> int:
        """Remove all context blocks; returns how many there were (``by``: owner or admin)."""
        await self.check_manager(key, by, "clear this conversation's context")
        return await self.store.clear_blocks(key)

    # -- questions put to a user ----------------------------------------------------------------
    async def hold(self, user: str, data: Mapping[str, object], ttl_s: int = 900) -> str:
        """Keep ``data`` while ``user`` is asked something (e.g. where a block goes); returns
        the token their answer carries back to `take_held`."""
        token = secrets.token_urlsafe(12)
        name = self.store.keys.pending_choice(f"{user}:{token}")
        await self.store.redis.set(name, json.dumps(dict(data)), ex=ttl_s)
        return token

    async def take_held(self, user: str, token: str) -> dict[str, object] | None:
        """The data held for ``user`` under ``token``, once (None: expired, used, or not
        theirs)."""
        raw = await self.store.redis.getdel(self.store.keys.pending_choice(f"{user}:{token}"))
        return None if raw is None else dict(json.loads(raw))

    # -- single prompts (games) -----------------------------------------------------------------
    async def complete(
        self, instruction: str, *, max_new_tokens: int = 256, temperature: float = 0.7
    ) -> str:
        """The model's answer to one instruction, alone: no history, no context blocks.

        The prompt is the single-turn template with the system prompt (`chat_prompt` with no
        history, fitted to the window). Waits for the whole answer and returns its text; raises
        `ChatError` (empty or oversized instruction) or `EngineError` like `ask`.
        """
        instruction = self._check_question(instruction)
        settings = self.engine_settings
        fitted = await asyncio.to_thread(
            lambda: fit_prompt(
                system=self.chat.system_prompt,
                history=(),
                question=instruction,
                blocks=(),
                count_tokens=self._count_tokens,
                context_length=settings.context_length,
                max_new_tokens=max_new_tokens,
            )
        )
        job = self._job(fitted.text, fitted.max_new_tokens, temperature)
        handle = await self.engine.submit(job)
        async for chunk in self.engine.stream(handle, deadline=job.deadline + 5):
            if not isinstance(chunk, Queued) and chunk.kind == "done":
                return chunk.text
        raise ChatError("The engine ended the answer without a result: ask again.")
