"""Conversations in a busy Discord channel, end to end (real discord.py client, fake REST
server, real worker and Valkey): a top-level question starts a conversation of its own, a reply
to one of the bot's answers continues it without a mention, private answers stay private, and
only a conversation's owner (or someone who may manage messages) resets or switches it.

The worker's model is a `SpyModel`: the tiny demo model, noting every prompt, so the tests can
say whose questions went into which prompt.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from airoboros_bot.bots.core.service import ChatService
from airoboros_bot.bots.discord.client import AiroborosBot
from airoboros_bot.conversations.models import Mode, Turn
from tests.bots import discord_fixtures
from tests.bots.discord_fixtures import (
    BotStarter,
    Spied,
    callback,
    ephemeral_reply,
    key,
    replies_to,
    running_bot,
    written_answer,
)
from tests.fakes.discord import EPHEMERAL, FakeDiscord, World, assert_no_mentions, inject

fake, world, spied, start_bot = (
    discord_fixtures.fake,
    discord_fixtures.world,
    discord_fixtures.spied,
    discord_fixtures.start_bot,
)


async def answered(fake: FakeDiscord, bot: AiroborosBot, message: dict) -> dict:
    """Wait for the bot's (complete) answer to a chat message; return it."""
    [reply] = await fake.wait_for(lambda: replies_to(fake, message), 20, "a reply")
    assert await bot.running.wait_idle(20)
    return fake.messages[reply["id"]]


def ask(
    fake: FakeDiscord, bot: AiroborosBot, channel: dict, user: dict, question: str, **options: bool
) -> dict:
    payload = fake.slash("ask", channel, user, {"question": question, **options})
    inject(bot, "INTERACTION_CREATE", payload)
    return payload


async def test_a_private_ask_never_enters_shared_history(
    fake: FakeDiscord, world: World, spied: Spied, redis: aioredis.Redis, key_prefix: str
) -> None:
    service = spied.service
    thread = fake.thread(world.general, "design", owner_id=world.alice["id"])
    async with running_bot(fake, world, service, redis, key_prefix) as bot:
        mine = ask(fake, bot, world.general, world.alice, "my zebra secret", private=True)
        await written_answer(fake, bot, mine)
        in_thread = ask(fake, bot, thread, world.alice, "my walrus secret", private=True)
        await written_answer(fake, bot, in_thread)
        public = ask(fake, bot, world.general, world.bob, "a public question")
        bobs = await written_answer(fake, bot, public)
        public_in_thread = ask(fake, bot, thread, world.bob, "a thread question")
        await written_answer(fake, bot, public_in_thread)
        reset = fake.slash("reset", thread, world.bob)
        inject(bot, "INTERACTION_CREATE", reset)
        await fake.wait_for(lambda: fake.interactions[reset["token"]].acknowledged)

    general, thread_key = key(world, world.general), key(world, world.general, thread["id"])
    alice = world.alice["id"]
    assert [t.user for t in await service.store.history(general.private_for(alice))] == [
        "my zebra secret"
    ]
    assert [t.user for t in await service.store.history(thread_key.private_for(alice))] == [
        "my walrus secret"
    ]
    assert (
        fake.original(mine)["flags"] & EPHEMERAL and fake.original(in_thread)["flags"] & EPHEMERAL
    )
    for payload in (mine, in_thread):
        private_answer = general.at(fake.original(payload)["id"])
        assert await service.conversation_of(private_answer) is None, "nothing to reply to"
    assert [t.user for t in await service.store.history(general.at(bobs["id"]))] == [
        "a public question"
    ]
    # The issue: "/reset said 1 earlier turn(s) forgotten" after one private question.
    assert "1 earlier turn(s) forgotten" in callback(fake, reset)["data"]["content"], "bob's own"
    for question in ("a public question", "a thread question"):
        prompt = spied.model.prompt_with(question)
        assert "zebra" not in prompt and "walrus" not in prompt, "no one else reads them"
    assert "zebra" not in spied.model.prompt_with("my walrus secret"), "one per place"


async def test_each_top_level_question_starts_its_own_conversation(
    fake: FakeDiscord, world: World, spied: Spied, redis: aioredis.Redis, key_prefix: str
) -> None:
    service = spied.service
    mention = f"<@{fake.bot_user['id']}>"
    async with running_bot(fake, world, service, redis, key_prefix) as bot:
        alices = await written_answer(
            fake, bot, ask(fake, bot, world.general, world.alice, "alpha question")
        )
        bobs = await written_answer(
            fake, bot, ask(fake, bot, world.general, world.bob, "bravo question")
        )
        post = fake.message_create(
            world.general, world.alice, f"{mention} charlie question", mentions=[fake.bot_user]
        )
        inject(bot, "MESSAGE_CREATE", post)
        third = await answered(fake, bot, post)

    general = key(world, world.general)
    for answer, question, owner in (
        (alices, "alpha question", world.alice),
        (bobs, "bravo question", world.bob),
        (third, "charlie question", world.alice),
    ):
        conversation = general.at(answer["id"])  # rooted at the bot's answer
        assert [t.user for t in await service.store.history(conversation)] == [question]
        assert await service.owner(conversation) == owner["id"]
        assert await service.conversation_of(conversation) == conversation
    assert "alpha" not in spied.model.prompt_with("bravo question"), "not with A's history"
    charlie = spied.model.prompt_with("charlie question")
    assert "alpha" not in charlie and "bravo" not in charlie
    assert await service.store.history(general) == [], "the channel has no conversation"


