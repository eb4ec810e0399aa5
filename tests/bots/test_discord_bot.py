"""The Discord bot end to end: the real discord.py client, the fake REST server, the real worker.

Gateway events are injected as raw payloads through the client's parsers; every assertion is
about the HTTP calls the bot made (and what it stored in Redis).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from airoboros_bot.bots.core.alerts import OFFLINE
from airoboros_bot.bots.core.render import WRITING_MARKER
from airoboros_bot.bots.core.runtime import Runtime
from airoboros_bot.bots.core.service import ChatService
from airoboros_bot.bots.discord.client import AiroborosBot, run_discord
from airoboros_bot.config.keys import Keys
from airoboros_bot.config.settings import ChatSettings, EngineSettings, load_settings
from airoboros_bot.conversations.models import ConversationKey, Turn
from airoboros_bot.conversations.store import ConversationStore
from airoboros_bot.engine.client import EngineClient
from airoboros_bot.engine.generator import Generator
from airoboros_bot.engine.protocol import Chunk
from airoboros_bot.engine.worker import Worker
from tests.bots import discord_fixtures
from tests.bots.discord_fixtures import (
    BotStarter,
    callback,
    ephemeral_reply,
    key,
    original_edits,
    running_bot,
)
from tests.fakes.discord import (
    EPHEMERAL,
    LOADING,
    MANAGE_MESSAGES,
    FakeDiscord,
    World,
    assert_no_mentions,
    buttons,
    inject,
)

fake, world, start_bot = (
    discord_fixtures.fake,
    discord_fixtures.world,
    discord_fixtures.start_bot,
)


async def final_answer(fake: FakeDiscord, bot: AiroborosBot, payload: dict) -> dict:
    """Wait for the interaction's response to be complete; return its message."""

    def done() -> dict | None:
        record = fake.interactions[payload["token"]]
        message = fake.messages.get(record.original_id or "")
        if not message or message["flags"] & LOADING:
            return None
        return None if message["content"].endswith(WRITING_MARKER) else message

    message = await fake.wait_for(done, what="the final answer")
    assert await bot.running.wait_idle(10)
    return fake.messages[message["id"]]


# -- start-up ----------------------------------------------------------------------------------
async def test_login_syncs_commands_globally_and_says_so(
    fake: FakeDiscord, world: World, caplog: pytest.LogCaptureFixture, start_bot: BotStarter
) -> None:
    caplog.set_level(logging.INFO, logger="airoboros_bot.bots.discord.client")
    async with start_bot():
        pass
    assert [r.path for r in fake.requests[:2]] == ["/users/@me", "/oauth2/applications/@me"]
    [sync] = fake.calls("PUT", r"/applications/\d+/commands")
    names = {(c["name"], c["type"]) for c in sync.json}
    assert names == {
        ("ask", 1),
        ("context", 1),
        ("mode", 1),
        ("channel-mode", 1),
        ("reset", 1),
        ("stop", 1),
        ("help", 1),
        ("Add as context", 3),
    }
    context = next(c for c in sync.json if c["name"] == "context")
    assert {o["name"] for o in context["options"]} == {"new", "list", "clear"}
    assert all(c["contexts"] == [0] for c in sync.json), "DMs are off: guild commands only"
    permissions = {c["name"]: c["default_member_permissions"] for c in sync.json}
    assert int(permissions.pop("channel-mode")) == MANAGE_MESSAGES, "shown to moderators"
    assert set(permissions.values()) == {None}, "owners of conversations use the others"
    assert "synced 8 commands globally" in caplog.text


async def test_login_syncs_to_configured_guilds_and_logs_failures(
    fake: FakeDiscord, world: World, caplog: pytest.LogCaptureFixture, start_bot: BotStarter
) -> None:
    caplog.set_level(logging.INFO, logger="airoboros_bot.bots.discord.client")
    unknown = 42
    async with start_bot(guild_ids=[world.guild_id, unknown]):
        pass
    assert not fake.calls("PUT", r"/applications/\d+/commands"), "nothing synced globally"
    [ok] = fake.calls("PUT", rf"/applications/\d+/guilds/{world.guild_id}/commands")
    assert len(ok.json) == 8
    assert fake.calls("PUT", rf"/applications/\d+/guilds/{unknown}/commands")
    assert f"could not sync commands to guild {unknown}" in caplog.text
    assert f"synced 8 commands to 1 of 2 configured guild(s) {world.guild_id}" in caplog.text


