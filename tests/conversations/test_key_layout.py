"""Conversations stored before their keys had a hash tag are moved once, nothing lost."""

from __future__ import annotations

import redis.asyncio as aioredis

from airoboros_bot.config.keys import Keys
from airoboros_bot.conversations.models import ContextBlock, ConversationKey, Mode, Turn
from airoboros_bot.conversations.store import KEY_LAYOUT, ConversationStore

KEY = ConversationKey("terminal", "host", "default")


async def _write_layout_1(redis: aioredis.Redis, prefix: str, key: ConversationKey) -> None:
    base = f"{prefix}:conv:{key.id}"
    await redis.hset(base, "mode", Mode.NO_HISTORY.value)
    await redis.rpush(f"{base}:turns", Turn("q1", "a1").to_json(), Turn("q2", "a2").to_json())
    await redis.rpush(f"{base}:context", ContextBlock("doc", {"url": "u"}, id="b1").to_json())


async def test_old_conversation_keys_are_moved_once(redis: aioredis.Redis, key_prefix: str) -> None:
    other = ConversationKey("slack", "T1", "C1", "1.2")
    await _write_layout_1(redis, key_prefix, KEY)
    await _write_layout_1(redis, key_prefix, other)
    store = ConversationStore(redis, Keys(key_prefix))

    assert await store.upgrade_key_layout() == 6
    for key in (KEY, other):
        assert await store.get_mode(key) is Mode.NO_HISTORY
        assert [t.user for t in await store.history(key)] == ["q1", "q2"]
        assert [b.id for b in await store.blocks(key)] == ["b1"]
    assert not await redis.exists(f"{key_prefix}:conv:{KEY.id}:turns")
    assert await redis.get(Keys(key_prefix).layout) == str(KEY_LAYOUT)

    await _write_layout_1(redis, key_prefix, KEY)  # written by an old process after the move
    assert await store.upgrade_key_layout() == 0  # done once: the layout key says so


async def test_a_key_already_in_the_new_layout_is_never_overwritten(
    redis: aioredis.Redis, key_prefix: str
) -> None:
    store = ConversationStore(redis, Keys(key_prefix))
    await store.add_turn(KEY, Turn("new", "kept"))
    await redis.delete(Keys(key_prefix).layout)
    await _write_layout_1(redis, key_prefix, KEY)

    assert await store.upgrade_key_layout() == 2  # the hash and the context list
    assert [t.user for t in await store.history(KEY)] == ["new"]
    assert await redis.llen(f"{key_prefix}:conv:{KEY.id}:turns") == 2  # left where it was


async def test_a_fresh_redis_only_records_the_layout(
    redis: aioredis.Redis, key_prefix: str
) -> None:
    store = ConversationStore(redis, Keys(key_prefix))
    assert await store.upgrade_key_layout() == 0
    assert await redis.get(Keys(key_prefix).layout) == str(KEY_LAYOUT)
