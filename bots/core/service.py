"""The platform-neutral chat service: ask, context blocks, modes, reset.

Every adapter (terminal, Discord, Slack) drives this one class and renders the events it yields;
nothing here knows about any platform.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

from airoboros_bot.config.settings import ChatSettings, EngineSettings
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

    def _job(self, prompt: str, max_new_tokens: int, temperature: float | None) -> Job:
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
    ) -> AsyncIterator[AnswerEvent]:
        """Ask a question in a conversation; yields events until the `Answer`.

        Raises `ChatError` (empty or oversized question) or `EngineError` (engine down, failed,
        timed out), each with a one-line ``user_message``. In history mode the finished turn is
        stored; a cancelled answer is not.
        """
        question = self._check_question(question)
        mode = await self.store.get_mode(key)
        history = await self.store.history(key) if mode is Mode.HISTORY else []
        blocks = await self.store.blocks(key)
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
        job = self._job(fitted.text, fitted.max_new_tokens, temperature)
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
                yield Answer(
                    chunk.text, reason, chunk.tokens, chunk.prompt_tokens, fitted.included_blocks
                )

    async def regenerate(
        self, key: ConversationKey, **options: float | int | None
    ) -> AsyncIterator[AnswerEvent]:
        """Answer the last question again (its stored turn is replaced)."""
        question = await self.store.get_meta(key, "last_question")
        if await self.store.get_mode(key) is Mode.HISTORY:
            turn = await self.store.pop_turn(key)
            question = turn.user if turn else question
        if not question:
            raise ChatError("Nothing to regenerate yet: ask a question first.")
        async for event in self.ask(key, question, **options):  # type: ignore[arg-type]
            yield event

    async def cancel(self, job_id: str) -> None:
        """Stop a running answer."""
        await self.engine.cancel(job_id)

    # -- modes --------------------------------------------------------------------------------
    async def set_mode(self, key: ConversationKey, mode: Mode | str) -> Mode:
        """Switch the conversation between history and no-history."""
        try:
            mode = Mode(mode)
        except ValueError:
            raise ChatError("Unknown mode: use `history` or `no-history`.") from None
        await self.store.set_mode(key, mode)
        return mode

    async def get_mode(self, key: ConversationKey) -> Mode:
        """The conversation's mode."""
        return await self.store.get_mode(key)

    async def reset(self, key: ConversationKey) -> int:
        """Forget the conversation's turns; returns how many were dropped."""
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
        self, channel: ConversationKey, thread: ConversationKey, title: str
    ) -> None:
        """Make ``thread`` a document conversation and the channel's current context target."""
        await self.store.set_meta(thread, "context_title", clean_text(title).strip() or "Context")
        await self.store.set_meta(channel, "context_thread", thread.thread)

    async def context_title(self, key: ConversationKey) -> str | None:
        """The title of a document conversation opened with `open_context` (else None)."""
        return await self.store.get_meta(key, "context_title")

    async def context_target(self, key: ConversationKey) -> ConversationKey:
        """Where "Add as context" puts a message: the thread itself, or the channel's current
        context thread, or else the channel's own conversation."""
        if key.thread:
            return key
        thread = await self.store.get_meta(key, "context_thread")
        return ConversationKey(key.platform, key.workspace, key.channel, thread) if thread else key

    async def clear_context(self, key: ConversationKey) -> int:
        """Remove all context blocks; returns how many there were."""
        return await self.store.clear_blocks(key)

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