# -- /ask ----------------------------------------------------------------------------------------
async def test_ask_defers_then_streams_the_workers_answer(
    fake: FakeDiscord, world: World, service: ChatService, start_bot: BotStarter
) -> None:
    async with start_bot() as bot:
        payload = fake.slash(
            "ask", world.general, world.alice, {"question": "Why is the sky blue?"}
        )
        inject(bot, "INTERACTION_CREATE", payload)
        final = await final_answer(fake, bot, payload)

    calls = fake.interaction_calls(payload)
    first = calls[0]
    assert first.path.endswith("/callback") and first.json == {"type": 5}
    assert first.at - fake.interactions[payload["token"]].created < 3.0
    conversation = key(world, world.general, final["id"])  # a reply chain rooted at the answer
    [turn] = await service.store.history(conversation)
    assert turn.user == "Why is the sky blue?"
    assert final["content"] == turn.assistant.strip()
    assert await service.conversation_of(conversation) == conversation
    assert await service.owner(conversation) == world.alice["id"]
    assert await service.store.history(key(world, world.general)) == [], "nothing channel-wide"
    assert buttons(final) == {"Continue in thread": "airoboros:thread"}

    patches = original_edits(fake, payload)
    writing = [p for p in patches if p.json.get("content", "").endswith(WRITING_MARKER)]
    assert writing, "the answer is shown while it is written"
    stop = buttons(writing[0].json)["Stop"]
    assert stop.startswith("airoboros:stop:") and stop.endswith(f":{world.alice['id']}")
    for a, b in itertools.pairwise(writing):
        assert b.at - a.at >= 0.95, "at most about one edit a second"
    assert_no_mentions(fake)


async def test_private_ask_is_ephemeral_throughout(
    fake: FakeDiscord, world: World, start_bot: BotStarter
) -> None:
    async with start_bot() as bot:
        payload = fake.slash(
            "ask", world.general, world.alice, {"question": "secret?", "private": True}
        )
        inject(bot, "INTERACTION_CREATE", payload)
        final = await final_answer(fake, bot, payload)
    assert callback(fake, payload) == {"type": 5, "data": {"flags": EPHEMERAL}}
    assert final["flags"] & EPHEMERAL
    assert buttons(final) == {}, "no thread for a private answer"


async def test_rate_limited_ask_gets_an_ephemeral_reply(
    fake: FakeDiscord, world: World, service: ChatService, start_bot: BotStarter
) -> None:
    async with start_bot(rate_limit_per_minute=1) as bot:
        first = fake.slash("ask", world.general, world.alice, {"question": "one"})
        inject(bot, "INTERACTION_CREATE", first)
        alices = await final_answer(fake, bot, first)
        second = fake.slash("ask", world.general, world.alice, {"question": "two"})
        inject(bot, "INTERACTION_CREATE", second)
        reply = await ephemeral_reply(fake, second)
        other = fake.slash("ask", world.general, world.bob, {"question": "bob's"})
        inject(bot, "INTERACTION_CREATE", other)
        bobs = await final_answer(fake, bot, other)
    assert "asking too fast" in reply and "1 questions a minute" in reply
    assert len(fake.interaction_calls(second)) == 1, "refused before deferring"
    for answer, asked in ((alices, "one"), (bobs, "bob's")):
        history = await service.store.history(key(world, world.general, answer["id"]))
        assert [t.user for t in history] == [asked]


# -- the engine down -----------------------------------------------------------------------------
@dataclass
class IdleEngine:
    """A real worker that takes no jobs until `start()`; the service gives up waiting for a
    first chunk after ``first_chunk_timeout_s``."""

    service: ChatService
    worker: Worker
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.worker.run())


