"""What the Slack app tests share: the fake Slack, a Web API client on it, the app built on a
chat service, signed requests dispatched to it, and reading back what the bot posted.

A test module takes the fixtures in by assignment, ``fake = slack_fixtures.fake`` (an import of
the names would be flagged as shadowed by every test's parameters).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from airoboros_bot.bots.core.ratelimit import RateLimiter
from airoboros_bot.bots.core.service import ChatService
from airoboros_bot.bots.games import GameEngine
from airoboros_bot.bots.slack.app import build_slack_app
from airoboros_bot.config.keys import Keys
from airoboros_bot.config.settings import SlackSettings
from tests.fakes.slack import BOT_USER, FakeSlack, signed_request

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"

AppFactory = Callable[..., AsyncApp]


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    """The fake Slack Web API (and Socket Mode) server."""
    server = await FakeSlack().start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
def client(fake: FakeSlack) -> AsyncWebClient:
    """slack_sdk's Web API client with the bot token, calling the fake."""
    return AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)


@pytest.fixture
def make_app(
    fake: FakeSlack, client: AsyncWebClient, redis: aioredis.Redis, key_prefix: str
) -> AppFactory:
    """Build the app on a chat service (and a game engine), signed with `SECRET`, with
    settings overrides."""

    def build(chat: ChatService, games: GameEngine | None = None, **settings: Any) -> AsyncApp:
        slack = SlackSettings(
            bot_token=fake.bot_token, signing_secret=SECRET, api_base_url=fake.api_url, **settings
        )
        limiter = RateLimiter(redis, key_prefix, slack.rate_limit_per_minute)
        return build_slack_app(chat, limiter, slack, client, games=games)

    return build


async def dispatch(app: AsyncApp, body: dict[str, Any], *, kind: str = "form") -> BoltResponse:
    """Hand ``body`` to the app as Slack would send it, signed with `SECRET`."""
    raw, headers = signed_request(body, SECRET, kind=kind)
    return await app.async_dispatch(AsyncBoltRequest(body=raw, headers=headers))


async def dispatch_and_finish(
    app: AsyncApp, body: dict[str, Any], *, kind: str = "form", timeout: float = 30.0
) -> BoltResponse:
    """`dispatch`, then wait until the listener it started is done.

    bolt acks first and runs the listener as a task, so what the app does about ``body`` (or
    that it does nothing) is only all visible once that task has finished.
    """
    before = asyncio.all_tasks()
    response = await dispatch(app, body, kind=kind)
    listeners = {
        task
        for task in asyncio.all_tasks() - before
        if "run_ack_function" in getattr(task.get_coro(), "__qualname__", "")
    }
    if listeners:
        _, pending = await asyncio.wait(listeners, timeout=timeout)
        assert not pending, "a listener did not finish in time"
    return response


async def job_outputs(redis: aioredis.Redis, key_prefix: str) -> list[str]:
    """Reply streams of every job submitted so far (done jobs leave the job stream)."""
    return [k async for k in redis.scan_iter(Keys(key_prefix).job_output("*"))]


def ephemerals(fake: FakeSlack, user: str = "U1") -> list[str]:
    """The texts of the private replies to ``user``, in order."""
    return [
        c.params["text"] for c in fake.calls_to("chat.postEphemeral") if c.params["user"] == user
    ]


def is_final(message: dict[str, Any]) -> bool:
    """Whether the bot is done with a message: edited, no writing marker, no Stop button."""
    blocks = message.get("blocks") or []
    return (
        "edited" in message
        and not message["text"].endswith("▌")
        and all(b["type"] != "actions" for b in blocks)
    )


def final_answer(fake: FakeSlack, channel: str = "C1") -> dict[str, Any] | None:
    """The first of the bot's messages in ``channel`` that the bot is done with."""
    for message in fake.messages[channel].values():
        if message["user"] == BOT_USER and is_final(message):
            return message
    return None
