"""The platform-neutral chat service on the real worker and Redis."""

from __future__ import annotations

import pytest

from airoboros_bot.bots.core.service import Answer, ChatService, Delta, Submitted
from airoboros_bot.conversations.errors import ChatError, EmptyPrompt
from airoboros_bot.conversations.models import ConversationKey, Mode, Turn

KEY = ConversationKey("test", "w", "c")


async def _ask(service: ChatService, question: str, key: ConversationKey = KEY) -> list:
    return [event async for event in service.ask(key, question)]


async def test_ask_streams_and_stores_the_turn(service: ChatService) -> None:
    events = await _ask(service, "What color are blueberries?")
    assert isinstance(events[0], Submitted)
    answer = events[-1]
    assert isinstance(answer, Answer)
    assert "".join(e.text for e in events if isinstance(e, Delta)).strip() == answer.text
    assert await service.store.history(KEY) == [Turn("What color are blueberries?", answer.text)]


async def test_history_mode_sends_earlier_turns(service: ChatService) -> None:
    await _ask(service, "first question")
    events = await _ask(service, "second question")
    with_history = events[0].prompt_tokens
    await service.set_mode(KEY, "no-history")
    events = await _ask(service, "second question")
    assert events[0].prompt_tokens < with_history
    assert len(await service.store.history(KEY)) == 2, "no-history mode stores nothing"


async def test_empty_and_oversized_questions_are_refused(service: ChatService) -> None:
    with pytest.raises(EmptyPrompt):
        await _ask(service, "   \n ")
    with pytest.raises(ChatError, match="Question too long"):
        await _ask(service, "x" * (service.chat.max_prompt_chars + 1))
    assert await service.store.history(KEY) == []


async def test_regenerate_replaces_the_last_turn(service: ChatService) -> None:
    with pytest.raises(ChatError, match="Nothing to regenerate"):
        [e async for e in service.regenerate(KEY)]
    await _ask(service, "q1")
    events = [e async for e in service.regenerate(KEY)]
    assert isinstance(events[-1], Answer)
    history = await service.store.history(KEY)
    assert [t.user for t in history] == ["q1"]


async def test_context_blocks_are_used_and_cited(service: ChatService) -> None:
    key = ConversationKey("test", "w", "c", "thread")
    text = "In a shocking turn of events, blueberries are now green."
    block, usage = await service.add_context(key, text, {"url": "https://web.site/123"})
    assert usage.blocks == (block,) and usage.total_tokens > 10
    events = await _ask(service, "What color are blueberries? Source?", key)
    assert events[-1].sources == (block,)
    assert events[0].prompt_tokens > usage.total_tokens


async def test_oversized_context_is_refused_and_nothing_stored(service: ChatService) -> None:
    with pytest.raises(ChatError, match="Context too large"):
        await service.add_context(KEY, "word " * 3000, {"file": "big.txt"})
    with pytest.raises(ChatError, match="Empty context"):
        await service.add_context(KEY, "  ")
    assert (await service.context_usage(KEY)).blocks == ()


async def test_unknown_mode_is_refused(service: ChatService) -> None:
    with pytest.raises(ChatError, match="Unknown mode"):
        await service.set_mode(KEY, "sometimes")
    assert await service.get_mode(KEY) is Mode.HISTORY


async def test_context_target_follows_the_channels_context_thread(service: ChatService) -> None:
    channel = ConversationKey("test", "w", "chan")
    thread = ConversationKey("test", "w", "chan", "t1")
    assert await service.context_target(channel) == channel
    await service.open_context(channel, thread, "Specs")
    assert await service.context_target(channel) == thread
    other = ConversationKey("test", "w", "chan", "t2")
    assert (await service.context_target(other)).thread == "t2"
    assert await service.context_title(thread) == "Specs"
    assert await service.context_title(channel) is None


async def test_a_question_too_long_for_the_window_says_the_token_counts(
    service: ChatService,
) -> None:
    from airoboros_bot.conversations.errors import PromptTooLong

    question = " ".join(f"zq{i}x" for i in range(2500))  # under the character limit
    with pytest.raises(PromptTooLong) as caught:
        await _ask(service, question)
    message = caught.value.user_message
    assert "2048" in message and "tokens" in message
    assert await service.store.history(KEY) == []