@pytest.fixture
async def idle_engine(
    redis: aioredis.Redis, key_prefix: str, generator: Generator, engine_settings: EngineSettings
) -> AsyncIterator[Callable[[float], IdleEngine]]:
    keys = Keys(key_prefix)
    made: list[IdleEngine] = []

    def make(first_chunk_timeout_s: float) -> IdleEngine:
        worker = Worker(redis, generator, keys, engine_settings, name=f"idle{len(made)}")
        client = EngineClient(
            redis, keys, first_chunk_timeout_s=first_chunk_timeout_s, poll_block_ms=200
        )
        service = ChatService(
            ConversationStore(redis, keys),
            client,
            generator.tokenizer.count,
            ChatSettings(),
            engine_settings,
        )
        made.append(IdleEngine(service, worker))
        return made[-1]

    try:
        yield make
    finally:
        for engine in made:
            engine.worker.stop()
            if engine.task:
                await asyncio.wait_for(engine.task, 30)


async def test_engine_down_gets_an_ephemeral_message(
    fake: FakeDiscord,
    world: World,
    idle_engine: Callable[[float], IdleEngine],
    redis: aioredis.Redis,
    key_prefix: str,
) -> None:
    service = idle_engine(1.0).service
    async with running_bot(fake, world, service, redis, key_prefix) as bot:
        payload = fake.slash("ask", world.general, world.alice, {"question": "anyone there?"})
        inject(bot, "INTERACTION_CREATE", payload)
        reply = await ephemeral_reply(fake, payload)
    assert reply == OFFLINE and "an admin has been told" in reply
    assert "airoboros-bot worker" not in reply, "no admin text for users"
    assert not await redis.xlen(Keys(key_prefix).jobs), "nothing was queued"
    alert = await redis.hgetall(Keys(key_prefix).alerts("engine_offline"))
    assert alert["count"] == "1" and "airoboros-bot worker" in alert["reason"], "for the admin"


async def test_engine_lost_after_deferral_gets_an_ephemeral_follow_up(
    fake: FakeDiscord,
    world: World,
    idle_engine: Callable[[float], IdleEngine],
    redis: aioredis.Redis,
    key_prefix: str,
) -> None:
    engine = idle_engine(1.0)
    service, worker = engine.service, engine.worker
    await worker.heartbeat()
    async with running_bot(fake, world, service, redis, key_prefix) as bot:
        payload = fake.slash("ask", world.general, world.alice, {"question": "still there?"})
        inject(bot, "INTERACTION_CREATE", payload)
        await fake.wait_for(lambda: original_edits(fake, payload), 10, "the first edit")
        await redis.delete(Keys(key_prefix).worker_health(worker.name))  # the worker dies
        followup = await fake.wait_for(
            lambda: [r for r in fake.interaction_calls(payload) if r.method == "POST"][1:], 15
        )
        assert await bot.running.wait_idle(5)
    assert callback(fake, payload)["type"] == 5
    assert fake.interaction_calls(payload)[-2].method == "DELETE", "the partial answer is removed"
    assert followup[0].json["flags"] == EPHEMERAL
    assert followup[0].json["content"] == OFFLINE
    alert = await redis.hgetall(Keys(key_prefix).alerts("engine_offline"))
    assert "engine worker stopped before answering" in alert["reason"], "the admin is told why"
    assert_no_mentions(fake)


# -- /stop and the Stop button -------------------------------------------------------------------
@dataclass
class WaitingAnswer:
    """An /ask whose answer waits, with its Stop button, for a worker that reported in but
    takes no job until ``engine.start()``."""

    engine: IdleEngine
    bot: AiroborosBot
    payload: dict
    stop_id: str  # the Stop button's custom id


@pytest.fixture
def waiting_answer(
    fake: FakeDiscord,
    world: World,
    idle_engine: Callable[[float], IdleEngine],
    redis: aioredis.Redis,
    key_prefix: str,
) -> Callable[[str], AbstractAsyncContextManager[WaitingAnswer]]:
    @asynccontextmanager
    async def ask(question: str) -> AsyncIterator[WaitingAnswer]:
        engine = idle_engine(30.0)
        await engine.worker.heartbeat()
        async with running_bot(fake, world, engine.service, redis, key_prefix) as bot:
            payload = fake.slash("ask", world.general, world.alice, {"question": question})
            inject(bot, "INTERACTION_CREATE", payload)
            await fake.wait_for(lambda: "Stop" in buttons(fake.original(payload)), 10, "Stop")
            yield WaitingAnswer(engine, bot, payload, buttons(fake.original(payload))["Stop"])

    return ask


