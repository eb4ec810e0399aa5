"""The platform-neutral chat service on the real worker and Redis."""

from __future__ import annotations

import asyncio

import pytest

from airoboros_bot.bots.core.service import (
    Actor,
    Answer,
    ChatService,
    Delta,
    NotAllowed,
    Submitted,
)
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


# -- conversations in a team channel ------------------------------------------------------------
CHANNEL = ConversationKey("test", "w", "chan")


async def test_private_answers_stay_out_of_the_shared_history(service: ChatService) -> None:
    shared = CHANNEL.at("t1")
    await service.add_context(shared, "Blueberries are green.", {"url": "https://x.y/1"})
    await _ask(service, "shared question", shared)
    mine = shared.private_for("alice")
    events = await _ask(service, "my secret question", mine)
    assert events[-1].sources, "a private question reads the conversation's context blocks"
    assert [t.user for t in await service.store.history(shared)] == ["shared question"]
    assert [t.user for t in await service.store.history(mine)] == ["my secret question"]
    assert await service.store.history(shared.private_for("bob")) == []
    # Resetting the shared conversation leaves the private one alone, and the other way round.
    assert await service.reset(shared) == 1
    assert len(await service.store.history(mine)) == 1


async def test_a_new_conversation_has_an_owner_and_the_channels_default_mode(
    service: ChatService,
) -> None:
    await service.set_channel_mode(CHANNEL, "no-history", by=Actor("admin", is_admin=True))
    conversation = CHANNEL.at("t1")
    await service.begin(conversation, "alice")
    await service.begin(conversation, "bob")  # a repeated or late begin changes nothing
    assert await service.owner(conversation) == "alice"
    assert await service.get_mode(conversation) is Mode.NO_HISTORY
    await service.set_channel_mode(CHANNEL, "history")
    assert await service.get_mode(conversation) is Mode.NO_HISTORY, "started ones keep theirs"
    await service.begin(CHANNEL.at("t2"), "bob")
    assert await service.get_mode(CHANNEL.at("t2")) is Mode.HISTORY
    # Private conversations follow the channel's default unless switched.
    assert await service.get_mode(CHANNEL.private_for("carol")) is Mode.HISTORY
    # Begun before its channel had a default: it keeps the one it started with.
    other = ConversationKey("test", "w", "other").at("t1")
    await service.begin(other, "bob")
    await service.set_channel_mode(other.channel_key, "no-history")
    await service.begin(other, "bob")
    assert await service.get_mode(other) is Mode.HISTORY, "begun with the configured default"


async def test_only_the_owner_or_an_admin_may_reset_switch_or_clear(
    service: ChatService,
) -> None:
    conversation = CHANNEL.at("t1")
    await service.begin(conversation, "alice")
    await service.store.add_turn(conversation, Turn("q", "a"))
    await service.add_context(conversation, "a document")
    bob, alice, admin = Actor("bob"), Actor("alice"), Actor("root", is_admin=True)
    with pytest.raises(NotAllowed, match="the person who started this conversation"):
        await service.reset(conversation, by=bob)
    with pytest.raises(NotAllowed):
        await service.set_mode(conversation, "no-history", by=bob)
    with pytest.raises(NotAllowed):
        await service.clear_context(conversation, by=bob)
    with pytest.raises(NotAllowed, match="Only an admin"):
        await service.set_channel_mode(CHANNEL, "no-history", by=alice)
    assert len(await service.store.history(conversation)) == 1
    assert await service.store.count_blocks(conversation) == 1
    assert await service.get_mode(conversation) is Mode.HISTORY
    assert await service.channel_mode(CHANNEL) is Mode.HISTORY

    assert await service.set_mode(conversation, "no-history", by=alice) is Mode.NO_HISTORY
    assert await service.reset(conversation, by=alice) == 1
    assert await service.clear_context(conversation, by=admin) == 1
    # Nobody owns a conversation that was never begun: only admins manage it.
    with pytest.raises(NotAllowed, match="Only an admin"):
        await service.reset(CHANNEL.at("old"), by=alice)
    assert await service.reset(CHANNEL.at("old"), by=admin) == 0
    # A private conversation belongs to its person.
    assert await service.may_manage(CHANNEL.private_for("bob"), bob)
    assert not await service.may_manage(CHANNEL.private_for("bob"), alice)


async def test_replies_to_linked_messages_continue_their_conversation(
    service: ChatService,
) -> None:
    conversation = CHANNEL.at("m1")
    assert await service.conversation_of(CHANNEL.at("m2")) is None
    for answer_message in ("m1", "m2", "m3"):  # a reply chain: every answer of the bot
        await service.link(CHANNEL.at(answer_message), conversation)
    assert await service.conversation_of(CHANNEL.at("m3")) == conversation
    private = CHANNEL.private_for("alice")
    await service.link(CHANNEL.at("e1"), private)
    assert await service.conversation_of(CHANNEL.at("e1")) == private


async def test_context_placement_asks_outside_a_thread(service: ChatService) -> None:
    placement = await service.context_placement(CHANNEL)
    assert placement.target is None and placement.current is None
    await service.open_context(CHANNEL, CHANNEL.at("ctx"), "Specs", owner="alice")
    placement = await service.context_placement(CHANNEL)
    assert placement.target is None
    assert placement.current == CHANNEL.at("ctx") and placement.current_title == "Specs"
    assert await service.owner(CHANNEL.at("ctx")) == "alice"
    in_thread = await service.context_placement(CHANNEL.at("t9"))
    assert in_thread.target == CHANNEL.at("t9")
    assert (await service.context_placement(CHANNEL.at("t9").private_for("u"))).target == (
        CHANNEL.at("t9")
    ), "blocks always go to the shared conversation"


async def test_held_choices_are_taken_once_and_only_by_their_user(service: ChatService) -> None:
    token = await service.hold("alice", {"channel": "C1", "ts": "1.2"})
    assert await service.take_held("bob", token) is None
    assert await service.take_held("alice", token) == {"channel": "C1", "ts": "1.2"}
    assert await service.take_held("alice", token) is None
    expired = await service.hold("alice", {"x": 1}, ttl_s=1)
    await service.store.redis.pexpire(service.store.keys.pending_choice(f"alice:{expired}"), 1)
    await asyncio.sleep(0.05)
    assert await service.take_held("alice", expired) is None
