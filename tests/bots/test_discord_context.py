"""Context threads end to end: /context, posts and files stored as blocks with metadata, cited
answers, the "Add as context" message menu, /context list and clear. Real discord.py client,
fake REST server, real worker on the tiny model; blocks are read back from the real store."""

from __future__ import annotations

from datetime import UTC, datetime

import redis.asyncio as aioredis

from airoboros_bot.bots.core.service import ChatService
from airoboros_bot.bots.discord.client import AiroborosBot
from tests.bots import discord_fixtures
from tests.bots.discord_fixtures import BotStarter, Spied, key, running_bot, written_answer
from tests.fakes.discord import (
    EPHEMERAL,
    FakeDiscord,
    World,
    assert_no_mentions,
    buttons,
    inject,
)

fake, world, start_bot, spied = (
    discord_fixtures.fake,
    discord_fixtures.world,
    discord_fixtures.start_bot,
    discord_fixtures.spied,
)


def link(world: World, channel_id: str, message_id: str) -> str:
    return f"https://discord.com/channels/{world.guild['id']}/{channel_id}/{message_id}"


def today() -> str:
    return datetime.now(UTC).date().isoformat()


async def open_context_thread(
    fake: FakeDiscord, bot: AiroborosBot, world: World, title: str
) -> dict:
    """Run `/context new` in #general; announce the thread as Discord does; return it."""
    payload = fake.slash("context", world.general, world.alice, {"title": title}, subcommand="new")
    inject(bot, "INTERACTION_CREATE", payload)
    await fake.wait_for(
        lambda: "Opened the context thread" in fake.original(payload).get("content", ""), 10
    )
    [thread] = [c for c in fake.channels.values() if c.get("parent_id") == world.general["id"]]
    inject(bot, "THREAD_CREATE", fake.thread_create(thread["id"]))
    return thread


async def reply_in(fake: FakeDiscord, bot: AiroborosBot, channel_id: str, count: int) -> list:
    """Wait until the bot has posted ``count`` messages in the channel and is idle."""
    posts = await fake.wait_for(
        lambda: (p := fake.calls("POST", rf"/channels/{channel_id}/messages"))[count - 1 :] and p,
        20,
        f"{count} posts in {channel_id}",
    )
    assert await bot.running.wait_idle(20)
    return posts


async def test_context_thread_stores_posts_and_files_with_metadata(
    fake: FakeDiscord, world: World, service: ChatService, start_bot: BotStarter
) -> None:
    async with start_bot() as bot:
        thread = await open_context_thread(fake, bot, world, "Specs")
        tid = thread["id"]
        text = fake.message_create(thread, world.alice, "Blueberries are now green.")
        inject(bot, "MESSAGE_CREATE", text)
        notes = fake.attachment(tid, "notes.md", "# Notes\nThe sky is plaid. ✓".encode())
        paper = fake.attachment(tid, "paper.pdf", b"%PDF-1.4")
        files = fake.message_create(thread, world.bob, "", attachments=[notes, paper])
        inject(bot, "MESSAGE_CREATE", files)
        skipped = await reply_in(fake, bot, tid, 2)  # the welcome, then the note on the pdf
        await fake.wait_for(lambda: len(fake.calls("PUT", r"/channels/.*/reactions/.*")) == 2)

    [create] = fake.calls("POST", rf"/channels/{world.general['id']}/threads")
    assert {k: create.json[k] for k in ("name", "type", "auto_archive_duration")} == {
        "name": "Specs",
        "type": 11,
        "auto_archive_duration": 1440,
    }
    assert "Context thread" in skipped[0].json["content"]
    assert "paper.pdf: only .txt and .md files become context" in skipped[1].json["content"]
    reactions = [r.path for r in fake.calls("PUT", r"/channels/.*/reactions/.*")]
    assert reactions == [
        f"/channels/{tid}/messages/{text['id']}/reactions/📎/@me",
        f"/channels/{tid}/messages/{files['id']}/reactions/📎/@me",
    ]
    assert fake.calls("GET", notes["url"].removeprefix(fake.base_url))

    thread_key = key(world, world.general, tid)
    blocks = await service.store.blocks(thread_key)
    assert [b.text for b in blocks] == [
        "Blueberries are now green.",
        "# Notes\nThe sky is plaid. ✓",
    ]
    assert blocks[0].metadata == {
        "url": link(world, tid, text["id"]),
        "date": today(),
        "author": "Alice",
        "channel": "#Specs",
    }
    assert blocks[1].metadata == {
        "url": link(world, tid, files["id"]),
        "date": today(),
        "author": "Bob",
        "channel": "#Specs",
        "file": "notes.md",
    }
    assert await service.context_title(thread_key) == "Specs"
    assert await service.context_target(key(world, world.general)) == thread_key
    assert_no_mentions(fake)