async def test_stop_command_cancels_the_running_answer(
    fake: FakeDiscord,
    world: World,
    waiting_answer: Callable[[str], AbstractAsyncContextManager[WaitingAnswer]],
) -> None:
    async with waiting_answer("a long story please") as waiting:
        nothing = fake.slash("stop", world.general, world.bob)
        inject(waiting.bot, "INTERACTION_CREATE", nothing)
        assert "Nothing of yours" in await ephemeral_reply(fake, nothing)
        stop = fake.slash("stop", world.general, world.alice)
        inject(waiting.bot, "INTERACTION_CREATE", stop)
        assert await ephemeral_reply(fake, stop) == "Stopping 1 answer(s)."
        waiting.engine.start()
        final = await final_answer(fake, waiting.bot, waiting.payload)
    assert final["content"].endswith("_(stopped)_")
    assert buttons(final) == {}, "neither Stop nor Continue after stopping"
    history = await waiting.engine.service.store.history(key(world, world.general))
    assert history == [], "not stored"


async def test_stop_button_cancels_for_the_asker_only(
    fake: FakeDiscord,
    world: World,
    waiting_answer: Callable[[str], AbstractAsyncContextManager[WaitingAnswer]],
    redis: aioredis.Redis,
    key_prefix: str,
) -> None:
    async with waiting_answer("go on") as waiting:
        message_id = fake.original(waiting.payload)["id"]
        by_bob = fake.button_press(message_id, waiting.stop_id, world.bob)
        inject(waiting.bot, "INTERACTION_CREATE", by_bob)
        assert "Only the person who asked" in await ephemeral_reply(fake, by_bob)
        by_alice = fake.button_press(message_id, waiting.stop_id, world.alice)
        inject(waiting.bot, "INTERACTION_CREATE", by_alice)
        await fake.wait_for(lambda: fake.interactions[by_alice["token"]].acknowledged, 10)
        assert callback(fake, by_alice) == {"type": 6}, "acknowledged without a new message"
        waiting.engine.start()
        final = await final_answer(fake, waiting.bot, waiting.payload)
    assert final["content"].endswith("_(stopped)_")
    reply = await redis.xrange(Keys(key_prefix).job_output(waiting.stop_id.split(":")[2]))
    assert Chunk.from_fields(reply[-1][1]).finish_reason == "cancelled", "the worker was told"


# -- access ------------------------------------------------------------------------------------
async def test_disallowed_guild_channel_and_role_are_refused_ephemerally(
    fake: FakeDiscord, world: World, start_bot: BotStarter
) -> None:
    async with start_bot(
        channel_ids=[int(world.general["id"])],
        role_ids=[int(world.member_role)],
    ) as bot:
        elsewhere = fake.slash(
            "ask", world.random, world.alice, {"question": "hi"}, roles=[world.member_role]
        )
        no_role = fake.slash("ask", world.general, world.bob, {"question": "hi"})
        allowed = fake.slash("mode", world.general, world.alice, roles=[world.member_role])
        thread = fake.thread(world.general, "side", owner_id=world.alice["id"])
        in_thread = fake.slash("mode", thread, world.alice, roles=[world.member_role])
        for payload in (elsewhere, no_role, allowed, in_thread):
            inject(bot, "INTERACTION_CREATE", payload)
        assert "not enabled in this channel" in await ephemeral_reply(fake, elsewhere)
        assert "need one of the roles" in await ephemeral_reply(fake, no_role)
        assert "Mode here: **history**" in await ephemeral_reply(fake, allowed)
        assert "Mode here" in await ephemeral_reply(fake, in_thread), "threads of allowed channels"

    other_guild = fake.guild("Elsewhere")
    async with start_bot(guild_ids=[world.guild_id]) as bot:
        inject(bot, "GUILD_CREATE", other_guild)
        channel = fake.channels[other_guild["channels"][0]["id"]]
        payload = fake.slash("help", channel, world.alice)
        inject(bot, "INTERACTION_CREATE", payload)
        assert "server is not set up" in await ephemeral_reply(fake, payload)
    assert not fake.calls("POST", r"/webhooks/.*"), "nothing beyond the refusals"
    assert_no_mentions(fake)


