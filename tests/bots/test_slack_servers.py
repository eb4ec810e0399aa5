"""``run_slack`` for real: HTTP mode through bolt's aiohttp server on 127.0.0.1 and Socket Mode
over a WebSocket, with signed requests, against the fake Slack and the real worker."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from airoboros_bot.bots.core.service import ChatService
from airoboros_bot.bots.slack.app import run_slack, serve_http
from airoboros_bot.config.keys import Keys
from airoboros_bot.config.settings import Settings
from airoboros_bot.conversations.models import ConversationKey
from tests.bots import slack_fixtures
from tests.bots.slack_fixtures import (
    SECRET,
    AppFactory,
    final_answer,
    free_port,
    is_final,
    job_outputs,
    opened,
    serving,
    stop_with_sigterm,
    wait_listening,
)
from tests.fakes.slack import (
    BOT_USER,
    FakeSlack,
    command_body,
    event_envelope,
    mention_event,
    signed_request,
)

fake, client, make_app = slack_fixtures.fake, slack_fixtures.client, slack_fixtures.make_app
settings = slack_fixtures.settings


@pytest.fixture
async def events_url(make_app: AppFactory, service: ChatService) -> AsyncIterator[str]:
    """The app on the chat service, served over HTTP on a free port: its events URL."""
    runner = await serve_http(make_app(service), "127.0.0.1", 0, "/slack/events", SECRET)
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    finally:
        await runner.cleanup()


async def test_http_mode_answers_signed_requests(
    settings: Settings, fake: FakeSlack, service: ChatService
) -> None:
    port = free_port()
    async with serving(settings, http=True, port=port) as task:
        await wait_listening(port, task)
        url = f"http://127.0.0.1:{port}/slack/events"
        raw, headers = signed_request(command_body("/ask", "Is the sky blue?"), SECRET)
        async with aiohttp.ClientSession() as http:
            started = time.monotonic()
            async with http.post(url, data=raw, headers=headers) as response:
                assert response.status == 200
            assert time.monotonic() - started < 3.0
        await fake.wait_for(lambda: final_answer(fake), what="the answer")
        assert fake.calls[0].method == "auth.test", "the token is checked at start"
        answer_ts = fake.calls_to("chat.update")[0].params["ts"]
        key = ConversationKey("slack", fake.team_id, "C1", answer_ts)
        history = await service.store.history(key)
        assert [t.user for t in history] == ["Is the sky blue?"]
        assert await stop_with_sigterm(task) == 0


@pytest.mark.parametrize("forgery", ["missing", "wrong", "stale", "garbage"])
async def test_forged_requests_get_401_and_change_nothing(
    forgery: str, fake: FakeSlack, events_url: str, redis: aioredis.Redis, key_prefix: str
) -> None:
    body = command_body("/ask", "Enqueue me")
    if forgery == "missing":
        raw, headers = signed_request(body, SECRET)
        del headers["x-slack-signature"]
    elif forgery == "wrong":
        raw, headers = signed_request(body, "not-the-secret")
    elif forgery == "stale":
        raw, headers = signed_request(body, SECRET, timestamp=int(time.time()) - 301)
    else:
        raw, headers = signed_request({"payload": "not json"}, "not-the-secret")
    async with aiohttp.ClientSession() as http:
        async with http.post(events_url, data=raw, headers=headers) as response:
            assert response.status == 401
        # The same request, signed now with the right secret, goes through.
        raw, headers = signed_request(body, SECRET, timestamp=int(time.time()) - 200)
        async with http.post(events_url, data=raw, headers=headers) as response:
            assert response.status == 200
    await fake.wait_for(lambda: final_answer(fake))
    outputs = await job_outputs(redis, key_prefix)
    assert len(outputs) == 1, "only the properly signed request was enqueued"


async def test_nothing_is_stored_for_a_forged_request(
    fake: FakeSlack, events_url: str, redis: aioredis.Redis, key_prefix: str
) -> None:
    async with aiohttp.ClientSession() as http:
        for body in (
            command_body("/context", "Forged"),
            command_body("/ask-mode", "no-history"),
        ):
            raw, headers = signed_request(body, "forged-secret")
            async with http.post(events_url, data=raw, headers=headers) as response:
                assert response.status == 401
        raw, headers = signed_request({"payload": "{not json"}, SECRET)
        async with http.post(events_url, data=raw, headers=headers) as response:
            assert response.status == 400
            assert "could not be read" in (await response.json())["text"]
    assert fake.calls == []
    assert [k async for k in redis.scan_iter(f"{key_prefix}:conv:*")] == []
    assert await job_outputs(redis, key_prefix) == []
    assert await redis.xlen(Keys(key_prefix).jobs) == 0


async def test_socket_mode_receives_envelopes_and_acks_them(
    settings: Settings, fake: FakeSlack, service: ChatService
) -> None:
    async with serving(settings, http=False) as task:
        envelope = await fake.send_envelope("slash_commands", command_body("/ask", "Hi there"))
        ack = await fake.wait_for(lambda: fake.socket_replies.get(envelope), timeout=3.0)
        assert ack == {"envelope_id": envelope}
        await fake.wait_for(lambda: final_answer(fake))
        opened = fake.calls_to("apps.connections.open")
        assert len(opened) == 1 and opened[0].token == fake.app_token

        mention = fake.user_message("C1", f"<@{BOT_USER}> and you?")
        event = event_envelope(mention_event(mention))
        first = await fake.send_envelope("events_api", event)
        # Slack re-delivers the same event (same event_id) with a new envelope.
        retried = await fake.send_envelope("events_api", event, retry_attempt=1)
        await fake.wait_for(lambda: fake.socket_replies.get(retried), timeout=3.0)
        assert fake.socket_replies.get(first), "both envelopes are acknowledged"
        reply = await fake.wait_for(
            lambda: [c for c in fake.calls_to("chat.postMessage") if c.params.get("thread_ts")]
        )
        assert reply[0].params["thread_ts"] == mention["ts"]
        thread_answer = ConversationKey("slack", fake.team_id, "C1", mention["ts"])
        await fake.wait_for(lambda: final_in_thread(fake, mention["ts"]))
        assert len(await service.store.history(thread_answer)) == 1
        posted = [c for c in fake.calls_to("chat.postMessage") if c.params.get("thread_ts")]
        assert len(posted) == 1, "the re-delivered event got no second answer"
        assert await stop_with_sigterm(task) == 0


def final_in_thread(fake: FakeSlack, thread: str) -> list[dict]:
    return [
        m
        for m in fake.messages["C1"].values()
        if m.get("thread_ts") == thread and m["user"] == BOT_USER and is_final(m)
    ]


async def test_a_signed_body_that_is_not_utf8_gets_400(
    fake: FakeSlack, events_url: str, redis: aioredis.Redis, key_prefix: str
) -> None:
    raw = b"token=x&text=caf\xe9&command=%2Fask&team_id=T0FAKE&channel_id=C1&user_id=U1"
    stamp = str(int(time.time()))
    signature = (
        "v0="
        + hmac.new(
            SECRET.encode(), b"v0:" + stamp.encode() + b":" + raw, hashlib.sha256
        ).hexdigest()
    )
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": stamp,
        "x-slack-signature": signature,
    }
    async with aiohttp.ClientSession() as http:
        async with http.post(events_url, data=raw, headers=headers) as response:
            assert response.status == 400
            assert "could not be read" in (await response.json())["text"]
        headers["x-slack-signature"] = "v0=" + "0" * 64
        async with http.post(events_url, data=raw, headers=headers) as response:
            assert response.status == 401, "the signature is checked first"
    assert fake.calls == []
    assert await job_outputs(redis, key_prefix) == []


@pytest.mark.parametrize(
    ("http", "unset", "variable"),
    [
        (False, "bot_token", "AIROBOROS_SLACK_BOT_TOKEN"),
        (False, "app_token", "AIROBOROS_SLACK_APP_TOKEN"),
        (True, "signing_secret", "AIROBOROS_SLACK_SIGNING_SECRET"),
    ],
)
async def test_missing_secrets_exit_2_naming_the_variable(
    settings: Settings,
    fake: FakeSlack,
    capsys: pytest.CaptureFixture[str],
    http: bool,
    unset: str,
    variable: str,
) -> None:
    settings.slack = settings.slack.model_copy(update={unset: None})
    async with opened(settings) as runtime:
        assert await run_slack(runtime, http=http, port=free_port()) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"airoboros-bot: {variable} is not set") and err.count("\n") == 1
    for secret in (fake.bot_token, fake.app_token, SECRET):
        assert secret not in err
    assert fake.calls == []


async def test_a_refused_token_exits_1_without_printing_it(
    settings: Settings, fake: FakeSlack, capsys: pytest.CaptureFixture[str]
) -> None:
    settings.slack = settings.slack.model_copy(update={"bot_token": SecretStr("xoxb-revoked")})
    async with opened(settings) as runtime:
        assert await run_slack(runtime, http=False, port=0) == 1
    err = capsys.readouterr().err
    assert err == "airoboros-bot: Slack refused AIROBOROS_SLACK_BOT_TOKEN (invalid_auth)\n"
