"""Game state in Redis, so a game survives a restart of the bot and its timer resumes.

One hash per channel holds the game: ``id``, ``state`` (JSON: kind, rounds, the question...),
and the fields that change atomically while players answer: ``phase`` (new / open / closed),
``qid`` (the open question), ``deadline``, ``winner``, ``closed_at`` and ``activity`` (the last
answer). Every write checks the game id, so a stopped game is never brought back by a late
write. A set per platform lists the channels with a game (`resume_all` reads it).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote

import redis.asyncio as aioredis

from airoboros_bot.bots.games.models import GameKind, GameStatus, Question
from airoboros_bot.config.keys import Keys
from airoboros_bot.conversations.models import ConversationKey

SCRATCH_TTL_S = 6 * 3600  # per-question tries, notices and found words
ATOMIC_FIELDS = ("phase", "qid", "deadline", "winner", "winner_name", "closed_at", "activity")

# KEYS[1] game hash. ARGV: id, state JSON, now. Returns 1 if created, 0 if a game exists.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'state', ARGV[2], 'phase', 'new', 'qid', '',
  'winner', '', 'closed_at', ARGV[3], 'activity', ARGV[3], 'deadline', '0')
return 1
"""
# KEYS[1] game hash. ARGV: id, then field, value pairs. HSET only while the game is the same.
_UPDATE = """
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
return 1
"""
# KEYS[1] game hash. ARGV: question id, now. Closes the open question nobody answered.
_REVEAL = """
if redis.call('HGET', KEYS[1], 'qid') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'phase') ~= 'open'
then return 0 end
redis.call('HSET', KEYS[1], 'phase', 'closed', 'winner', '', 'closed_at', ARGV[2])
return 1
"""
# KEYS[1] game hash. ARGV: id. Deletes the game once; returns 1 to the one caller who did it.
_FINISH = """
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""


def _channel_json(key: ConversationKey) -> str:
    return json.dumps([key.platform, key.workspace, key.channel, key.thread])


def channel_from_json(raw: str) -> ConversationKey:
    """The channel key stored in the registry."""
    platform, workspace, channel, thread = json.loads(raw)
    return ConversationKey(platform, workspace, channel, thread)


@dataclass
class GameState:
    """A running game. The fields after ``noted_fallback`` live in their own hash fields."""

    id: str
    kind: GameKind
    channel: ConversationKey
    topic: str
    rounds: int
    started_at: float
    started_by: str = ""
    prefix: str = ""
    round: int = 0
    question: Question | None = None
    opened_at: float = 0.0
    hints_shown: int = 0
    asked: list[str] = field(default_factory=list)
    noted_fallback: bool = False
    # atomic fields
    phase: str = "new"
    qid: str = ""
    deadline: float = 0.0
    winner: str = ""
    winner_name: str = ""
    closed_at: float = 0.0
    activity: float = 0.0

    def to_json(self) -> str:
        """The JSON part of the state."""
        data = asdict(self)
        for name in ATOMIC_FIELDS:
            data.pop(name)
        data["channel"] = [*asdict(self.channel).values()]
        data["question"] = self.question.to_dict() if self.question else None
        return json.dumps(data)

    @classmethod
    def from_hash(cls, fields: dict[str, Any]) -> GameState:
        """Decode the game hash."""
        data = json.loads(fields["state"])
        data["kind"] = GameKind(data["kind"])
        data["channel"] = ConversationKey(*data["channel"])
        data["question"] = Question.from_dict(data["question"]) if data["question"] else None
        state = cls(**data)
        state.phase = fields.get("phase", "new")
        state.qid = fields.get("qid", "")
        state.deadline = float(fields.get("deadline") or 0)
        state.winner = fields.get("winner", "")
        state.winner_name = fields.get("winner_name", "")
        state.closed_at = float(fields.get("closed_at") or 0)
        state.activity = float(fields.get("activity") or 0)
        return state

    def status(self) -> GameStatus:
        """The public snapshot."""
        return GameStatus(
            game_id=self.id,
            kind=self.kind,
            channel=self.channel,
            topic=self.topic,
            round=self.round,
            rounds=self.rounds,
            phase=self.phase,
            question=self.question,
            deadline=self.deadline,
            started_by=self.started_by,
        )


class GameStore:
    """Reads and writes games; all multi-field changes are atomic scripts."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._create = redis.register_script(_CREATE)
        self._update = redis.register_script(_UPDATE)
        self._reveal = redis.register_script(_REVEAL)
        self._finish = redis.register_script(_FINISH)

    @staticmethod
    def scope(channel: ConversationKey) -> tuple[str, str]:
        """The (platform, workspace) part of this channel's keys, safe inside a key."""
        return quote(channel.platform, safe=""), quote(channel.workspace, safe="")

    def game_key(self, channel: ConversationKey) -> str:
        """The channel's game hash."""
        return self.keys.game(*self.scope(channel), channel.id)

    async def create(self, state: GameState) -> bool:
        """Store a new game unless the channel has one; False when it does."""
        created = await self._create(
            keys=[self.game_key(state.channel)],
            args=[state.id, state.to_json(), state.started_at],
        )
        if created:
            await self.redis.sadd(
                self.keys.active_games(state.channel.platform), _channel_json(state.channel)
            )
        return bool(created)

    async def load(self, channel: ConversationKey) -> GameState | None:
        """The channel's game, or None."""
        fields = await self.redis.hgetall(self.game_key(channel))
        return GameState.from_hash(fields) if fields.get("state") else None

    async def save(self, state: GameState, **extra: str | float) -> bool:
        """Write the JSON state (and ``extra`` hash fields); False when the game is gone."""
        pairs: list[str | float] = ["state", state.to_json()]
        for name, value in extra.items():
            pairs += [name, value]
        return bool(
            await self._update(keys=[self.game_key(state.channel)], args=[state.id, *pairs])
        )

    async def touch(self, state: GameState, now: float) -> None:
        """Record that someone answered (the silence timer starts again)."""
        await self._update(keys=[self.game_key(state.channel)], args=[state.id, "activity", now])

    async def reveal(self, state: GameState, now: float) -> bool:
        """Close the open question unanswered; False if it was already closed (won)."""
        return bool(await self._reveal(keys=[self.game_key(state.channel)], args=[state.qid, now]))

    async def finish(self, state: GameState) -> bool:
        """Delete the game; True for the one caller that did (it announces the end)."""
        done = bool(await self._finish(keys=[self.game_key(state.channel)], args=[state.id]))
        if done:
            await self.redis.srem(
                self.keys.active_games(state.channel.platform), _channel_json(state.channel)
            )
        return done

    async def active_channels(self, platform: str) -> list[ConversationKey]:
        """Channels of ``platform`` listed as having a game."""
        members = await self.redis.smembers(self.keys.active_games(platform))
        return [channel_from_json(m) for m in sorted(members)]

    async def forget_channel(self, channel: ConversationKey) -> None:
        """Drop a registry entry whose game is gone."""
        await self.redis.srem(self.keys.active_games(channel.platform), _channel_json(channel))

    async def count_try(self, channel: ConversationKey, question_id: str, user_id: str) -> int:
        """Count one more try of this user at this question; returns the count."""
        name = self.keys.game_attempts(*self.scope(channel), question_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(name, user_id, 1)
            pipe.expire(name, SCRATCH_TTL_S)
            count, _ = await pipe.execute()
        return int(count)

    async def first_notice(self, channel: ConversationKey, question_id: str, what: str) -> bool:
        """True the first time ``what`` (e.g. "late:U1") is noted for this question."""
        name = self.keys.game_notice(*self.scope(channel), question_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.sadd(name, what)
            pipe.expire(name, SCRATCH_TTL_S)
            added, _ = await pipe.execute()
        return bool(added)

    async def found_words(self, channel: ConversationKey, question_id: str) -> dict[str, str]:
        """Words found in a list-game round: word -> name of who found it."""
        return await self.redis.hgetall(self.keys.game_found(*self.scope(channel), question_id))

    async def remember_end(self, state: GameState, now: float, window_s: float) -> None:
        """Keep the last question for ``window_s``, to answer late answers clearly."""
        if window_s <= 0 or state.question is None:
            return
        record = {"question": state.question.to_dict(), "ended_at": now, "window_s": window_s}
        await self.redis.set(
            self.keys.game_recent(*self.scope(state.channel), state.channel.id),
            json.dumps(record),
            ex=max(60, int(window_s) + 1),
        )

    async def recent(self, channel: ConversationKey, now: float) -> tuple[Question, str] | None:
        """The last question of a game that ended less than its window ago, with an id of
        that ending (for told-once notices), or None."""
        raw = await self.redis.get(self.keys.game_recent(*self.scope(channel), channel.id))
        if not raw:
            return None
        record = json.loads(raw)
        if now - float(record["ended_at"]) > float(record["window_s"]):
            return None
        question = Question.from_dict(record["question"])
        return question, f"end:{question.id}:{record['ended_at']}"