async def test_block_lists_win_over_the_allow_lists(
    fake: FakeDiscord, world: World, service: ChatService, start_bot: BotStarter
) -> None:
    member, muted = world.member_role, world.muted_role
    thread = fake.thread(world.random, "side", owner_id=world.alice["id"])
    async with start_bot(
        channel_ids=[int(world.general["id"]), int(world.random["id"])],
        role_ids=[int(member)],
        blocked_user_ids=[int(world.bob["id"])],
        blocked_role_ids=[int(muted)],
        blocked_channel_ids=[int(world.random["id"])],
    ) as bot:
        refused = {
            "blocked user": fake.slash("help", world.general, world.bob, roles=[member]),
            "blocked role": fake.slash("help", world.general, world.alice, roles=[member, muted]),
            "blocked channel": fake.slash("help", world.random, world.alice, roles=[member]),
            "its thread": fake.slash("help", thread, world.alice, roles=[member]),
        }
        for payload in refused.values():
            inject(bot, "INTERACTION_CREATE", payload)
        replies = {what: await ephemeral_reply(fake, p) for what, p in refused.items()}
        allowed = fake.slash("help", world.general, world.alice, roles=[member])
        inject(bot, "INTERACTION_CREATE", allowed)
        assert "/ask" in await ephemeral_reply(fake, allowed)

        mention = f"<@{fake.bot_user['id']}> hello?"
        for author, roles in ((world.bob, [member]), (world.alice, [member, muted])):
            message = fake.message_create(
                world.general, author, mention, roles=roles, mentions=[fake.bot_user]
            )
            inject(bot, "MESSAGE_CREATE", message)
        answered = fake.message_create(
            world.general, world.alice, mention, roles=[member], mentions=[fake.bot_user]
        )
        inject(bot, "MESSAGE_CREATE", answered)  # handled after the two before it
        posts = await fake.wait_for(lambda: fake.calls("POST", r"/channels/\d+/messages"))
        assert await bot.running.wait_idle(15)
    assert replies == {
        "blocked user": "You can't use me here.",
        "blocked role": "You can't use me here.",
        "blocked channel": "I'm switched off in this channel.",
        "its thread": "I'm switched off in this channel.",
    }
    assert [str(p.json["message_reference"]["message_id"]) for p in posts] == [answered["id"]]
    assert len(fake.calls("POST", r"/channels/\d+/messages")) == 1, "blocked ones got nothing"


async def test_direct_messages_follow_the_setting(
    fake: FakeDiscord, world: World, service: ChatService, start_bot: BotStarter
) -> None:
    dm = fake.dm_channel(world.alice)
    async with start_bot() as bot:
        payload = fake.slash("ask", dm, world.alice, {"question": "hi"})
        inject(bot, "INTERACTION_CREATE", payload)
        assert "direct messages" in await ephemeral_reply(fake, payload)
        inject(bot, "MESSAGE_CREATE", fake.message_create(dm, world.alice, "hello?"))
        refusal = await fake.wait_for(lambda: fake.calls("POST", rf"/channels/{dm['id']}/messages"))
    assert "direct messages" in refusal[0].json["content"]

    async with start_bot(allow_dms=True) as bot:
        inject(bot, "MESSAGE_CREATE", fake.message_create(dm, world.alice, "What is Redis?"))
        await fake.wait_for(lambda: len(fake.calls("POST", rf"/channels/{dm['id']}/messages")) > 1)
        assert await bot.running.wait_idle(15)
    dm_key = ConversationKey("discord", "dm", dm["id"], "")
    [turn] = await service.store.history(dm_key)
    assert turn.user == "What is Redis?"
    last_edit = fake.calls("PATCH", rf"/channels/{dm['id']}/messages/\d+")[-1]
    assert last_edit.json["content"] == turn.assistant.strip()
    assert_no_mentions(fake)


