"""What the Discord bot tests share: the fake Discord server and its guild, the bot logged in
against it, conversation keys, waiting for an answer to be complete, and a model that notes the
prompts it is given (and may answer from a script).

A test module takes the fixtures in by assignment, ``fake, world = discord_fixtures.fake,
discord_fixtures.world`` (an import of the names would be flagged as shadowed by every test's
parameters); likewise ``start_bot`` and ``spied``.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from airoboros_bot.bots.core.ratelimit import RateLimiter
from airoboros_bot.bots.core.render import WRITING_MARKER
from airoboros_bot.bots.core.service import ChatService
from airoboros_bot.bots.discord.client import AiroborosBot, build_discord_bot
from airoboros_bot.bots.games import GameEngine
from airoboros_bot.config.keys import Keys
from airoboros_bot.config.settings import DiscordSettings, EngineSettings
from airoboros_bot.conversations.models import ConversationKey
from airoboros_bot.engine.generator import Generator, LiveTokens, OnToken, SamplingParams
from tests.bots.running_service import service_on_worker
from tests.fakes.discord import (
    EPHEMERAL,
    LOADING,
    FakeDiscord,
    Recorded,
    World,
    discord_api,
    logged_in,
    make_world,
)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    """The fake Discord REST server, with discord.py's routes pointed at it."""
    server = await FakeDiscord().start()
    try:
        async with discord_api(server):
            yield server
    finally:
        await server.close()


@pytest.fixture
def world(fake: FakeDiscord) -> World:
    """A guild with two channels and two users on the fake server."""
    return make_world(fake)


@asynccontextmanager
async def running_bot(
    fake: FakeDiscord,
    world: World,
    service: ChatService,
    redis: aioredis.Redis,
    key_prefix: str,
    *,
    games: GameEngine | None = None,
    **options: object,
) -> AsyncIterator[AiroborosBot]:
    """The bot on ``service`` (with ``games``, when given) and `DiscordSettings` ``options``,
    logged in to the fake."""
    settings = DiscordSettings(**options)  # type: ignore[arg-type]
    limiter = RateLimiter(redis, key_prefix, settings.rate_limit_per_minute)
    bot = build_discord_bot(service, limiter, settings, games)
    async with logged_in(fake, bot, world):
        yield bot


BotStarter = Callable[..., AbstractAsyncContextManager[AiroborosBot]]


@pytest.fixture
def start_bot(
    fake: FakeDiscord, world: World, service: ChatService, redis: aioredis.Redis, key_prefix: str
) -> BotStarter:
    """`running_bot` on the test's fake, world, chat service and Redis:
    ``async with start_bot(**discord_settings) as bot``."""
    return functools.partial(running_bot, fake, world, service, redis, key_prefix)


class SpyModel(Generator):
    """The demo model, noting the text of every prompt it is given. With a ``script`` it
    answers that text (its tokens, streamed through the real worker) instead of generating:
    the tiny model never writes ``Source:`` lines of its own."""

    def __init__(self, model_dir: Path) -> None:
        super().__init__(model_dir, device="cpu")
        self.prompts: list[str] = []
        self.script: str | None = None

    def generate(
        self,
        prompts: list[list[str]],
        max_new_tokens: list[int],
        sampling: SamplingParams,
        on_token: OnToken | None = None,
        seed: int | None = None,
        *,
        live: LiveTokens | None = None,
    ) -> list[list[int]]:
        hf = self.tokenizer._tokenizer
        for prompt in prompts:
            self.prompts.append(self.tokenizer.decode([hf.token_to_id(t) for t in prompt]))
        if self.script is None:
            return super().generate(prompts, max_new_tokens, sampling, on_token, seed, live=live)
        answers = []
        for index, limit in enumerate(max_new_tokens):
            ids = hf.encode(self.script, add_special_tokens=False).ids[:limit]
            if live is not None:  # as the worker reads them: appended to its lists
                for token_id in ids:
                    if live.stop[index]:
                        break
                    live.ids[index].append(token_id)
                    if len(live.ids[index]) == 1 and live.on_first_token is not None:
                        live.on_first_token()
                answers.append(live.ids[index])
                continue
            for token_id in ids:
                if on_token is not None and on_token(index, token_id):
                    break
            answers.append(ids)
        return answers

    def prompt_with(self, question: str) -> str:
        """The prompt that asked ``question`` (the last one)."""
        [*_, prompt] = [p for p in self.prompts if question in p]
        return prompt


@dataclass
class Spied:
    """A chat service whose worker runs a `SpyModel`."""

    service: ChatService
    model: SpyModel


@pytest.fixture
async def spied(
    redis: aioredis.Redis, key_prefix: str, demo_model_dir: Path
) -> AsyncIterator[Spied]:
    """The chat service on a real worker whose model is a `SpyModel` (answers of up to 128
    tokens, so a script fits)."""
    keys = Keys(key_prefix)
    model = SpyModel(demo_model_dir)
    settings = EngineSettings(batch_wait_ms=10, heartbeat_s=0.5, max_new_tokens=128)
    try:
        async with service_on_worker(redis, keys, model, settings, "spy") as service:
            yield Spied(service, model)
    finally:
        model.close()


def key(world: World, channel: dict, thread: str = "") -> ConversationKey:
    """The conversation of a channel (or of one of its threads) in the world's guild."""
    return ConversationKey("discord", world.guild["id"], channel["id"], thread)


def original_edits(fake: FakeDiscord, payload: dict) -> list[Recorded]:
    """The edits of an interaction's original response, in order."""
    return [
        r
        for r in fake.interaction_calls(payload)
        if r.method == "PATCH" and r.path.endswith("/@original")
    ]


def callback(fake: FakeDiscord, payload: dict) -> dict:
    """The body of the bot's one callback to an interaction."""
    [call] = [r for r in fake.interaction_calls(payload) if r.path.endswith("/callback")]
    return call.json


async def ephemeral_reply(fake: FakeDiscord, payload: dict) -> str:
    """Wait for an ephemeral callback message; return its content."""
    await fake.wait_for(lambda: fake.interactions[payload["token"]].acknowledged, 10)
    body = callback(fake, payload)
    assert body["type"] == 4, body
    assert body["data"]["flags"] & EPHEMERAL
    return body["data"]["content"]


def replies_to(fake: FakeDiscord, message: dict) -> list[dict]:
    """The bot's replies to a message (the first page of its answers to it)."""
    return [
        m
        for m in fake.channel_messages(message["channel_id"], fake.bot_user["id"])
        if str((m.get("message_reference") or {}).get("message_id")) == message["id"]
    ]


async def written_answer(fake: FakeDiscord, bot: AiroborosBot, payload: dict) -> dict:
    """Wait until the interaction's original response holds a complete answer; return it."""

    def done() -> dict | None:
        message = fake.original(payload)
        content = message.get("content", "")
        if not content or message["flags"] & LOADING or content.endswith(WRITING_MARKER):
            return None
        return message

    await fake.wait_for(done, 30, "the final answer")
    assert await bot.running.wait_idle(10)
    return fake.original(payload)
