"""The Slack app: slack-bolt (asyncio) listeners over `SlackChat`, Socket Mode or HTTP mode.

Listeners ack first (within Slack's 3 s) and then do the work; the logic lives in
`bots/slack/chat.py`. A global middleware drops events Slack delivers again (same event_id,
``X-Slack-Retry-Num``), in HTTP and Socket Mode alike, for every process sharing Redis. With
`bots/slack/web.py` (the Web API calls) and `bots/slack/serve.py` (serving HTTP or Socket
Mode), the modules of the Slack adapter that import slack_bolt / slack_sdk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from prometheus_client import start_http_server
from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from airoboros_bot.bots.core.alerts import REGISTRY as ALERT_METRICS
from airoboros_bot.bots.core.deliveries import Deliveries
from airoboros_bot.bots.core.ratelimit import RateLimiter
from airoboros_bot.bots.core.runtime import Runtime
from airoboros_bot.bots.core.service import ChatService
from airoboros_bot.bots.games import GameEngine
from airoboros_bot.bots.slack.api import Origin, SlackApi, reply_privately
from airoboros_bot.bots.slack.chat import SlackChat
from airoboros_bot.bots.slack.format import (
    ADD_CONTEXT_CALLBACK,
    COMMANDS_HINT,
    CONTEXT_CHOICES,
    STOP_ACTION,
)
from airoboros_bot.bots.slack.game_format import NO_GAMES, SLACK_GAME_COMMANDS
from airoboros_bot.bots.slack.game_output import ChannelPacer, SlackGameOutput
from airoboros_bot.bots.slack.games import SlackGames
from airoboros_bot.bots.slack.home import home_view
from airoboros_bot.bots.slack.serve import run_http, run_socket_mode, serve_http
from airoboros_bot.bots.slack.threads import PLATFORM
from airoboros_bot.bots.slack.web import WebApi
from airoboros_bot.config.errors import AiroborosError
from airoboros_bot.config.settings import SlackSettings

__all__ = ["build_slack_app", "missing_settings", "run_slack", "serve_http"]

log = logging.getLogger(__name__)

# A message event's handler: (event, team id, the bot's user id).
EventHandler = Callable[[Mapping[str, Any], str, str | None], Awaitable[None]]
# The games' look at the same event first: True when it was theirs.
EventPlay = Callable[[Mapping[str, Any], str, str | None], Awaitable[bool]]

SORRY = "Sorry, something went wrong on my side; it has been logged. Please try again."


def _payload_origin(body: Mapping[str, Any]) -> Origin | None:
    try:
        team, channel, user = body["team"]["id"], body["channel"]["id"], body["user"]["id"]
    except (KeyError, TypeError):
        return None
    return Origin(team, channel, user, response_url=body.get("response_url") or None)


async def _guard(api: SlackApi, origin: Origin | None, work: Awaitable[None], what: str) -> None:
    """Run work done after the ack; errors are logged and told to the user privately."""
    try:
        await work
    except AiroborosError as exc:
        log.info("%s: %s", what, exc.user_message)
        if origin is not None:
            await reply_privately(api, origin, exc.user_message)
    except Exception:
        log.exception("%s failed", what)
        if origin is not None:
            await reply_privately(api, origin, SORRY)


def build_slack_app(
    service: ChatService,
    limiter: RateLimiter,
    settings: SlackSettings,
    client: AsyncWebClient,
    *,
    clock: Callable[[], float] = time.monotonic,
    games: GameEngine | None = None,
) -> AsyncApp:
    """The bolt app for ``service``; Web API calls go through ``client`` (its base_url).

    With ``games``, the app plays trivia and word games: the engine's messages are posted in
    Slack (it is attached here) and ``/trivia``, ``/anagram``, ``/words`` drive it.
    """
    # Socket Mode needs no signing secret; a random one keeps HTTP requests out all the same.
    secret = settings.signing_secret.get_secret_value() if settings.signing_secret else ""
    app = AsyncApp(
        client=client,
        signing_secret=secret or secrets.token_hex(32),
        name="airoboros-bot",
        logger=logging.getLogger("slack_bolt.airoboros"),
    )
    api = WebApi(client)
    chat = SlackChat(service, limiter, settings, api, clock=clock)
    _register_dedupe(app, service, settings)

    def command(name: str, run: Callable[[Mapping[str, Any], AsyncBoltContext], Awaitable[None]]):
        async def listener(ack, body: dict, context: AsyncBoltContext) -> None:
            refusal = chat.check_command(body)
            await ack(refusal or "")
            if refusal is None:
                await _guard(api, chat.command_origin(body), run(body, context), name)

        app.command(name)(listener)

    command("/ask", lambda body, _: chat.ask_command(body))
    command("/ask-private", lambda body, _: chat.ask_private_command(body))
    command("/ask-mode", lambda body, _: chat.mode_command(body))
    command("/ask-reset", lambda body, _: chat.reset_command(body))
    command("/context", lambda body, ctx: chat.context_command(body, ctx.bot_user_id))
    players = _register_games(app, api, chat, settings, games)

    def on_event(name: str, handle: EventHandler, play: EventPlay | None) -> None:
        async def both(event: Mapping[str, Any], team: str, bot: str | None) -> None:
            if play is None or not await play(event, team, bot):
                await handle(event, team, bot)

        async def listener(body: dict, event: dict, context: AsyncBoltContext) -> None:
            team = body.get("team_id") or context.team_id or ""
            await _guard(api, None, both(event, team, context.bot_user_id), name)

        app.event(name)(listener)

    on_event("app_mention", chat.mention, players.mention if players else None)
    on_event("message", chat.message, players.message if players else None)

    @app.action(STOP_ACTION)
    async def on_stop(ack, body: dict) -> None:
        await ack()
        await _guard(api, _payload_origin(body), chat.stop(body), "stop")

    async def on_context_choice(ack, body: dict, action: dict, context: AsyncBoltContext) -> None:
        await ack()
        work = chat.documents.choose(body, str(action.get("action_id")), context.bot_user_id)
        await _guard(api, _payload_origin(body), work, "context choice")

    for choice in CONTEXT_CHOICES:
        app.action(choice)(on_context_choice)

    @app.event("app_home_opened")
    async def on_home(body: dict, event: dict, context: AsyncBoltContext) -> None:
        user, team = event.get("user"), body.get("team_id") or context.team_id or ""
        if event.get("tab", "home") != "home" or not isinstance(user, str):
            return
        if settings.team_ids and team not in settings.team_ids:
            return

        async def publish() -> None:
            view = await home_view(
                service, limiter, api, settings, team, user, await chat.is_admin(user)
            )
            await api.publish_home(user, view)

        await _guard(api, None, publish(), "app home")

    @app.shortcut(ADD_CONTEXT_CALLBACK)
    async def on_add_context(ack, body: dict) -> None:
        await ack()
        origin = _payload_origin(body)
        if origin is not None and (refusal := chat.access_error(origin.team, origin.channel)):
            await reply_privately(api, origin, refusal)
            return
        await _guard(api, origin, chat.documents.shortcut(body), "add as context")

    _register_fallbacks(app, api)
    return app


def _register_dedupe(app: AsyncApp, service: ChatService | None, settings: SlackSettings) -> None:
    """Drop an Events API delivery whose event_id was handled already (Slack retries)."""
    deliveries: list[Deliveries] = []

    @app.middleware
    async def dedupe(body: dict, request, next) -> BoltResponse | None:
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if isinstance(event_id, str) and event_id and service is not None:
            if not deliveries:
                store = service.store
                deliveries.append(
                    Deliveries(store.redis, store.keys, "slack", settings.event_dedupe_ttl_s)
                )
            team = str(body.get("team_id") or "")
            if not await deliveries[0].first(f"{team}:{event_id}"):
                retry = (request.headers.get("x-slack-retry-num") or ["?"])[0]
                log.info("dropped event %s delivered again (retry %s)", event_id, retry)
                return BoltResponse(status=200, body="")
        await next()
        return None


def _register_games(
    app: AsyncApp,
    api: SlackApi,
    chat: SlackChat,
    settings: SlackSettings,
    games: GameEngine | None,
) -> SlackGames | None:
    """``/trivia``, ``/anagram`` and ``/words`` (refused politely when games are off)."""
    players = None
    if games is not None:
        output = SlackGameOutput(api, ChannelPacer(settings.game_post_interval_s))
        games.attach(output, SLACK_GAME_COMMANDS)
        players = SlackGames(games, chat, output)

    async def listener(ack, body: dict) -> None:
        refusal = players.check_command(body) if players else chat.check_command(body)
        await ack(refusal or "")
        if refusal is None:
            origin = chat.command_origin(body)
            work = players.command(body) if players else reply_privately(api, origin, NO_GAMES)
            await _guard(api, origin, work, str(body.get("command")))

    for name in ("/trivia", "/anagram", "/words"):
        app.command(name)(listener)
    return players


def _register_fallbacks(app: AsyncApp, api: SlackApi) -> None:
    """Polite answers for whatever the app does not know, and a last-resort error handler."""
    anything = re.compile(".*")

    @app.command(anything)
    async def unknown_command(ack, body: dict) -> None:
        name = str(body.get("command") or "that command")
        log.warning("unknown slash command %s", name)
        await ack(f"Sorry, I don't know `{name}`. {COMMANDS_HINT}")

    @app.shortcut(anything)
    async def unknown_shortcut(ack, body: dict) -> None:
        await ack()
        log.warning("unknown shortcut %s", body.get("callback_id"))
        origin = _payload_origin(body)
        if origin is not None:
            await reply_privately(
                api, origin, f"Sorry, I don't know that shortcut. {COMMANDS_HINT}"
            )

    @app.action(anything)
    async def unknown_action(ack, body: dict) -> None:
        await ack()
        log.warning("unknown block action in %s", body.get("type"))

    @app.view(anything)
    async def unknown_view(ack) -> None:
        await ack()

    @app.event(anything)
    async def other_event(event: dict) -> None:
        log.debug("ignored event %s", event.get("type"))

    @app.error
    async def on_error(error: Exception) -> BoltResponse:
        if isinstance(error, AiroborosError):
            log.info("request refused: %s", error)
            return BoltResponse(status=200, body=error.user_message)
        log.error("unhandled error in a Slack listener", exc_info=error)
        return BoltResponse(status=200, body=SORRY)


def missing_settings(settings: SlackSettings, http: bool) -> str | None:
    """The first secret the chosen mode needs that is not set, as a one-line message."""
    needed = [("bot_token", "AIROBOROS_SLACK_BOT_TOKEN")]
    if http:
        needed.append(("signing_secret", "AIROBOROS_SLACK_SIGNING_SECRET"))
    else:
        needed.append(("app_token", "AIROBOROS_SLACK_APP_TOKEN"))
    for field, variable in needed:
        value = getattr(settings, field)
        if value is None or not value.get_secret_value().strip():
            mode = "HTTP mode" if http else "Socket Mode"
            return f"{variable} is not set (needed by the Slack app in {mode}; see README)"
    return None


async def run_slack(runtime: Runtime, *, http: bool, port: int) -> int:
    """Run the Slack app until SIGINT / SIGTERM; returns the exit code.

    Socket Mode (the default) connects out with the app-level token; HTTP mode serves
    ``http_host:port`` + ``http_path`` and verifies every request with the signing secret.
    """
    settings = runtime.settings.slack
    missing = missing_settings(settings, http)
    if missing:
        print(f"airoboros-bot: {missing}", file=sys.stderr)
        return 2
    assert settings.bot_token is not None and runtime.redis is not None
    # 429s are handled by WebApi (Retry-After honoured; chat.update paced by the sink).
    client = AsyncWebClient(
        token=settings.bot_token.get_secret_value(), base_url=settings.api_base_url
    )
    try:
        identity = await client.auth_test()
    except SlackApiError as exc:
        print(
            f"airoboros-bot: Slack refused AIROBOROS_SLACK_BOT_TOKEN ({exc.response.get('error')})",
            file=sys.stderr,
        )
        return 1
    except (aiohttp.ClientError, TimeoutError) as exc:
        print(f"airoboros-bot: cannot reach {settings.api_base_url} ({exc})", file=sys.stderr)
        return 1
    log.info("Slack: workspace %s, bot @%s", identity.get("team"), identity.get("user"))
    if settings.metrics_port:
        start_http_server(settings.metrics_port, registry=ALERT_METRICS)
    limiter = RateLimiter(runtime.redis, runtime.keys.prefix, settings.rate_limit_per_minute)
    service = runtime.service()
    games = GameEngine(runtime.redis, runtime.keys, service, runtime.settings.games)
    app = build_slack_app(service, limiter, settings, client, games=games)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stopped.set)
            handled.append(sig)
    try:
        resumed = await games.resume_all(PLATFORM)
        if resumed:
            log.info("resumed %d game(s) in Slack channels", resumed)
        if http:
            return await run_http(app, settings, port, stopped)
        return await run_socket_mode(app, settings, client, stopped)
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await games.close()  # the games stay in Redis and resume at the next start
