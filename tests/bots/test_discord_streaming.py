"""How answers stream into Discord: edit cadence, queue position, pages past 2,000 characters,
sources as links, no pings. The chat service is the real one except that its answers follow a
script with controlled timing (the end-to-end tests with the real worker are in
test_discord_bot.py)."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import redis.asyncio as aioredis

from airoboros_bot.bots.core.render import WRITING_MARKER
from airoboros_bot.bots.core.service import (
    Answer,
    AnswerEvent,
    ChatService,
    Delta,
    Restart,
    Submitted,
)
from airoboros_bot.bots.discord.client import AiroborosBot
from airoboros_bot.config.keys import Keys
from airoboros_bot.config.settings import ChatSettings, EngineSettings
from airoboros_bot.conversations.models import ContextBlock, ConversationKey
from airoboros_bot.conversations.store import ConversationStore
from airoboros_bot.engine.client import EngineClient, Queued
from airoboros_bot.engine.generator import Generator
from tests.bots import discord_fixtures
from tests.bots.discord_fixtures import original_edits, running_bot, written_answer
from tests.fakes.discord import FakeDiscord, World, assert_no_mentions, buttons, inject

Script = Callable[[str], AsyncIterator[AnswerEvent]]
JOB = "0123456789abcdef0123456789abcdef"


class ScriptedChat(ChatService):
    """The chat service with its store, modes and context, answering from a script."""

    script: Script

    async def ask(
        self, key: ConversationKey, question: str, **options: object
    ) -> AsyncIterator[AnswerEvent]:
        async for event in self.script(question):
            yield event


fake, world = discord_fixtures.fake, discord_fixtures.world


@pytest.fixture
async def chat(redis: aioredis.Redis, key_prefix: str, generator: Generator) -> ScriptedChat:
    keys = Keys(key_prefix)
    await redis.set(keys.worker_health("scripted"), "1", ex=120)  # an engine is up
    return ScriptedChat(
        ConversationStore(redis, keys),
        EngineClient(redis, keys),
        generator.tokenizer.count,
        ChatSettings(),
        EngineSettings(),
    )


@asynccontextmanager
async def scripted_bot(
    fake: FakeDiscord, world: World, chat: ScriptedChat, script: Script, redis: aioredis.Redis
) -> AsyncIterator[AiroborosBot]:
    """The bot on ``chat`` answering from ``script``, with no rate limit."""
    chat.script = script
    async with running_bot(fake, world, chat, redis, "unused", rate_limit_per_minute=0) as bot:
        yield bot


def words(pages: list[str]) -> list[str]:
    """The words of the pages, without the code fences split_message adds."""
    text = "\n".join(pages)
    return [w for w in text.split() if not w.startswith("```")]


async def test_edits_stream_at_most_about_once_a_second(
    fake: FakeDiscord, world: World, chat: ScriptedChat, redis: aioredis.Redis
) -> None:
    pieces = [f"word{i} " for i in range(32)]

    async def script(question: str) -> AsyncIterator[AnswerEvent]:
        yield Submitted(JOB, 12, 0, ())
        for piece in pieces:
            await asyncio.sleep(0.1)
            yield Delta(piece)
        yield Answer("".join(pieces).strip(), "eos", 32, 12, ())

    async with scripted_bot(fake, world, chat, script, redis) as bot:
        payload = fake.slash("ask", world.general, world.alice, {"question": "count"})
        inject(bot, "INTERACTION_CREATE", payload)
        final = await written_answer(fake, bot, payload)

    patches = original_edits(fake, payload)
    writing = [p for p in patches if p.json["content"].endswith(WRITING_MARKER)]
    assert len(writing) >= 2, "the answer is shown while it is written"
    for a, b in itertools.pairwise(writing):
        assert b.at - a.at >= 0.95, f"edits {b.at - a.at:.2f} s apart"
    assert len(patches) <= 3.2 / 0.95 + 2
    for patch in writing[1:]:
        shown = patch.json["content"].removesuffix(WRITING_MARKER)
        assert "".join(pieces).startswith(shown), "each edit shows the text so far"
        assert buttons(patch.json) == {"Stop": f"airoboros:stop:{JOB}:{world.alice['id']}"}
    assert final["content"] == "".join(pieces).strip()
    assert buttons(final) == {"Continue in thread": "airoboros:thread"}
    assert_no_mentions(fake)


async def test_queue_position_is_shown_while_waiting(
    fake: FakeDiscord, world: World, chat: ScriptedChat, redis: aioredis.Redis
) -> None:
    async def script(question: str) -> AsyncIterator[AnswerEvent]:
        yield Submitted(JOB, 12, 0, ())
        await asyncio.sleep(1.05)
        yield Queued(2)
        await asyncio.sleep(1.05)
        yield Queued(0)
        await asyncio.sleep(1.05)
        yield Delta("Hello")
        yield Answer("Hello", "eos", 1, 12, ())

    async with scripted_bot(fake, world, chat, script, redis) as bot:
        payload = fake.slash("ask", world.general, world.alice, {"question": "hi"})
        inject(bot, "INTERACTION_CREATE", payload)
        await written_answer(fake, bot, payload)
    shown = [p.json["content"] for p in original_edits(fake, payload)]
    assert shown[:3] == [
        "Thinking… ▌",
        "Queued, 2 ahead… ▌",
        "Queued, next… ▌",
    ]
    assert shown[-1] == "Hello"


async def test_long_answers_continue_in_follow_ups_without_cutting_words_or_code(
    fake: FakeDiscord, world: World, chat: ScriptedChat, redis: aioredis.Redis
) -> None:
    code = "\n".join(f"    total = total + value_{i}  # step {i}" for i in range(90))
    prose = " ".join(f"sentence{i} has several words in it." for i in range(60))
    text = f"{prose}\n\n```python\n{code}\n```\n\n{prose}"
    assert len(text) > 2 * 2000
    chunks = [text[i : i + 400] for i in range(0, len(text), 400)]

    async def script(question: str) -> AsyncIterator[AnswerEvent]:
        yield Submitted(JOB, 12, 0, ())
        for chunk in chunks:
            await asyncio.sleep(0.12)
            yield Delta(chunk)
        yield Answer(text, "eos", 900, 12, ())

    async with scripted_bot(fake, world, chat, script, redis) as bot:
        payload = fake.slash("ask", world.general, world.alice, {"question": "long"})
        inject(bot, "INTERACTION_CREATE", payload)
        final = await written_answer(fake, bot, payload)
        followups = fake.followups(payload)

    pages = [final["content"]] + [m["content"] for m in followups]
    assert len(pages) >= 3
    assert all(len(p) <= 2000 for p in pages)
    for page in pages:
        assert len(re.findall(r"^\s*```", page, re.MULTILINE)) % 2 == 0, "code blocks closed"
    assert words(pages) == [w for w in text.split() if not w.startswith("```")]
    assert pages[1].startswith("```python\n") or pages[2].startswith("```python\n")
    posts = [r for r in fake.interaction_calls(payload) if r.method == "POST"][1:]
    assert len(posts) == len(followups) and all(r.query.get("wait") for r in posts)
    assert buttons(final) == {"Continue in thread": "airoboros:thread"}
    assert all(buttons(m) == {} for m in followups), "buttons only on the first message"
    conversation = ConversationKey("discord", world.guild["id"], world.general["id"], final["id"])
    for page in [final, *followups]:  # a reply to any page continues the conversation
        assert await chat.conversation_of(conversation.at(page["id"])) == conversation
    follow_edits = [
        r
        for r in fake.interaction_calls(payload)
        if r.method == "PATCH" and "@original" not in r.path
    ]
    assert follow_edits, "follow-ups are edited as the answer grows"
    assert_no_mentions(fake)


async def test_sources_are_links_and_left_out_blocks_are_named(
    fake: FakeDiscord, world: World, chat: ScriptedChat, redis: aioredis.Redis
) -> None:
    url = f"https://discord.com/channels/{world.guild['id']}/{world.general['id']}/1234"
    used = ContextBlock(
        "Blueberries are now green.",
        {"url": url, "date": "2026-11-02", "author": "Alice", "file": "notes [v2].md"},
    )
    too_big = ContextBlock("x", {"url": url + "5", "author": "Bob"})

    async def script(question: str) -> AsyncIterator[AnswerEvent]:
        yield Submitted(JOB, 900, 0, (too_big,))
        yield Answer("Blueberries are now green.", "eos", 6, 900, (used,))

    async with scripted_bot(fake, world, chat, script, redis) as bot:
        payload = fake.slash("ask", world.general, world.alice, {"question": "color?"})
        inject(bot, "INTERACTION_CREATE", payload)
        final = await written_answer(fake, bot, payload)
    assert final["content"] == (
        "Blueberries are now green.\n\n"
        f"**Sources**\n1. [notes \\[v2\\].md](<{url}>) — Alice, 2026-11-02\n\n"
        f"_Left out (did not fit the window): {url}5_"
    )


async def test_model_output_cannot_ping_anyone(
    fake: FakeDiscord, world: World, chat: ScriptedChat, redis: aioredis.Redis
) -> None:
    nasty = f"@everyone @here <@{world.bob['id']}> <@&{world.member_role}> look!"

    async def script(question: str) -> AsyncIterator[AnswerEvent]:
        yield Submitted(JOB, 12, 0, ())
        yield Delta(nasty)
        yield Answer(nasty, "eos", 9, 12, ())

    async with scripted_bot(fake, world, chat, script, redis) as bot:
        payload = fake.slash("ask", world.general, world.alice, {"question": "ping?"})
        inject(bot, "INTERACTION_CREATE", payload)
        mention = fake.message_create(
            world.general, world.bob, f"<@{fake.bot_user['id']}> ping?", mentions=[fake.bot_user]
        )
        inject(bot, "MESSAGE_CREATE", mention)
        final = await written_answer(fake, bot, payload)
        await fake.wait_for(
            lambda: any(
                m["content"] == nasty
                for m in fake.channel_messages(world.general["id"], fake.bot_user["id"])
                if not m.get("webhook_id")
            )
        )
        assert await bot.running.wait_idle(10)
    assert final["content"] == nasty
    assert_no_mentions(fake)


async def test_answers_to_mentions_are_edited_replies_with_more_pages(
    fake: FakeDiscord, world: World, chat: ScriptedChat, redis: aioredis.Redis
) -> None:
    text = " ".join(f"token{i}" for i in range(700))
    assert len(text) > 4000

    async def script(question: str) -> AsyncIterator[AnswerEvent]:
        assert question == "tell me everything", "the mention is not part of the question"
        yield Submitted(JOB, 12, 0, ())
        for i in range(0, len(text), 700):
            await asyncio.sleep(0.15)
            yield Delta(text[i : i + 700])
        yield Answer(text, "eos", 700, 12, ())

    async with scripted_bot(fake, world, chat, script, redis) as bot:
        mention = fake.message_create(
            world.general,
            world.alice,
            f"<@{fake.bot_user['id']}> tell me everything",
            mentions=[fake.bot_user],
        )
        inject(bot, "MESSAGE_CREATE", mention)
        await fake.wait_for(lambda: fake.calls("POST", r"/channels/\d+/messages"), 10)
        assert await bot.running.wait_idle(20)

    posts = fake.calls("POST", rf"/channels/{world.general['id']}/messages")
    assert str(posts[0].json["message_reference"]["message_id"]) == mention["id"]
    assert "message_reference" not in posts[1].json, "later pages are plain messages"
    pages = [m["content"] for m in fake.channel_messages(world.general["id"], fake.bot_user["id"])]
    assert len(pages) == len(posts) >= 3
    assert all(len(p) <= 2000 for p in pages)
    assert words(pages) == text.split()
    first = fake.channel_messages(world.general["id"], fake.bot_user["id"])[0]
    assert buttons(first) == {"Continue in thread": "airoboros:thread"}
    assert fake.calls("PATCH", rf"/channels/{world.general['id']}/messages/\d+")
    assert_no_mentions(fake)


def page_versions(fake: FakeDiscord, payload: dict) -> list[list[tuple[float, str]]]:
    """Each page of an answer to an interaction: (time, content) of its creation and of every
    edit of its text, in order; deleted follow-ups included."""
    record = fake.interactions[payload["token"]]
    calls = fake.interaction_calls(payload)

    def edits(suffix: str) -> list[tuple[float, str]]:
        return [
            (c.at, c.json["content"])
            for c in calls
            if c.method == "PATCH" and c.path.endswith(suffix) and "content" in c.json
        ]

    pages = [edits("/@original")]
    posts = [c for c in calls if c.method == "POST" and not c.path.endswith("/callback")]
    for post, message_id in zip(posts, record.followup_ids, strict=True):
        pages.append([(post.at, post.json["content"]), *edits(f"/messages/{message_id}")])
    return pages


async def test_a_full_page_is_frozen_while_the_answer_streams(
    fake: FakeDiscord, world: World, chat: ScriptedChat, redis: aioredis.Redis
) -> None:
    # As in the issue: page 1 showed about 1,900 characters; a paragraph break at 1,265 made
    # a fresh split of the whole answer cut it there, moving 600 characters to page 2.
    first = " ".join(f"alpha{i}" for i in range(154))
    second = " ".join(f"beta{i}" for i in range(100))
    rest = " ".join(f"gamma{i}" for i in range(700))
    text = f"{first}\n\n{second} {rest}"
    assert 1200 < len(first) < 1300 and 1850 < len(first) + 2 + len(second) < 1990

    async def script(question: str) -> AsyncIterator[AnswerEvent]:
        yield Submitted(JOB, 12, 0, ())
        shown = len(first) + 2 + len(second)
        yield Delta(text[: shown - 20])
        await asyncio.sleep(1.1)
        yield Delta(text[shown - 20 : shown])  # shown as one page of about 1,900 characters
        for i in range(shown, len(text), 300):
            await asyncio.sleep(0.15)
            yield Delta(text[i : i + 300])
        yield Answer(text, "eos", 900, 12, ())

    async with scripted_bot(fake, world, chat, script, redis) as bot:
        payload = fake.slash("ask", world.general, world.alice, {"question": "long"})
        inject(bot, "INTERACTION_CREATE", payload)
        await written_answer(fake, bot, payload)
        final = [fake.original(payload), *fake.followups(payload)]

    versions = page_versions(fake, payload)
    assert max(len(c) for _, c in versions[0]) > 1850, "page 1 was shown nearly full"
    assert len(versions) == len(final) >= 3
    for page, (edits, next_page) in enumerate(itertools.zip_longest(versions, versions[1:])):
        contents = [c.removesuffix(WRITING_MARKER) for _, c in edits if c != "Thinking… ▌"]
        for before, after in itertools.pairwise(contents):
            assert after.startswith(before), f"page {page + 1} shrank"
        if next_page:
            assert [c for at, c in edits if at > next_page[0][0]] == [], f"page {page + 1} froze"
    pages = [m["content"] for m in final]
    assert all(len(p) <= 2000 for p in pages)
    assert words(pages) == text.split()
    assert not fake.calls("DELETE"), "nothing to take back"
    assert_no_mentions(fake)


async def test_pages_a_restarted_answer_no_longer_needs_are_deleted(
    fake: FakeDiscord, world: World, chat: ScriptedChat, redis: aioredis.Redis
) -> None:
    long = " ".join(f"token{i}" for i in range(800))

    async def script(question: str) -> AsyncIterator[AnswerEvent]:
        yield Submitted(JOB, 12, 0, ())
        await asyncio.sleep(1.1)
        yield Delta(long)  # shown on several pages
        await asyncio.sleep(1.1)
        yield Restart()
        await asyncio.sleep(1.1)
        yield Delta("A short answer this time.")
        yield Answer("A short answer this time.", "eos", 5, 12, ())

    async with scripted_bot(fake, world, chat, script, redis) as bot:
        payload = fake.slash("ask", world.general, world.alice, {"question": "again"})
        inject(bot, "INTERACTION_CREATE", payload)
        final = await written_answer(fake, bot, payload)

    record = fake.interactions[payload["token"]]
    assert len(record.followup_ids) >= 2, "the long answer had several pages"
    deleted = fake.calls("DELETE", r"/webhooks/\d+/[^/]+/messages/\d+")
    assert [r.path.rsplit("/", 1)[1] for r in deleted] == record.followup_ids[::-1]
    assert fake.followups(payload) == [], "no orphan page"
    assert final["content"] == "A short answer this time."