async def test_questions_in_a_context_thread_are_answered_with_sources(
    fake: FakeDiscord, world: World, service: ChatService, start_bot: BotStarter
) -> None:
    async with start_bot() as bot:
        thread = await open_context_thread(fake, bot, world, "Berries")
        tid = thread["id"]
        fact = fake.message_create(thread, world.bob, "In a shocking turn, blueberries are green.")
        inject(bot, "MESSAGE_CREATE", fact)
        await fake.wait_for(lambda: fake.calls("PUT", r"/channels/.*/reactions/.*"))
        mention = fake.message_create(
            thread,
            world.alice,
            f"<@{fake.bot_user['id']}> What color are blueberries?",
            mentions=[fake.bot_user],
        )
        inject(bot, "MESSAGE_CREATE", mention)
        posts = await reply_in(fake, bot, tid, 2)
        ask = fake.slash("ask", thread, world.alice, {"question": "And their source?"})
        inject(bot, "INTERACTION_CREATE", ask)
        final = await written_answer(fake, bot, ask)

    source = f"[message by Bob](<{link(world, tid, fact['id'])}>) — Bob, {today()}"
    assert str(posts[1].json["message_reference"]["message_id"]) == mention["id"]
    reply = fake.messages[
        fake.calls("PATCH", rf"/channels/{tid}/messages/\d+")[-1].path.split("/")[-1]
    ]
    assert "**Sources**\n1. " + source in reply["content"]
    assert "**Sources**\n1. " + source in final["content"]
    thread_key = key(world, world.general, tid)
    assert len(await service.store.blocks(thread_key)) == 1, "questions are not context"
    assert [t.user for t in await service.store.history(thread_key)] == [
        "What color are blueberries?",
        "And their source?",
    ]
    assert_no_mentions(fake)


async def choose(fake: FakeDiscord, bot: AiroborosBot, menu: dict, label: str) -> str:
    """Press a button of the private "where should it go?" answer to ``menu``; the reply."""
    question = fake.original(menu)
    press = fake.button_press(question["id"], buttons(question)[label], world_user(fake, menu))
    inject(bot, "INTERACTION_CREATE", press)
    await fake.wait_for(lambda: fake.original(menu)["components"] == [], 10, "the choice")
    return fake.original(menu)["content"]


def world_user(fake: FakeDiscord, payload: dict) -> dict:
    return fake.interactions[payload["token"]].user


async def add_as_context(
    fake: FakeDiscord, bot: AiroborosBot, channel: dict, user: dict, target: dict
) -> dict:
    """Use "Add as context" on ``target``; wait for the private answer."""
    menu = fake.message_command("Add as context", channel, user, target)
    inject(bot, "INTERACTION_CREATE", menu)
    await fake.wait_for(lambda: fake.original(menu).get("content"), 10, "the menu's answer")
    return menu