async def test_replying_to_an_answer_continues_its_conversation_without_a_mention(
    fake: FakeDiscord, world: World, spied: Spied, redis: aioredis.Redis, key_prefix: str
) -> None:
    service = spied.service
    bot_user = fake.bot_user
    async with running_bot(fake, world, service, redis, key_prefix) as bot:
        first = await written_answer(
            fake, bot, ask(fake, bot, world.general, world.alice, "first kiwi question")
        )
        # Bob replies to the answer with the ping off: no mention of the bot at all.
        follow_up = fake.message_create(world.general, world.bob, "and the mango?", reply_to=first)
        assert follow_up["mentions"] == [] and follow_up["type"] == 19
        inject(bot, "MESSAGE_CREATE", follow_up)
        second = await answered(fake, bot, follow_up)
        # Alice replies to that answer with the ping on (the bot is mentioned as its author).
        third_q = fake.message_create(
            world.general, world.alice, "and papaya?", reply_to=second, ping=True
        )
        assert third_q["mentions"] == [bot_user]
        inject(bot, "MESSAGE_CREATE", third_q)
        third = await answered(fake, bot, third_q)
        # Replies to anyone else's message and plain posts are not for the bot.
        elsewhere = [
            fake.message_create(world.general, world.alice, "not for you", reply_to=follow_up),
            fake.message_create(world.general, world.bob, "just chatting"),
        ]
        for message in elsewhere:
            inject(bot, "MESSAGE_CREATE", message)
        later = fake.message_create(
            world.general, world.bob, f"<@{bot_user['id']}> new topic", mentions=[bot_user]
        )
        inject(bot, "MESSAGE_CREATE", later)  # handled after the two before it
        await answered(fake, bot, later)
        # "Continue in thread" on a later answer of the chain carries the whole conversation.
        press = fake.button_press(second["id"], "airoboros:thread", world.bob)
        inject(bot, "INTERACTION_CREATE", press)
        await fake.wait_for(lambda: fake.calls("POST", rf"/channels/{second['id']}/messages"))
        in_thread = fake.message_create(fake.channels[second["id"]], world.bob, "and in here?")
        inject(bot, "MESSAGE_CREATE", in_thread)
        await answered(fake, bot, in_thread)

    conversation = key(world, world.general, first["id"])
    history = await service.store.history(conversation)
    assert [t.user for t in history] == ["first kiwi question", "and the mango?", "and papaya?"]
    for answer in (second, third):
        assert str(answer["message_reference"]["message_id"]) in (follow_up["id"], third_q["id"])
        assert await service.conversation_of(conversation.at(answer["id"])) == conversation
    assert "first kiwi question" in spied.model.prompt_with("and the mango?")
    papaya = spied.model.prompt_with("and papaya?")
    assert "first kiwi question" in papaya and "and the mango?" in papaya
    assert "kiwi" not in spied.model.prompt_with("new topic"), "a mention starts a new one"
    thread_history = await service.store.history(key(world, world.general, second["id"]))
    assert [t.user for t in thread_history] == [*[t.user for t in history], "and in here?"]
    assert await service.owner(key(world, world.general, second["id"])) == world.bob["id"]
    assert "and papaya?" in spied.model.prompt_with("and in here?")
    assert all(replies_to(fake, m) == [] for m in elsewhere)
    assert not any("not for you" in p or "just chatting" in p for p in spied.model.prompts)
    assert_no_mentions(fake)


async def test_only_the_owner_or_a_moderator_resets_switches_or_clears(
    fake: FakeDiscord, world: World, service: ChatService, start_bot: BotStarter
) -> None:
    thread = fake.thread(world.general, "Docs", owner_id=world.alice["id"])
    thread_key = key(world, world.general, thread["id"])
    await service.begin(thread_key, world.alice["id"])
    await service.open_context(key(world, world.general), thread_key, "Docs")
    await service.store.add_turn(thread_key, Turn("q", "a"))
    await service.add_context(thread_key, "A fact.", {"author": "Alice"})

    def run(channel: dict, user: dict, name: str, **options: str | bool) -> dict:
        subcommand = options.pop("subcommand", None)
        moderator = options.pop("moderator", False)
        payload = fake.slash(
            name, channel, user, options, subcommand=subcommand, moderator=moderator
        )
        inject(bot, "INTERACTION_CREATE", payload)
        return payload

    async with start_bot() as bot:
        refused = [
            run(thread, world.bob, "reset"),
            run(thread, world.bob, "mode", mode="no-history"),
            run(thread, world.bob, "context", subcommand="clear"),
            run(world.general, world.bob, "context", subcommand="clear"),  # its context thread
        ]
        refusals = [await ephemeral_reply(fake, p) for p in refused]
        assert len(await service.store.history(thread_key)) == 1
        assert await service.get_mode(thread_key) is Mode.HISTORY
        assert await service.store.count_blocks(thread_key) == 1
        own_private = run(world.general, world.bob, "reset")
        assert "Forgot your private answers here" in await ephemeral_reply(fake, own_private)
        allowed = [
            run(thread, world.alice, "mode", mode="no-history"),
            run(thread, world.bob, "reset", moderator=True),
            run(thread, world.alice, "context", subcommand="clear"),
        ]
        for payload in allowed:
            await fake.wait_for(lambda p=payload: fake.interactions[p["token"]].acknowledged)

    for text in refusals:
        assert text.startswith("Only the person who started this conversation or an admin can")
    assert [callback(fake, p)["data"]["content"] for p in allowed] == [
        "Mode here is now **no-history**: each question is answered on its own.",
        "Conversation reset: 1 earlier turn(s) forgotten.",
        f"Removed 1 context block(s) from <#{thread['id']}>.",
    ]
    assert await service.store.history(thread_key) == []
    assert await service.get_mode(thread_key) is Mode.NO_HISTORY
    assert_no_mentions(fake)
