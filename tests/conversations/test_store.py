"""The Redis conversation store on a real server, including a restart of that server."""

from __future__ import annotations

import redis.asyncio as aioredis

from airoboros_bot.config.keys import Keys
from airoboros_bot.conversations.models import ContextBlock, ConversationKey, Mode, Turn
from airoboros_bot.conversations.store import ConversationStore
from tests.reply_dropping_proxy import ReplyDroppingProxy, evalsha_on
from tests.restartable_valkey import RestartableValkey

KEY = ConversationKey("discord", "guild 1", "chan:2", "thread/3")


def test_keys_of_different_conversations_never_collide() -> None:
    a = ConversationKey("slack", "T1", "C1:x", "")
    b = ConversationKey("slack", "T1", "C1", "x")
    assert a.id != b.id


async def test_modes_default_and_switch(redis: aioredis.Redis, key_prefix: str) -> None:
    store = ConversationStore(redis, Keys(key_prefix), default_mode=Mode.NO_HISTORY)
    assert await store.get_mode(KEY) is Mode.NO_HISTORY
    await store.set_mode(KEY, Mode.HISTORY)
    assert await store.get_mode(KEY) is Mode.HISTORY
    other = ConversationKey("discord", "guild 1", "chan:2", "")
    assert await store.get_mode(other) is Mode.NO_HISTORY


async def test_turns_are_kept_in_order_and_trimmed(redis: aioredis.Redis, key_prefix: str) -> None:
    store = ConversationStore(redis, Keys(key_prefix), max_turns=3)
    for i in range(5):
        await store.add_turn(KEY, Turn(f"q{i}", f"a{i}"))
    assert [t.user for t in await store.history(KEY)] == ["q2", "q3", "q4"]
    assert await store.pop_turn(KEY) == Turn("q4", "a4")
    assert await store.reset(KEY) == 2
    assert await store.history(KEY) == []
    assert await store.pop_turn(KEY) is None


async def test_context_blocks_keep_text_and_metadata(
    redis: aioredis.Redis, key_prefix: str
) -> None:
    store = ConversationStore(redis, Keys(key_prefix))
    first = ContextBlock("Blueberries are green.", {"url": "https://x/1", "author": "ann"})
    second = ContextBlock("ünïcode ✓\nline two", {"file": "notes.md", "date": "2023-06-01"})
    assert await store.add_block(KEY, first) == 1
    assert await store.add_block(KEY, second) == 2
    blocks = await store.blocks(KEY)
    assert blocks == [first, second]
    assert list(blocks[0].metadata) == ["url", "author"]
    await store.add_turn(KEY, Turn("q", "a"))
    await store.reset(KEY)
    assert await store.count_blocks(KEY) == 2, "reset keeps context blocks"
    assert await store.clear_blocks(KEY) == 2
    assert await store.blocks(KEY) == []


async def test_everything_survives_a_server_restart(tmp_path) -> None:
    keys = Keys("restart")
    server = RestartableValkey(tmp_path / "valkey")
    client = aioredis.Redis.from_url(server.url, decode_responses=True)
    store = ConversationStore(client, keys)
    await store.set_mode(KEY, Mode.NO_HISTORY)
    await store.add_turn(KEY, Turn("q1", "a1"))
    await store.add_block(KEY, ContextBlock("doc", {"url": "u"}))
    await client.aclose()
    server.stop(kill=True)  # SIGKILL: only what reached the AOF survives

    server.start()
    try:
        client = aioredis.Redis.from_url(server.url, decode_responses=True)
        store = ConversationStore(client, keys)
        assert await store.get_mode(KEY) is Mode.NO_HISTORY
        assert await store.history(KEY) == [Turn("q1", "a1")]
        assert [b.text for b in await store.blocks(KEY)] == ["doc"]
        await client.aclose()
    finally:
        server.stop()


async def test_turns_and_blocks_whose_replies_are_lost_are_stored_once(
    lossy: tuple[ReplyDroppingProxy, aioredis.Redis], redis: aioredis.Redis, key_prefix: str
) -> None:
    proxy, client = lossy
    keys = Keys(key_prefix)
    store = ConversationStore(client, keys, max_turns=3)
    proxy.drop_replies(evalsha_on(b":turns"), times=3, every=2)
    proxy.drop_replies(evalsha_on(b":context"), times=2)
    for i in range(5):
        await store.add_turn(KEY, Turn(f"q{i}", f"a{i}"))
    assert not await store.add_turn(
        KEY, Turn("again", "again", id=(await store.history(KEY))[-1].id)
    )
    block = ContextBlock("Blueberries are green.", {"url": "https://x/1"})
    assert await store.add_block(KEY, block) == 1
    assert await store.add_block(KEY, ContextBlock("second")) == 2
    assert len(proxy.dropped) == 5
    direct = ConversationStore(redis, keys)
    assert [t.user for t in await direct.history(KEY)] == ["q2", "q3", "q4"]
    assert [b.text for b in await direct.blocks(KEY)] == ["Blueberries are green.", "second"]


async def test_removing_the_newest_turn_twice_removes_one(
    lossy: tuple[ReplyDroppingProxy, aioredis.Redis], redis: aioredis.Redis, key_prefix: str
) -> None:
    proxy, client = lossy
    store = ConversationStore(client, Keys(key_prefix))
    for i in range(3):
        await store.add_turn(KEY, Turn(f"q{i}", f"a{i}"))
    proxy.drop_replies(evalsha_on(b":turns"))
    assert await store.pop_turn(KEY) == Turn("q2", "a2")
    assert len(proxy.dropped) == 1
    assert [t.user for t in await store.history(KEY)] == ["q0", "q1"]


async def test_turns_stored_before_ids_existed_are_read(
    redis: aioredis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    await redis.rpush(keys.conversation_turns(KEY.id), '{"user": "old", "assistant": "one"}')
    store = ConversationStore(redis, keys)
    await store.add_turn(KEY, Turn("new", "two"))
    assert [t.user for t in await store.history(KEY)] == ["old", "new"]
    assert await store.pop_turn(KEY) == Turn("new", "two")
    assert await store.pop_turn(KEY) == Turn("old", "one")