async def test_add_as_context_outside_a_thread_asks_where_and_does_what_was_chosen(
    fake: FakeDiscord, world: World, service: ChatService, start_bot: BotStarter
) -> None:
    meeting = fake.message(world.general["id"], world.bob, "The meeting moved to Friday.")
    lunch = fake.message(world.general["id"], world.bob, "Lunch is at noon on Fridays.")
    general = key(world, world.general)
    async with start_bot() as bot:
        # No context thread yet: a new one, or nothing.
        cancelled = await add_as_context(fake, bot, world.general, world.alice, meeting)
        asked = dict(fake.original(cancelled))
        assert set(buttons(asked)) == {"New context thread", "Cancel"}
        assert await choose(fake, bot, cancelled, "Cancel") == "Nothing was added."
        assert await service.current_context(general) is None
        # A new context thread, owned by whoever chose it, becomes the channel's.
        made = await add_as_context(fake, bot, world.general, world.alice, meeting)
        added = await choose(fake, bot, made, "New context thread")
        [thread] = [c for c in fake.channels.values() if c.get("parent_id") == general.channel]
        thread_key = key(world, world.general, thread["id"])
        # With a context thread: it is offered by name.
        offered = await add_as_context(fake, bot, world.general, world.alice, lunch)
        choices = buttons(fake.original(offered))
        to_current = await choose(fake, bot, offered, "Add to Context from Bob")
        # The message waits 15 minutes for a choice; after that the question has expired.
        stale = await add_as_context(fake, bot, world.general, world.alice, lunch)
        store = service.store
        async for name in store.redis.scan_iter(store.keys.pending_choice("*")):
            await store.redis.delete(name)
        expired = await choose(fake, bot, stale, "Cancel")
        # In a thread, the message goes to its conversation without a question.
        note = fake.message_create(thread, world.bob, "Bring snacks.")
        inject(bot, "MESSAGE_CREATE", note)  # a post in the context thread: a block itself
        await fake.wait_for(lambda: fake.calls("PUT", r"/channels/.*/reactions/.*"), 10)
        side = fake.thread(world.random, "side", owner_id=world.bob["id"])
        remark = fake.message(side["id"], world.bob, "Side remark.")
        direct = await add_as_context(fake, bot, side, world.alice, remark)
        # An unrelated question in the channel is not answered from any of it.
        unrelated = fake.slash("ask", world.general, world.bob, {"question": "What is 2+2?"})
        inject(bot, "INTERACTION_CREATE", unrelated)
        answer = await written_answer(fake, bot, unrelated)

    assert asked["flags"] & EPHEMERAL
    assert asked["content"].startswith("Where should Bob's message go?")
    [create] = fake.calls("POST", rf"/channels/{world.general['id']}/threads")
    assert create.json["name"] == "Context from Bob"
    assert added.startswith(f"Added Bob's message (1 block(s)) to <#{thread['id']}>: ")
    assert set(choices) == {"Add to Context from Bob", "New context thread", "Cancel"}
    assert to_current.startswith(f"Added Bob's message (1 block(s)) to <#{thread['id']}>: ")
    assert expired == "That choice has expired: use **Add as context** again."
    blocks = await service.store.blocks(thread_key)
    assert [b.text for b in blocks] == [
        "The meeting moved to Friday.",
        "Lunch is at noon on Fridays.",
        "Bring snacks.",
    ]
    assert blocks[0].metadata == {
        "url": link(world, world.general["id"], meeting["id"]),
        "date": today(),
        "author": "Bob",
        "channel": "#general",
    }
    assert await service.owner(thread_key) == world.alice["id"]
    assert await service.current_context(general) == thread_key
    side_key = key(world, world.random, side["id"])
    assert fake.original(direct)["components"] == [], "no question in a thread"
    assert fake.original(direct)["content"].startswith("Added Bob's message (1 block(s)) to ")
    assert [b.text for b in await service.store.blocks(side_key)] == ["Side remark."]
    assert await service.store.blocks(general) == [], "never the channel's own conversation"
    assert "**Sources**" not in answer["content"], "2+2 is not answered from the blocks"
    assert_no_mentions(fake)