# -- bad payloads ------------------------------------------------------------------------------
async def test_malformed_and_unknown_interactions_are_logged_and_ignored(
    fake: FakeDiscord, world: World, caplog: pytest.LogCaptureFixture, start_bot: BotStarter
) -> None:
    caplog.set_level(logging.WARNING)
    good = fake.slash("help", world.general, world.alice)
    no_name = fake.slash("help", world.general, world.alice)
    del no_name["data"]["name"]
    no_size = fake.slash("help", world.general, world.alice)
    del no_size["attachment_size_limit"]
    bad = [
        None,
        [],
        {},
        {"id": "1", "type": 2},
        {**good, "type": 99, "token": "x"},
        no_name,
        {**good, "member": "alice"},
        {**fake.slash("ask", world.general, world.alice), "data": "ask"},
        {**good, "type": 3, "data": {"custom_id": "airoboros:thread", "component_type": 2}},
        no_size,
    ]
    unknown = fake.slash("frobnicate", world.general, world.alice)
    foreign_button = fake.button_press(
        fake.message(world.general["id"], world.bob, "hi")["id"], "someone-else:1", world.alice
    )
    async with start_bot() as bot:
        before = len(fake.requests)
        for payload in bad:  # each is dropped (or fails) in the gateway parser, synchronously
            inject(bot, "INTERACTION_CREATE", payload)
        assert caplog.text.count("ignoring a malformed or unknown interaction") == len(bad) - 1
        inject(bot, "INTERACTION_CREATE", foreign_button)
        inject(bot, "INTERACTION_CREATE", unknown)
        assert "I don't know `/frobnicate`" in await ephemeral_reply(fake, unknown)
        answered = fake.requests[before:]
        assert answered == fake.interaction_calls(unknown), "only /frobnicate got an answer"
        inject(bot, "INTERACTION_CREATE", good)
        assert "/context new" in await ephemeral_reply(fake, good), "the bot still works"
    assert caplog.text.count("ignoring a malformed or unknown interaction") == len(bad) - 1
    assert "unknown interaction type 99" in caplog.text
    assert "ignoring a INTERACTION_CREATE event that could not be handled" in caplog.text
    assert "ignoring a component this bot did not make" in caplog.text
    assert "ignoring unknown command /frobnicate" in caplog.text
    assert no_size["token"] not in caplog.text and good["token"] not in caplog.text


# -- conversation settings ---------------------------------------------------------------------
async def test_channel_mode_is_for_moderators_and_new_conversations_start_with_it(
    fake: FakeDiscord,
    world: World,
    service: ChatService,
    redis: aioredis.Redis,
    key_prefix: str,
    start_bot: BotStarter,
) -> None:
    older = fake.thread(world.general, "older", owner_id=world.alice["id"])
    newer = fake.thread(world.general, "newer", owner_id=world.alice["id"])
    async with start_bot() as bot:
        started = fake.slash("mode", older, world.alice)  # its conversation starts: history
        inject(bot, "INTERACTION_CREATE", started)
        assert "Mode here: **history**" in await ephemeral_reply(fake, started)
        refused = fake.slash("channel-mode", world.general, world.bob, {"mode": "no-history"})
        inject(bot, "INTERACTION_CREATE", refused)
        assert "Only an admin" in await ephemeral_reply(fake, refused)
        payload = fake.slash(
            "channel-mode", world.general, world.bob, {"mode": "no-history"}, moderator=True
        )
        inject(bot, "INTERACTION_CREATE", payload)
        await fake.wait_for(lambda: fake.interactions[payload["token"]].acknowledged)
        shown = {}
        for where, channel in (("channel", world.general), ("older", older), ("newer", newer)):
            show = fake.slash("mode", channel, world.alice)
            inject(bot, "INTERACTION_CREATE", show)
            shown[where] = await ephemeral_reply(fake, show)
    body = callback(fake, payload)
    assert body["type"] == 4 and not body["data"].get("flags"), "announced in the channel"
    assert "from now on use **no-history**" in body["data"]["content"]
    conversation = Keys(key_prefix).conversation(key(world, world.general).id)
    assert await redis.hget(conversation, "mode") == "no-history"
    assert shown["channel"].startswith("Mode here: **no-history**. New conversations here")
    assert shown["older"] == "Mode here: **history**.", "a conversation keeps its mode"
    assert shown["newer"] == "Mode here: **no-history**.", "a new one starts with the channel's"
    assert_no_mentions(fake)


