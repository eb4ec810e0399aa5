"""The Redis conversation store: mode, turns and context blocks per conversation key.

Layout (see config/keys.py): a hash with the conversation's settings, a list of finished turns
(oldest first) and a list of context blocks (in the order added). With AOF persistence on the
server, everything survives a restart of Redis.

Every write is safe to repeat, because Redis clients resend a command whose reply was lost:
a turn or a block is appended only if none of the newest entries carries its id, and the newest
turn is removed only if it is still the one read.
"""

from __future__ import annotations

import json

import redis.asyncio as aioredis

from airoboros_bot.config.keys import Keys
from airoboros_bot.conversations.models import ContextBlock, ConversationKey, Mode, Turn

# KEYS: a list. ARGV: the item's head (its JSON up to and including its id), the item, the
# longest the list may get (0 = no limit), how many of the newest items to look through (0 =
# none). Returns {added, length}.
APPEND_ONCE = """
if tonumber(ARGV[4]) > 0 then
  for _, item in ipairs(redis.call('LRANGE', KEYS[1], -tonumber(ARGV[4]), -1)) do
    if string.sub(item, 1, #ARGV[1]) == ARGV[1] then
      return {0, redis.call('LLEN', KEYS[1])}
    end
  end
end
local length = redis.call('RPUSH', KEYS[1], ARGV[2])
local limit = tonumber(ARGV[3])
if limit > 0 and length > limit then
  redis.call('LTRIM', KEYS[1], -limit, -1)
  length = limit
end
return {1, length}
"""
# KEYS: a list. ARGV: the item expected at its end. Removes it if it is still there.
POP_IF_LAST = """
if redis.call('LINDEX', KEYS[1], -1) == ARGV[1] then return redis.call('RPOP', KEYS[1]) end
return false
"""
RECENT = 64
"""How many of the newest entries a repeated append looks through for its id."""


class ConversationStore:
    """Reads and writes conversations in Redis."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        default_mode: Mode = Mode.HISTORY,
        max_turns: int = 200,
        ttl_s: int = 0,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self.default_mode = default_mode
        self._max_turns = max_turns
        self._ttl_s = ttl_s
        self._append_once = redis.register_script(APPEND_ONCE)
        self._pop_if_last = redis.register_script(POP_IF_LAST)

    def _all_keys(self, key: ConversationKey) -> list[str]:
        cid = key.id
        return [
            self._keys.conversation(cid),
            self._keys.conversation_turns(cid),
            self._keys.conversation_context(cid),
        ]

    async def _touch(self, key: ConversationKey) -> None:
        if self._ttl_s:
            async with self._redis.pipeline(transaction=False) as pipe:
                for name in self._all_keys(key):
                    pipe.expire(name, self._ttl_s)
                await pipe.execute()

    # -- settings -----------------------------------------------------------------------------
    async def get_mode(self, key: ConversationKey) -> Mode:
        """The conversation's mode, or the default when never set."""
        raw = await self._redis.hget(self._keys.conversation(key.id), "mode")
        return Mode(raw) if raw else self.default_mode

    async def set_mode(self, key: ConversationKey, mode: Mode) -> None:
        """Switch between history and no-history."""
        await self._redis.hset(self._keys.conversation(key.id), "mode", mode.value)
        await self._touch(key)

    async def get_meta(self, key: ConversationKey, name: str) -> str | None:
        """A free-form setting of the conversation (title, last question, ...)."""
        value = await self._redis.hget(self._keys.conversation(key.id), name)
        return None if value is None else str(value)

    async def set_meta(self, key: ConversationKey, name: str, value: str) -> None:
        """Store a free-form setting of the conversation."""
        await self._redis.hset(self._keys.conversation(key.id), name, value)
        await self._touch(key)

    # -- turns --------------------------------------------------------------------------------
    async def history(self, key: ConversationKey) -> list[Turn]:
        """Finished turns, oldest first."""
        raw = await self._redis.lrange(self._keys.conversation_turns(key.id), 0, -1)
        return [Turn.from_json(item) for item in raw]

    async def _append(self, name: str, item_id: str, item: str, limit: int) -> tuple[bool, int]:
        head = '{"id": ' + json.dumps(item_id)
        if not item.startswith(head):
            raise ValueError("stored items are JSON objects that start with their id")
        recent = RECENT if item_id else 0  # an item without an id cannot be recognised
        added, length = await self._append_once(keys=[name], args=[head, item, limit, recent])
        return bool(int(added)), int(length)

    async def add_turn(self, key: ConversationKey, turn: Turn) -> bool:
        """Append a finished turn once (the oldest beyond `max_turns` are dropped); False when
        a turn with its id is already stored."""
        name = self._keys.conversation_turns(key.id)
        added, _ = await self._append(name, turn.id, turn.to_json(), self._max_turns)
        await self._touch(key)
        return added

    async def pop_turn(self, key: ConversationKey) -> Turn | None:
        """Remove and return the newest turn (for regenerating an answer)."""
        name = self._keys.conversation_turns(key.id)
        raw = await self._redis.lindex(name, -1)
        if raw is None:
            return None
        await self._pop_if_last(keys=[name], args=[raw])
        return Turn.from_json(raw)

    async def reset(self, key: ConversationKey) -> int:
        """Forget the turns; mode and context blocks stay. Returns how many turns were dropped."""
        name = self._keys.conversation_turns(key.id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.llen(name)
            pipe.delete(name)
            pipe.hdel(self._keys.conversation(key.id), "last_question")
            count, *_ = await pipe.execute()
        return int(count)

    # -- context blocks -----------------------------------------------------------------------
    async def add_block(self, key: ConversationKey, block: ContextBlock) -> int:
        """Attach a context block once (by its id); returns how many blocks the conversation
        now has."""
        name = self._keys.conversation_context(key.id)
        _, count = await self._append(name, block.id, block.to_json(), 0)
        await self._touch(key)
        return count

    async def blocks(self, key: ConversationKey) -> list[ContextBlock]:
        """Context blocks in the order they were added."""
        raw = await self._redis.lrange(self._keys.conversation_context(key.id), 0, -1)
        return [ContextBlock.from_json(item) for item in raw]

    async def count_blocks(self, key: ConversationKey) -> int:
        """How many context blocks the conversation has."""
        return int(await self._redis.llen(self._keys.conversation_context(key.id)))

    async def clear_blocks(self, key: ConversationKey) -> int:
        """Remove every context block; returns how many there were."""
        name = self._keys.conversation_context(key.id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.llen(name)
            pipe.delete(name)
            count, _ = await pipe.execute()
        return int(count)

    async def forget(self, key: ConversationKey) -> None:
        """Delete everything stored for the conversation."""
        await self._redis.delete(*self._all_keys(key))
