"""The Discord bot's entry points: build it, or run it until it is stopped.

The bot is put together in `bots.discord.client` from its parts: `discord_core` (places, access,
admission), `discord_ask` (/ask, streaming, stop, continue in thread), `discord_context`
(context threads and blocks), `discord_commands` (the command tree, /mode, /reset),
`discord_games` (trivia and word games on a `airoboros_bot.bots.games.GameEngine`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

import discord

from airoboros_bot.bots.core.ratelimit import RateLimiter
from airoboros_bot.bots.core.runtime import Runtime
from airoboros_bot.bots.core.service import ChatService
from airoboros_bot.bots.discord.client import AiroborosBot
from airoboros_bot.bots.games import GameEngine
from airoboros_bot.config.settings import DiscordSettings

__all__ = ["AiroborosBot", "build_discord_bot", "build_game_engine", "run_discord"]


def build_discord_bot(
    service: ChatService,
    limiter: RateLimiter,
    settings: DiscordSettings,
    games: GameEngine | None = None,
) -> AiroborosBot:
    """The bot, not yet logged in: `login()` syncs the commands, `connect()` opens the gateway.

    With ``games`` it has the game commands and posts that engine's messages; it resumes the
    stored Discord games once connected and stops their loops when closed.
    """
    return AiroborosBot(service, limiter, settings, games)


def build_game_engine(runtime: Runtime, service: ChatService) -> GameEngine:
    """The games of the bot, on the runtime's Redis and game settings."""
    assert runtime.redis is not None, "open the runtime first"
    return GameEngine(runtime.redis, runtime.keys, service, runtime.settings.games)


async def run_discord(runtime: Runtime) -> int:
    """Run the bot until it is stopped (SIGINT / SIGTERM); returns the exit code.

    2: no token set; 1: Discord refused the token or the Message Content intent is off.
    """
    settings = runtime.settings.discord
    token = settings.token.get_secret_value().strip() if settings.token else ""
    if not token:
        print(
            "airoboros-bot: AIROBOROS_DISCORD_TOKEN is not set: put your bot's token from the "
            "Discord developer portal in it (see README, Discord).",
            file=sys.stderr,
        )
        return 2
    assert runtime.redis is not None, "open the runtime first"
    limiter = RateLimiter(runtime.redis, runtime.keys.prefix, settings.rate_limit_per_minute)
    service = runtime.service()
    bot = build_discord_bot(service, limiter, settings, build_game_engine(runtime, service))
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, lambda: stopping.append(loop.create_task(bot.close())))
    try:
        async with bot:
            await bot.start(token)
    except discord.LoginFailure:
        print(
            "airoboros-bot: Discord refused the token in AIROBOROS_DISCORD_TOKEN: copy it again "
            "from the developer portal (Bot, Reset Token).",
            file=sys.stderr,
        )
        return 1
    except discord.PrivilegedIntentsRequired:
        print(
            "airoboros-bot: enable the Message Content intent for the bot in the Discord "
            "developer portal (Bot, Privileged Gateway Intents) and start again.",
            file=sys.stderr,
        )
        return 1
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        if stopping:
            await asyncio.gather(*stopping, return_exceptions=True)
    return 0