async def test_context_list_and_clear(
    fake: FakeDiscord, world: World, service: ChatService, start_bot: BotStarter
) -> None:
    async with start_bot() as bot:
        thread = await open_context_thread(fake, bot, world, "Docs")
        for text in ("First fact.", "Second fact."):
            inject(bot, "MESSAGE_CREATE", fake.message_create(thread, world.alice, text))
        await fake.wait_for(lambda: len(fake.calls("PUT", r"/channels/.*/reactions/.*")) == 2)
        listing = fake.slash("context", world.general, world.alice, subcommand="list")
        inject(bot, "INTERACTION_CREATE", listing)
        await fake.wait_for(lambda: fake.original(listing).get("content"), 10)
        clear = fake.slash("context", thread, world.alice, subcommand="clear")
        inject(bot, "INTERACTION_CREATE", clear)
        await fake.wait_for(lambda: fake.original(clear).get("content"), 10)

    shown = fake.original(listing)
    assert shown["flags"] & EPHEMERAL
    usage = await service.context_usage(key(world, world.general, thread["id"]))
    assert usage.blocks == ()
    lines = shown["content"].splitlines()
    assert lines[0].startswith(f"**2 context block(s) in <#{thread['id']}>**: ")
    assert "of 2048 tokens of the model's window" in lines[0]
    assert lines[1].startswith("1. [message by Alice](<https://discord.com/channels/")
    assert lines[1].endswith(" tokens)")
    assert fake.original(clear)["content"] == f"Removed 2 context block(s) from <#{thread['id']}>."
    assert not fake.original(clear)["flags"] & EPHEMERAL, "clearing is announced"


async def test_threads_missing_from_the_cache_are_looked_up(
    fake: FakeDiscord, world: World, service: ChatService, start_bot: BotStarter
) -> None:
    thread = fake.thread(world.general, "Old docs", owner_id=world.alice["id"])
    thread_key = key(world, world.general, thread["id"])
    await service.open_context(key(world, world.general), thread_key, "Old docs")
    posts = ["one", "two", "three", "four", "five"]
    async with start_bot() as bot:
        for text in posts:
            inject(bot, "MESSAGE_CREATE", fake.message_create(thread, world.alice, text))
        await fake.wait_for(lambda: len(fake.calls("PUT", r"/channels/.*/reactions/.*")) == 5)
    assert len(fake.calls("GET", rf"/channels/{thread['id']}")) == 1, "looked up once"
    assert [b.text for b in await service.store.blocks(thread_key)] == posts, "in posting order"
    assert (await service.store.blocks(thread_key))[0].metadata["channel"] == "#Old docs"


async def test_unusable_posts_are_reported_and_nothing_is_stored(
    fake: FakeDiscord, world: World, service: ChatService, start_bot: BotStarter
) -> None:
    async with start_bot(max_attachment_bytes=100) as bot:
        thread = await open_context_thread(fake, bot, world, "Limits")
        tid = thread["id"]
        big = fake.attachment(tid, "big.txt", b"word " * 40)
        latin = fake.attachment(tid, "latin.txt", "caf\xe9".encode("latin-1"))
        post = fake.message_create(thread, world.alice, "", attachments=[big, latin])
        inject(bot, "MESSAGE_CREATE", post)
        huge = fake.message_create(thread, world.alice, "lorem ipsum " * 1500)
        inject(bot, "MESSAGE_CREATE", huge)
        posts = await reply_in(fake, bot, tid, 3)

    files_note, size_note = posts[1].json["content"], posts[2].json["content"]
    assert "big.txt: 200 bytes is over the 100-byte limit" in files_note
    assert "latin.txt: not UTF-8 text" in files_note
    assert "Context too large" in size_note
    assert not fake.calls("PUT", r"/channels/.*/reactions/.*")
    assert await service.store.blocks(key(world, world.general, tid)) == []
    assert_no_mentions(fake)


