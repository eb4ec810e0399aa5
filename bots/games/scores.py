"""Scores in Redis sorted sets: per game, per channel (all time) and per workspace / guild.

A point is given by one atomic script together with the change that earns it (closing the
question for the first right answer, recording a new list-game word), so two players answering
at once, or one player flooding, can never score twice and no score is lost half-way.
"""

from __future__ import annotations

from typing import Literal

import redis.asyncio as aioredis

from airoboros_bot.bots.games.models import LeaderboardRow
from airoboros_bot.bots.games.store import SCRATCH_TTL_S, GameState, GameStore
from airoboros_bot.conversations.models import ConversationKey

Scope = Literal["game", "channel", "workspace"]

_SCORE = """
redis.call('ZINCRBY', KEYS[2], ARGV[4], ARGV[2])
redis.call('ZINCRBY', KEYS[3], ARGV[4], ARGV[2])
redis.call('ZINCRBY', KEYS[4], ARGV[4], ARGV[2])
redis.call('HSET', KEYS[5], ARGV[2], ARGV[3])
"""
_OPEN = """
local g = KEYS[1]
if redis.call('HGET', g, 'qid') ~= ARGV[1] or redis.call('HGET', g, 'phase') ~= 'open'
  or tonumber(ARGV[5]) > tonumber(redis.call('HGET', g, 'deadline')) then
  return {'late', redis.call('HGET', g, 'winner_name') or ''}
end
"""
# KEYS: game, game scores, channel scores, workspace scores, names.
# ARGV: question id, user id, user name, points, now.
_CLAIM = (
    _OPEN
    + """
redis.call('HSET', g, 'phase', 'closed', 'winner', ARGV[2], 'winner_name', ARGV[3],
  'closed_at', ARGV[5])
"""
    + _SCORE
    + "return {'won', ARGV[3]}"
)
# KEYS: game, game scores, channel scores, workspace scores, names, found words.
# ARGV: question id, user id, user name, points, now, word, target, ttl.
_WORD = (
    _OPEN
    + """
local by = redis.call('HGET', KEYS[6], ARGV[6])
if by then return {'dup', by} end
redis.call('HSET', KEYS[6], ARGV[6], ARGV[3])
redis.call('EXPIRE', KEYS[6], ARGV[8])
"""
    + _SCORE
    + """
local n = redis.call('HLEN', KEYS[6])
if n >= tonumber(ARGV[7]) then
  redis.call('HSET', g, 'phase', 'closed', 'winner', '', 'winner_name', '', 'closed_at', ARGV[5])
  return {'done', tostring(n)}
end
return {'ok', tostring(n)}
"""
)


class Scoreboard:
    """Gives points and reads leaderboards."""

    def __init__(self, store: GameStore) -> None:
        self.store = store
        self.redis: aioredis.Redis = store.redis
        self._claim = self.redis.register_script(_CLAIM)
        self._word = self.redis.register_script(_WORD)

    def _keys(self, channel: ConversationKey, game_id: str) -> list[str]:
        scope = self.store.scope(channel)
        keys = self.store.keys
        return [
            self.store.game_key(channel),
            keys.game_scores(*scope, game_id),
            keys.channel_scores(*scope, channel.id),
            keys.workspace_scores(*scope),
            keys.player_names(*scope),
        ]

    async def claim(
        self, state: GameState, user_id: str, user_name: str, points: int, now: float
    ) -> tuple[bool, str]:
        """First right answer wins: ``(True, name)`` for the winner, else ``(False, winner)``
        where winner is "" when time ran out or the question changed."""
        result, name = await self._claim(
            keys=self._keys(state.channel, state.id),
            args=[state.qid, user_id, user_name, points, now],
        )
        return result == "won", str(name)

    async def add_word(
        self, state: GameState, user_id: str, user_name: str, word: str, points: int, now: float
    ) -> tuple[str, str]:
        """Record a list-game word: ("ok"|"done", found count) when it scores, ("dup", finder)
        when someone found it first, ("late", "") when the round is over."""
        scope = self.store.scope(state.channel)
        found = self.store.keys.game_found(*scope, state.qid)
        assert state.question is not None
        result, detail = await self._word(
            keys=[*self._keys(state.channel, state.id), found],
            args=[
                state.qid,
                user_id,
                user_name,
                points,
                now,
                word,
                state.question.target,
                SCRATCH_TTL_S,
            ],
        )
        return str(result), str(detail)

    def scope_key(self, channel: ConversationKey, scope: Scope, game_id: str = "") -> str:
        """The sorted set of one scope (``game_id`` for the game scope)."""
        return self._keys(channel, game_id)[{"game": 1, "channel": 2, "workspace": 3}[scope]]

    async def leaderboard(
        self, channel: ConversationKey, scope: Scope, limit: int = 10, game_id: str = ""
    ) -> tuple[LeaderboardRow, ...]:
        """Top players of a game, of the channel (all time) or of the whole workspace; ranked
        1, 1, 3 on ties."""
        key = self.scope_key(channel, scope, game_id)
        top = await self.redis.zrevrange(key, 0, limit - 1, withscores=True)
        if not top:
            return ()
        names_key = self.store.keys.player_names(*self.store.scope(channel))
        names = await self.redis.hmget(names_key, [user for user, _ in top])
        rows: list[LeaderboardRow] = []
        for position, ((user, score), name) in enumerate(zip(top, names, strict=True), 1):
            rank = rows[-1].rank if rows and rows[-1].points == int(score) else position
            rows.append(LeaderboardRow(rank, str(user), str(name or user), int(score)))
        return tuple(rows)

    async def points(
        self, channel: ConversationKey, scope: Scope, user_id: str, game_id: str = ""
    ) -> int:
        """One player's points in a scope."""
        score = await self.redis.zscore(self.scope_key(channel, scope, game_id), user_id)
        return int(score or 0)

    async def drop_game(self, channel: ConversationKey, game_id: str) -> None:
        """Forget a finished game's own table (channel and workspace totals stay)."""
        await self.redis.delete(self.scope_key(channel, "game", game_id))
