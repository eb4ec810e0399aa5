"""Keys used together share one Redis Cluster hash slot; keys of different jobs, conversations
and workspaces spread over the slots."""

from __future__ import annotations

from redis.crc import key_slot

from airoboros_bot.bots.games.store import GameStore
from airoboros_bot.config.keys import Keys
from airoboros_bot.conversations.models import ConversationKey

KEYS = Keys("airoboros")


def _slot(key: str) -> int:
    return key_slot(key.encode())


def test_the_keys_of_one_job_share_a_slot() -> None:
    for job_id in ("0f3c9e", "a1b2c3d4e5f60718293a4b5c6d7e8f90"):
        assert _slot(KEYS.job_output(job_id)) == _slot(KEYS.job_cancel(job_id))
    assert len({_slot(KEYS.job_output(f"{n:032x}")) for n in range(64)}) > 32


def test_a_tagged_job_id_puts_the_job_on_its_tags_slot() -> None:
    """Jobs whose ids share a tag (``tag~rest``) share one slot: a reader can read all their
    reply streams with one XREAD."""
    slots = {_slot(KEYS.job_output(f"r7~{n:032x}")) for n in range(16)}
    slots |= {_slot(KEYS.job_cancel(f"r7~{n:032x}")) for n in range(16)}
    assert slots == {_slot("{r7}")}
    assert KEYS.job_output("plainid") == "airoboros:job:{plainid}:out"


def test_the_keys_of_one_conversation_share_a_slot() -> None:
    conversation = ConversationKey("slack", "T{1}", "C:1", "1700000000.000100").id
    assert "{" not in conversation and "}" not in conversation  # quoted: the tag stays whole
    slots = {
        _slot(KEYS.conversation(conversation)),
        _slot(KEYS.conversation_turns(conversation)),
        _slot(KEYS.conversation_context(conversation)),
    }
    assert len(slots) == 1


def test_the_game_keys_of_one_workspace_share_a_slot() -> None:
    channel = ConversationKey("discord", "guild{9}", "chan:1")
    scope = GameStore.scope(channel)
    keys = [
        GameStore(_NoRedis(), KEYS).game_key(channel),
        KEYS.game_attempts(*scope, "q1"),
        KEYS.game_found(*scope, "q1"),
        KEYS.game_scores(*scope, "g1"),
        KEYS.channel_scores(*scope, channel.id),
        KEYS.workspace_scores(*scope),
        KEYS.player_names(*scope),
        KEYS.game_recent(*scope, channel.id),
        KEYS.game_notice(*scope, "q1"),
    ]
    assert len({_slot(k) for k in keys}) == 1


class _NoRedis:
    """Enough of a client for GameStore's constructor (key names only, no command is sent)."""

    def register_script(self, script: str) -> None:
        return None
