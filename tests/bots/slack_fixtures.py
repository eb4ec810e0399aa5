"""What the Slack app tests share: the fake Slack, a Web API client on it, the app built on a
chat service, signed requests dispatched to it, and reading back what the bot posted.

A test module takes the fixtures in by assignment, ``fake = slack_fixtures.fake`` (an import of
the names would be flagged as shadowed by every test's parameters).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from airoboros_bot.bots.core.ratelimit import RateLimiter
from airoboros_bot.bots.core.runtime import Runtime
from airoboros_bot.bots.core.service import ChatService
from airoboros_bot.bots.games import GameEngine
from airoboros_bot.bots.slack.app import build_slack_app, run_slack
from airoboros_bot.config.keys import Keys
from airoboros_bot.config.settings import EngineSettings, RedisSettings, Settings, SlackSettings
from airoboros_bot.conversations.models import ConversationKey
from tests.fakes.slack import BOT_USER, TEAM, FakeSlack, signed_request

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


async def dispatch(
    app: AsyncApp, body: dict[str, Any], *, kind: str = "form", retry_num: int = 0
) -> BoltResponse:
    """Hand ``body`` to the app as Slack would send it, signed with `SECRET` (``retry_num``:
    as Slack sends it again)."""
    raw, headers = signed_request(body, SECRET, kind=kind, retry_num=retry_num)
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
    return [k async for k in redis.scan_iter(Keys(key_prefix).job_output_pattern)]


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


async def thread_linked(service: ChatService, channel: str, ts: str, timeout: float = 10) -> None:
    """Wait until the bot has linked thread ``ts`` to its conversation (it does so right after
    posting the thread's first message)."""
    ref = ConversationKey("slack", TEAM, channel, ts)
    deadline = time.monotonic() + timeout
    while await service.conversation_of(ref) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"thread {ts} was never linked")
        await asyncio.sleep(0.02)


def bot_messages(fake: FakeSlack, channel: str = "C1") -> list[dict[str, Any]]:
    """The bot's messages in ``channel``, oldest first."""
    return sorted(
        (m for m in fake.messages[channel].values() if m["user"] == BOT_USER),
        key=lambda m: m["ts"],
    )


# -- run_slack: the whole command, served for real ------------------------------------------------
@pytest.fixture
def settings(
    fake: FakeSlack, redis_url: str, key_prefix: str, demo_model_dir: Path, tmp_path: Path
) -> Settings:
    """Settings for `run_slack` against the fake, on the test's Redis and the demo model."""
    return Settings(
        data_dir=tmp_path,
        redis=RedisSettings(url=redis_url, key_prefix=key_prefix),
        engine=EngineSettings(model_dir=demo_model_dir, max_new_tokens=16),
        slack=SlackSettings(
            bot_token=fake.bot_token,
            app_token=fake.app_token,
            signing_secret=SECRET,
            api_base_url=fake.api_url,
            http_host="127.0.0.1",
        ),
    )


@asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[Runtime]:
    """The runtime of ``settings``, open for the duration."""
    runtime = await Runtime(settings).open()
    try:
        yield runtime
    finally:
        await runtime.close()


@asynccontextmanager
async def serving(settings: Settings, *, http: bool, port: int = 0) -> AsyncIterator[asyncio.Task]:
    """`run_slack` running as a task (cancelled after, if it is still running)."""
    async with opened(settings) as runtime:
        task = asyncio.create_task(run_slack(runtime, http=http, port=port))
        try:
            yield task
        finally:
            if not task.done():
                task.cancel()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_listening(port: int, task: asyncio.Task[int], timeout: float = 20) -> None:
    """Wait until the HTTP server accepts connections (fails if `run_slack` ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if task.done():
            raise AssertionError(f"run_slack ended early with {task.result()}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise AssertionError("the HTTP server did not start")


async def stop_with_sigterm(task: asyncio.Task[int]) -> int:
    """Stop `run_slack` as a service manager does; its exit code."""
    os.kill(os.getpid(), signal.SIGTERM)
    return await asyncio.wait_for(task, 20)