async def test_reset_forgets_the_threads_conversation(
    fake: FakeDiscord, world: World, service: ChatService, start_bot: BotStarter
) -> None:
    thread = fake.thread(world.general, "t", owner_id=world.alice["id"])
    conversation = key(world, world.general, thread["id"])
    await service.begin(conversation, world.alice["id"])
    await service.store.add_turn(conversation, Turn("q", "a"))
    await service.store.add_turn(conversation, Turn("q2", "a2"))
    async with start_bot() as bot:
        payload = fake.slash("reset", thread, world.alice)
        inject(bot, "INTERACTION_CREATE", payload)
        await fake.wait_for(lambda: fake.interactions[payload["token"]].acknowledged)
    assert "2 earlier turn(s) forgotten" in callback(fake, payload)["data"]["content"]
    assert await service.store.history(conversation) == []


async def test_help_lists_every_command(
    fake: FakeDiscord, world: World, start_bot: BotStarter
) -> None:
    async with start_bot() as bot:
        payload = fake.slash("help", world.general, world.alice)
        inject(bot, "INTERACTION_CREATE", payload)
        reply = await ephemeral_reply(fake, payload)
    for command in ("/ask", "/context new", "/context list", "/context clear", "Add as context"):
        assert command in reply
    for command in ("/mode", "/reset", "/stop", "/help"):
        assert command in reply


# -- continuing in a thread --------------------------------------------------------------------
async def test_continue_in_thread_carries_the_conversation(
    fake: FakeDiscord, world: World, service: ChatService, start_bot: BotStarter
) -> None:
    async with start_bot() as bot:
        ask = fake.slash("ask", world.general, world.alice, {"question": "first question"})
        inject(bot, "INTERACTION_CREATE", ask)
        answer = await final_answer(fake, bot, ask)
        press = fake.button_press(answer["id"], "airoboros:thread", world.alice)
        inject(bot, "INTERACTION_CREATE", press)
        thread_id = answer["id"]  # a thread started on a message takes the message's id
        welcome = await fake.wait_for(
            lambda: fake.calls("POST", rf"/channels/{thread_id}/messages")
        )
        reply = fake.message_create(fake.channels[thread_id], world.alice, "and a follow-up")
        inject(bot, "MESSAGE_CREATE", reply)
        await fake.wait_for(
            lambda: len(fake.calls("POST", rf"/channels/{thread_id}/messages")) > 1, 10
        )
        assert await bot.running.wait_idle(15)

    [create] = fake.calls(
        "POST", rf"/channels/{world.general['id']}/messages/{answer['id']}/threads"
    )
    assert create.json["name"] == "Alice's conversation"
    assert callback(fake, press) == {"type": 6}
    assert buttons(fake.messages[answer["id"]]) == {}, "the button is used up"
    assert "no need to mention me" in welcome[0].json["content"]
    thread_turns = await service.store.history(key(world, world.general, thread_id))
    assert [t.user for t in thread_turns] == ["first question", "and a follow-up"]
    answer_post = fake.calls("POST", rf"/channels/{thread_id}/messages")[1]
    assert str(answer_post.json["message_reference"]["message_id"]) == reply["id"]
    assert_no_mentions(fake)


# -- the command line entry ----------------------------------------------------------------------
async def test_run_discord_needs_a_token(capsys: pytest.CaptureFixture[str]) -> None:
    runtime = Runtime(load_settings(discord={"token": None}))
    assert await run_discord(runtime) == 2
    err = capsys.readouterr().err
    assert "AIROBOROS_DISCORD_TOKEN is not set" in err and len(err.strip().splitlines()) == 1


async def test_run_discord_reports_a_refused_token_without_printing_it(
    fake: FakeDiscord,
    redis_url: str,
    demo_model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = "MTIz.not-the-right-token.xyz"
    settings = load_settings(
        data_dir=tmp_path,
        redis={"url": redis_url},
        engine={"model_dir": demo_model_dir},
        discord={"token": secret},
    )
    runtime = await Runtime(settings).open()
    try:
        assert await run_discord(runtime) == 1
    finally:
        await runtime.close()
    err = capsys.readouterr().err
    assert "Discord refused the token in AIROBOROS_DISCORD_TOKEN" in err
    assert secret not in err
    assert fake.calls("GET", "/users/@me")