async def test_blocks_that_do_not_fit_the_window_are_named(
    fake: FakeDiscord, world: World, service: ChatService, start_bot: BotStarter
) -> None:
    thread = fake.thread(world.general, "Big", owner_id=world.alice["id"])
    thread_key = key(world, world.general, thread["id"])
    await service.open_context(key(world, world.general), thread_key, "Big")
    words = 50
    while await service.count_tokens(" ".join(f"fact{i}" for i in range(words))) < 700:
        words += 50
    for name in ("a.md", "b.md", "c.md"):
        body = " ".join(f"{name}{i}" for i in range(words))
        await service.add_context(thread_key, body, {"file": name})
    async with start_bot() as bot:
        inject(bot, "THREAD_CREATE", fake.thread_create(thread["id"]))
        ask = fake.slash("ask", thread, world.alice, {"question": "Summarize."})
        inject(bot, "INTERACTION_CREATE", ask)
        final = await written_answer(fake, bot, ask)
        listing = fake.slash("context", thread, world.alice, subcommand="list")
        inject(bot, "INTERACTION_CREATE", listing)
        await fake.wait_for(lambda: fake.original(listing).get("content"), 10)
    assert final["content"].endswith("_Left out (did not fit the window): c.md_")
    assert "1. a.md" in final["content"] and "2. b.md" in final["content"]
    assert "nearly fill the window" in fake.original(listing)["content"]


async def test_context_new_inside_a_thread_makes_it_a_context_thread(
    fake: FakeDiscord, world: World, service: ChatService, start_bot: BotStarter
) -> None:
    thread = fake.thread(world.general, "Design notes", owner_id=world.alice["id"])
    dm = fake.dm_channel(world.alice)
    async with start_bot(allow_dms=True) as bot:
        here = fake.slash("context", thread, world.alice, subcommand="new")
        inject(bot, "INTERACTION_CREATE", here)
        await fake.wait_for(lambda: fake.original(here).get("content"), 10)
        in_dm = fake.slash("context", dm, world.alice, subcommand="new")
        inject(bot, "INTERACTION_CREATE", in_dm)
        await fake.wait_for(lambda: fake.original(in_dm).get("content"), 10)
    assert fake.original(here)["content"].startswith("This thread is now a context thread.")
    assert not fake.calls("POST", r"/channels/\d+/threads"), "no new thread"
    thread_key = key(world, world.general, thread["id"])
    assert await service.context_title(thread_key) == "Design notes"
    assert await service.context_target(key(world, world.general)) == thread_key
    assert "need a server text channel" in fake.original(in_dm)["content"]
    assert fake.original(in_dm)["flags"] & EPHEMERAL


async def test_sources_list_only_the_blocks_the_answer_cites(
    fake: FakeDiscord, world: World, spied: Spied, redis: aioredis.Redis, key_prefix: str
) -> None:
    async with running_bot(fake, world, spied.service, redis, key_prefix) as bot:
        thread = await open_context_thread(fake, bot, world, "Berries")
        tid = thread["id"]
        blue = fake.message_create(thread, world.bob, "Blueberries are green now.")
        red = fake.message_create(thread, world.alice, "Strawberries are blue now.")
        for post in (blue, red):
            inject(bot, "MESSAGE_CREATE", post)
        await fake.wait_for(lambda: len(fake.calls("PUT", r"/channels/.*/reactions/.*")) == 2)
        blue_url, red_url = link(world, tid, blue["id"]), link(world, tid, red["id"])
        spied.model.script = f"Blueberries are green.\nSource:\nurl: {blue_url}"
        cited = fake.slash("ask", thread, world.alice, {"question": "Blueberries?"})
        inject(bot, "INTERACTION_CREATE", cited)
        one = await written_answer(fake, bot, cited)
        spied.model.script = "Green, I think."  # no Source lines: every block is listed
        uncited = fake.slash("ask", thread, world.alice, {"question": "And again?"})
        inject(bot, "INTERACTION_CREATE", uncited)
        both = await written_answer(fake, bot, uncited)

    prompt = spied.model.prompt_with("Blueberries?")
    assert blue_url in prompt and red_url in prompt, "both blocks were sent to the model"
    sources = one["content"].split("**Sources**\n")[1]
    assert sources == f"1. [message by Bob](<{blue_url}>) — Bob, {today()}"
    assert red_url not in one["content"]
    assert both["content"].endswith(
        f"**Sources**\n1. [message by Bob](<{blue_url}>) — Bob, {today()}\n"
        f"2. [message by Alice](<{red_url}>) — Alice, {today()}"
    )
