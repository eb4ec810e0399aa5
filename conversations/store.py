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
import logging

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

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
_LINK = "link"
log = logging.getLogger(__name__)
KEY_LAYOUT = 2
"""Layout 2: a conversation's keys share the hash tag ``{conversation id}`` (Redis Cluster)."""


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

    # -- conversations in a team channel -------------------------------------------------------
    @property
    def redis(self) -> aioredis.Redis:
        """The Redis client (for helpers that keep their own keys, see config/keys.py)."""
        return self._redis

    @property
    def keys(self) -> Keys:
        """The key names."""
        return self._keys

    async def stored_mode(self, key: ConversationKey) -> Mode | None:
        """The mode set for this conversation, or None when never set."""
        raw = await self._redis.hget(self._keys.conversation(key.id), "mode")
        return Mode(raw) if raw else None

    async def set_meta_once(self, key: ConversationKey, name: str, value: str) -> bool:
        """Store a setting unless it is already set (HSETNX); True when this call set it."""
        created = await self._redis.hsetnx(self._keys.conversation(key.id), name, value)
        await self._touch(key)
        return bool(created)

    async def link(self, ref: ConversationKey, conversation: ConversationKey) -> None:
        """Make replies under ``ref`` (a thread, or a message of the bot) continue
        ``conversation`` (same platform and workspace)."""
        target = json.dumps([conversation.channel, conversation.thread, conversation.user])
        await self.set_meta(ref, _LINK, target)

    async def linked(self, ref: ConversationKey) -> ConversationKey | None:
        """The conversation replies under ``ref`` continue, or None when nothing was linked."""
        raw = await self.get_meta(ref, _LINK)
        if raw is None:
            return None
        channel, thread, user = json.loads(raw)
        return ConversationKey(ref.platform, ref.workspace, channel, thread, user)

    async def set_channel_mode(self, channel: ConversationKey, mode: Mode) -> None:
        """The default mode of conversations started in a channel from now on."""
        await self.set_mode(channel.channel_key, mode)
        name = self._keys.channel_modes(channel.platform, channel.workspace)
        await self._redis.hset(name, channel.channel, mode.value)

    async def channel_modes(self, platform: str, workspace: str) -> dict[str, Mode]:
        """Channel id -> default mode, for every channel of a workspace where one was set."""
        raw = await self._redis.hgetall(self._keys.channel_modes(platform, workspace))
        return {str(channel): Mode(mode) for channel, mode in raw.items()}

    async def forget(self, key: ConversationKey) -> None:
        """Delete everything stored for the conversation."""
        await self._redis.delete(*self._all_keys(key))

    # -- key layout ---------------------------------------------------------------------------
    async def upgrade_key_layout(self) -> int:
        """Rename conversation keys written before they had a hash tag; returns how many moved.

        Runs once per Redis (the layout key records it) and is safe from several processes at
        once: RENAMENX never overwrites, and a key another process moved first is skipped.
        """
        if int(await self._redis.get(self._keys.layout) or 1) >= KEY_LAYOUT:
            return 0
        head = self._keys.legacy_conversation_pattern.removesuffix("*")
        moved = 0
        async for name in self._redis.scan_iter(
            match=self._keys.legacy_conversation_pattern, count=1000
        ):
            target = self._tagged_name(str(name).removeprefix(head))
            if target is None:
                continue
            try:
                if await self._redis.renamenx(name, target):
                    moved += 1
                else:
                    log.warning("kept %s: %s exists already", name, target)
            except ResponseError:  # moved meanwhile by another process
                continue
        await self._redis.set(self._keys.layout, KEY_LAYOUT)
        if moved:
            log.info("moved %d conversation keys to the hash-tagged layout", moved)
        return moved

    def _tagged_name(self, rest: str) -> str | None:
        """The layout-2 name of a layout-1 key, given the part after ``{prefix}:conv:``."""
        if "{" in rest:
            return None
        parts = rest.split(":")  # a conversation id has four quoted parts
        if len(parts) == 4:
            return self._keys.conversation(rest)
        if len(parts) == 5 and parts[4] == "turns":
            return self._keys.conversation_turns(":".join(parts[:4]))
        if len(parts) == 5 and parts[4] == "context":
            return self._keys.conversation_context(":".join(parts[:4]))
        return None
