"""The Slack app when things go wrong: engine down or too slow, no access, bad input."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from airoboros_bot.bots.core.alerts import ENGINE_OFFLINE_TOTAL, OFFLINE
from airoboros_bot.bots.core.service import ChatService
from airoboros_bot.config.keys import CONSUMER_GROUP, Keys
from airoboros_bot.config.settings import ChatSettings, EngineSettings
from airoboros_bot.conversations.models import ConversationKey
from airoboros_bot.conversations.store import ConversationStore
from airoboros_bot.engine.client import EngineClient
from airoboros_bot.engine.generator import Generator
from tests.bots import slack_fixtures
from tests.bots.slack_fixtures import (
    AppFactory,
    dispatch,
    dispatch_and_finish,
    ephemerals,
    final_answer,
    job_outputs,
    thread_linked,
)
from tests.fakes.slack import (
    BOT_USER,
    TEAM,
    FakeSlack,
    block_action,
    command_body,
    event_envelope,
    mention_event,
    message_action,
)

fake, client, make_app = slack_fixtures.fake, slack_fixtures.client, slack_fixtures.make_app


@pytest.fixture
def idle(redis: aioredis.Redis, key_prefix: str, generator: Generator) -> ChatService:
    """The chat service with no worker behind it."""
    return workerless_service(redis, key_prefix, generator)


def workerless_service(
    redis: aioredis.Redis, key_prefix: str, generator: Generator, **client_options: Any
) -> ChatService:
    """The chat service with no worker running behind it."""
    keys = Keys(key_prefix)
    return ChatService(
        ConversationStore(redis, keys),
        EngineClient(redis, keys, **client_options),
        generator.tokenizer.count,
        ChatSettings(),
        EngineSettings(max_new_tokens=16),
    )


async def no_jobs(redis: aioredis.Redis, key_prefix: str) -> bool:
    outputs = await job_outputs(redis, key_prefix)
    return await redis.xlen(Keys(key_prefix).jobs) == 0 and not outputs


async def test_engine_down_tells_the_user_and_alerts_the_admin(
    make_app: AppFactory,
    fake: FakeSlack,
    redis: aioredis.Redis,
    key_prefix: str,
    generator: Generator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(workerless_service(redis, key_prefix, generator))
    response = await dispatch(app, command_body("/ask", "Anyone there?"))
    assert response.status == 200
    final = await fake.wait_for(lambda: final_answer(fake), what="the error in the placeholder")
    assert final["text"] == f":warning: {OFFLINE}"
    assert "airoboros-bot worker" not in final["text"], "no admin instructions for users"
    assert fake.calls_to("chat.postMessage")[0].params["text"].startswith("Thinking")
    assert await no_jobs(redis, key_prefix)
    # The admin: a log line with the real reason, a shared Redis record and a metric.
    assert "engine offline" in caplog.text and "airoboros-bot worker" in caplog.text
    alert = await redis.hgetall(Keys(key_prefix).alerts("engine_offline"))
    assert alert["count"] == "1" and "No engine worker is running" in alert["reason"]
    offline = ENGINE_OFFLINE_TOTAL.labels("slack")._value.get()
    await dispatch(app, command_body("/ask-private", "Still nobody?"))
    await fake.wait_for(lambda: len(ephemerals(fake)) == 2)
    assert ephemerals(fake)[1] == f":warning: {OFFLINE}"
    assert ENGINE_OFFLINE_TOTAL.labels("slack")._value.get() == offline + 1
    assert (await redis.hgetall(Keys(key_prefix).alerts("engine_offline")))["count"] == "2"


async def test_engine_timeout_updates_the_placeholder(
    make_app: AppFactory,
    fake: FakeSlack,
    redis: aioredis.Redis,
    key_prefix: str,
    generator: Generator,
) -> None:
    # A worker that reported in (and made the consumer group) but never takes the job.
    keys = Keys(key_prefix)
    await redis.set(keys.worker_health("ghost"), "1", ex=60)
    await redis.xgroup_create(keys.jobs, CONSUMER_GROUP, id="0", mkstream=True)
    chat = workerless_service(
        redis, key_prefix, generator, first_chunk_timeout_s=1.0, poll_block_ms=300
    )
    app = make_app(chat, edit_interval_s=0.2)
    await dispatch(app, command_body("/ask", "Hello?"))
    final = await fake.wait_for(lambda: final_answer(fake), what="the timeout in the placeholder")
    assert final["text"] == ":warning: No engine worker took the question in time."
    shown = [u.params["text"] for u in fake.calls_to("chat.update")]
    assert any(t.startswith("Queued, next…") for t in shown), shown


async def test_unknown_command_is_answered_politely(
    make_app: AppFactory, idle: ChatService, fake: FakeSlack
) -> None:
    response = await dispatch(make_app(idle), command_body("/weather", "tomorrow"))
    assert response.status == 200
    assert "Sorry, I don't know `/weather`" in str(response.body)
    assert "/ask" in str(response.body)


async def test_malformed_payloads_are_answered_politely(
    make_app: AppFactory, idle: ChatService, fake: FakeSlack, redis: aioredis.Redis, key_prefix: str
) -> None:
    app = make_app(idle)
    body = command_body("/ask", "no channel")
    del body["channel_id"]
    response = await dispatch(app, body)
    assert response.status == 200
    assert "incomplete (no channel_id)" in str(response.body)

    for event in (
        {"type": "message", "text": "no user, no channel", "ts": "1.1"},
        {"type": "app_mention", "text": f"<@{BOT_USER}> hi", "ts": "1.2"},
    ):
        assert (await dispatch_and_finish(app, event_envelope(event), kind="json")).status == 200

    stop = block_action("stop_answer", "", message_ts="1.3")
    assert (await dispatch_and_finish(app, stop, kind="payload")).status == 200
    shortcut = message_action({"ts": "1.4", "text": "x"})
    del shortcut["message"]
    assert (await dispatch(app, shortcut, kind="payload")).status == 200
    reply = await fake.wait_for(lambda: ephemerals(fake))
    assert reply == ["Sorry, Slack sent no message with that shortcut; nothing was added."]
    unknown = {**message_action({"ts": "1.5", "text": "x"}), "callback_id": "mystery"}
    assert (await dispatch(app, unknown, kind="payload")).status == 200
    await fake.wait_for(lambda: len(ephemerals(fake)) == 2)
    assert ephemerals(fake)[1].startswith("Sorry, I don't know that shortcut.")

    assert [c.method for c in fake.calls_to("chat.postMessage")] == []
    assert await no_jobs(redis, key_prefix)


async def test_empty_questions_get_usage(
    make_app: AppFactory, idle: ChatService, fake: FakeSlack
) -> None:
    app = make_app(idle)
    await dispatch(app, command_body("/ask", "   "))
    mention = fake.user_message("C1", f"<@{BOT_USER}>")
    await dispatch(app, event_envelope(mention_event(mention)), kind="json")
    replies = await fake.wait_for(lambda: len(ephemerals(fake)) == 2 and ephemerals(fake))
    assert sorted(replies) == [
        "Ask me something after the mention.",
        "Usage: `/ask your question`, e.g. `/ask What is the capital of France?`",
    ]
    assert fake.calls_to("chat.postMessage") == []


@pytest.mark.parametrize(
    ("settings", "refusal"),
    [
        ({"channel_ids": ["C2"]}, "Sorry, this app is not enabled in this channel."),
        ({"team_ids": ["T0OTHER"]}, "Sorry, this app is not enabled in this workspace."),
    ],
)
async def test_access_rules(
    make_app: AppFactory,
    idle: ChatService,
    fake: FakeSlack,
    redis: aioredis.Redis,
    key_prefix: str,
    settings: dict[str, list[str]],
    refusal: str,
) -> None:
    app = make_app(idle, **settings)
    for command in ("/ask", "/context", "/ask-mode", "/ask-reset"):
        response = await dispatch(app, command_body(command, "hello"))
        assert response.status == 200 and refusal in str(response.body)
    mention = fake.user_message("C1", f"<@{BOT_USER}> hello")
    await dispatch_and_finish(app, event_envelope(mention_event(mention)), kind="json")
    shortcut = message_action(fake.user_message("C1", "doc"), response_url=fake.response_url())
    await dispatch_and_finish(app, shortcut, kind="payload")
    assert ephemerals(fake) == [refusal]
    assert fake.calls_to("chat.postMessage") == []
    assert await no_jobs(redis, key_prefix)
    assert [k async for k in redis.scan_iter(f"{key_prefix}:conv:*")] == []


async def test_private_channel_without_the_bot_gets_an_invite_hint(
    make_app: AppFactory, idle: ChatService, fake: FakeSlack, redis: aioredis.Redis, key_prefix: str
) -> None:
    hook = fake.response_url()
    body = command_body("/ask", "hi", channel="CPRIV", channel_name="secret", response_url=hook)
    await dispatch(make_app(idle), body)
    replies = await fake.wait_for(lambda: fake.calls_to("response_url"))
    assert replies[0].params["text"].startswith("I can't post in this channel: invite me first")
    assert replies[0].params["response_type"] == "ephemeral"
    assert fake.calls_to("chat.postMessage")[0].params["channel"] == "CPRIV"
    assert await no_jobs(redis, key_prefix)


async def test_direct_messages_follow_the_setting(
    make_app: AppFactory, idle: ChatService, fake: FakeSlack, service: ChatService
) -> None:
    question = fake.user_message("D1", "Hi bot, what is 2 + 2?")
    await dispatch(make_app(idle), event_envelope(question), kind="json")
    await fake.wait_for(lambda: ephemerals(fake))
    assert ephemerals(fake) == ["Sorry, I don't answer direct messages."]
    assert fake.calls_to("chat.postMessage") == []

    await dispatch(make_app(service, allow_dms=True), event_envelope(question), kind="json")
    posts = await fake.wait_for(lambda: fake.calls_to("chat.postMessage"))
    assert posts[0].params["channel"] == "D1" and "thread_ts" not in posts[0].params
    await fake.wait_for(lambda: final_answer(fake, "D1") is not None)
    history = await service.store.history(ConversationKey("slack", TEAM, "D1", ""))
    assert [t.user for t in history] == ["Hi bot, what is 2 + 2?"]


async def test_context_files_refused_with_reasons(
    make_app: AppFactory, idle: ChatService, fake: FakeSlack, service: ChatService
) -> None:
    app = make_app(idle, max_file_bytes=64)
    await dispatch(app, command_body("/context", "Docs"))
    await fake.wait_for(lambda: fake.calls_to("chat.postMessage"))
    thread = next(iter(fake.messages["C1"]))
    await thread_linked(idle, "C1", thread)
    photo = fake.add_file("photo.png", b"\x89PNG\r\n", "image/png")
    big = fake.add_file("big.txt", b"x " * 100)
    latin = fake.add_file("latin.txt", "café".encode("latin-1"))
    elsewhere = {**fake.add_file("far.txt", b"hello"), "url_private": "http://localhost:1/f.txt"}
    elsewhere.pop("url_private_download")
    message = fake.user_message("C1", "", thread_ts=thread, files=[photo, big, latin, elsewhere])
    started = time.monotonic()
    assert (await dispatch(app, event_envelope(message), kind="json")).status == 200
    assert time.monotonic() - started < 3.0
    (reply,) = await fake.wait_for(lambda: ephemerals(fake))
    assert reply.splitlines() == [
        ":warning: photo.png: only text files (.txt, .md, …) can become context.",
        ":warning: big.txt: too large (the limit is 64 bytes).",
        ":warning: latin.txt: not UTF-8 text.",
        ":warning: far.txt: could not download it (untrusted_url).",
    ]
    # The bot token went only to the fake Slack, for the one file it fetched.
    assert [c.params["file"] for c in fake.calls_to("files.download")] == [latin["id"]]
    assert await service.store.blocks(ConversationKey("slack", TEAM, "C1", thread)) == []
