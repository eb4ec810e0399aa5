"""The Slack app: slack-bolt (asyncio) listeners over `SlackChat`, Socket Mode or HTTP mode.

The one module of the Slack adapter that imports slack_bolt / slack_sdk. Listeners ack first
(within Slack's 3 s) and then do the work; the logic lives in `bots/slack_chat.py`.
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
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bots.ratelimit import RateLimiter
from bots.runtime import Runtime
from bots.service import ChatService
from bots.slack_api import Origin, SlackCallFailed, reply_privately
from bots.slack_chat import SlackChat
from bots.slack_format import ADD_CONTEXT_CALLBACK, COMMANDS_HINT, STOP_ACTION
from config.settings import SlackSettings
from conversations.errors import ChatError
from engine.errors import EngineError

log = logging.getLogger(__name__)

SORRY = "Sorry, something went wrong on my side; it has been logged. Please try again."
TRUSTED_DOMAINS = ("slack.com", "slack-gov.com")
_CACHE_LIMIT = 5000


class WebApi:
    """`SlackApi` on slack_sdk's AsyncWebClient: Slack errors become `SlackCallFailed`."""

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client
        self._users: dict[str, str] = {}
        self._channels: dict[str, str] = {}
        self._api_host = urlsplit(client.base_url).hostname or ""

    async def _call(self, method: str, call: Awaitable[Any]) -> Any:
        try:
            return await call
        except SlackApiError as exc:
            raise SlackCallFailed(method, str(exc.response.get("error") or "unknown")) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SlackCallFailed(method, f"unreachable ({type(exc).__name__})") from None

    async def post_message(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        *,
        thread_ts: str | None = None,
    ) -> str:
        """chat.postMessage; returns the new message's ts."""
        reply = await self._call(
            "chat.postMessage",
            self.client.chat_postMessage(
                channel=channel, text=text, blocks=blocks, thread_ts=thread_ts, unfurl_links=False
            ),
        )
        return str(reply["ts"])

    async def update_message(
        self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None:
        """chat.update."""
        await self._call(
            "chat.update", self.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
        )

    async def post_ephemeral(
        self, channel: str, user: str, text: str, *, thread_ts: str | None = None
    ) -> None:
        """chat.postEphemeral."""
        await self._call(
            "chat.postEphemeral",
            self.client.chat_postEphemeral(
                channel=channel, user=user, text=text, thread_ts=thread_ts
            ),
        )

    async def respond(self, response_url: str, text: str) -> None:
        """An ephemeral reply through a response_url (Slack's hosts only)."""
        if not self._trusted(response_url):
            raise SlackCallFailed("response_url", "untrusted_url")
        webhook = AsyncWebhookClient(response_url)
        try:
            reply = await webhook.send(text=text, response_type="ephemeral")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SlackCallFailed("response_url", type(exc).__name__) from None
        if reply.status_code != 200:
            raise SlackCallFailed("response_url", f"http_{reply.status_code}")

    async def permalink(self, channel: str, ts: str) -> str | None:
        """chat.getPermalink (None when Slack gives none)."""
        try:
            reply = await self._call(
                "chat.getPermalink", self.client.chat_getPermalink(channel=channel, message_ts=ts)
            )
        except SlackCallFailed as exc:
            log.info("no permalink for %s/%s: %s", channel, ts, exc.error)
            return None
        return str(reply.get("permalink") or "") or None

    async def user_name(self, user: str) -> str:
        """users.info: display name, else real name, else the handle (the id on failure)."""
        if user not in self._users:
            try:
                reply = await self._call("users.info", self.client.users_info(user=user))
            except SlackCallFailed as exc:
                log.info("users.info %s: %s", user, exc.error)
                return user
            info = reply.get("user") or {}
            profile = info.get("profile") or {}
            name = (
                profile.get("display_name")
                or profile.get("real_name")
                or info.get("real_name")
                or info.get("name")
                or user
            )
            self._remember(self._users, user, str(name))
        return self._users[user]

    async def channel_name(self, channel: str) -> str:
        """conversations.info: ``#name`` (``direct message`` for IMs, the id on failure)."""
        if channel not in self._channels:
            try:
                reply = await self._call(
                    "conversations.info", self.client.conversations_info(channel=channel)
                )
            except SlackCallFailed as exc:
                log.info("conversations.info %s: %s", channel, exc.error)
                return channel
            info = reply.get("channel") or {}
            name = "direct message" if info.get("is_im") else f"#{info.get('name') or channel}"
            self._remember(self._channels, channel, name)
        return self._channels[channel]

    async def file_info(self, file_id: str) -> dict[str, Any]:
        """files.info: the file object."""
        reply = await self._call("files.info", self.client.files_info(file=file_id))
        return dict(reply.get("file") or {})

    async def download(self, url: str, max_bytes: int) -> bytes:
        """A private file, fetched with the bot token (sent to Slack's hosts only)."""
        if not self._trusted(url):
            raise SlackCallFailed("download", "untrusted_url")
        headers = {"Authorization": f"Bearer {self.client.token}"}
        timeout = aiohttp.ClientTimeout(total=30)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(url, headers=headers) as response,
            ):
                if response.status != 200:
                    raise SlackCallFailed("download", f"http_{response.status}")
                if response.content_type == "text/html":
                    raise SlackCallFailed("download", "login_page (is the files:read scope set?)")
                data = await response.content.read(max_bytes + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SlackCallFailed("download", type(exc).__name__) from None
        if len(data) > max_bytes:
            raise SlackCallFailed("download", "too_large")
        return data

    def _trusted(self, url: str) -> bool:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if host and host == self._api_host:
            return parts.scheme in ("https", "http")
        slack = any(host == d or host.endswith("." + d) for d in TRUSTED_DOMAINS)
        return parts.scheme == "https" and slack

    @staticmethod
    def _remember(cache: dict[str, str], key: str, value: str) -> None:
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[key] = value


def _command_origin(body: Mapping[str, Any]) -> Origin | None:
    try:
        team, channel, user = body["team_id"], body["channel_id"], body["user_id"]
    except (KeyError, TypeError):
        return None
    return Origin(team, channel, user, response_url=body.get("response_url") or None)


def _payload_origin(body: Mapping[str, Any]) -> Origin | None:
    try:
        team, channel, user = body["team"]["id"], body["channel"]["id"], body["user"]["id"]
    except (KeyError, TypeError):
        return None
    return Origin(team, channel, user, response_url=body.get("response_url") or None)


async def _guard(api: WebApi, origin: Origin | None, work: Awaitable[None], what: str) -> None:
    """Run work done after the ack; errors are logged and told to the user privately."""
    try:
        await work
    except (ChatError, EngineError) as exc:
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
) -> AsyncApp:
    """The bolt app for ``service``; Web API calls go through ``client`` (its base_url)."""
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

    def command(name: str, run: Callable[[Mapping[str, Any], AsyncBoltContext], Awaitable[None]]):
        async def listener(ack, body: dict, context: AsyncBoltContext) -> None:
            refusal = chat.check_command(body)
            await ack(refusal or "")
            if refusal is None:
                await _guard(api, _command_origin(body), run(body, context), name)

        app.command(name)(listener)

    command("/ask", lambda body, _: chat.ask_command(body))
    command("/ask-mode", lambda body, _: chat.mode_command(body))
    command("/ask-reset", lambda body, _: chat.reset_command(body))
    command("/context", lambda body, ctx: chat.context_command(body, ctx.bot_user_id))

    @app.event("app_mention")
    async def on_mention(body: dict, event: dict, context: AsyncBoltContext) -> None:
        team = body.get("team_id") or context.team_id or ""
        await _guard(api, None, chat.mention(event, team, context.bot_user_id), "app_mention")

    @app.event("message")
    async def on_message(body: dict, event: dict, context: AsyncBoltContext) -> None:
        team = body.get("team_id") or context.team_id or ""
        await _guard(api, None, chat.message(event, team, context.bot_user_id), "message")

    @app.action(STOP_ACTION)
    async def on_stop(ack, body: dict) -> None:
        await ack()
        await _guard(api, _payload_origin(body), chat.stop(body), "stop")

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


def _register_fallbacks(app: AsyncApp, api: WebApi) -> None:
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
        if isinstance(error, ChatError | EngineError):
            log.info("request refused: %s", error)
            return BoltResponse(status=200, body=getattr(error, "user_message", str(error)))
        log.error("unhandled error in a Slack listener", exc_info=error)
        return BoltResponse(status=200, body=SORRY)


def _request_guard(signing_secret: str) -> Callable[..., Awaitable[web.StreamResponse]]:
    """aiohttp middleware: 401 for a bad signature before the body is even parsed, and a
    polite 400 (logged) for a signed body bolt cannot parse."""
    verifier = SignatureVerifier(signing_secret)

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method != "POST":
            return await handler(request)
        body = await request.text()
        stamp = request.headers.get("X-Slack-Request-Timestamp")
        signature = request.headers.get("X-Slack-Signature")
        try:
            valid = verifier.is_valid(body, stamp, signature)
        except ValueError:
            valid = False
        if not valid:
            return web.json_response({"error": "invalid request"}, status=401)
        try:
            return await handler(request)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("refused a malformed request (%s: %s)", type(exc).__name__, exc)
            return web.json_response(
                {"error": "malformed request", "text": "Sorry, that request could not be read."},
                status=400,
            )

    return guard


async def serve_http(
    app: AsyncApp, host: str, port: int, path: str, signing_secret: str
) -> web.AppRunner:
    """Serve the app with bolt's aiohttp server, every request verified with the signing
    secret; port 0 picks a free port (see ``runner.addresses``)."""
    web_app = app.server(port=port, path=path, host=host).web_app
    web_app.middlewares.append(_request_guard(signing_secret))
    runner = web.AppRunner(web_app)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


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
    client = AsyncWebClient(
        token=settings.bot_token.get_secret_value(),
        base_url=settings.api_base_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
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
    limiter = RateLimiter(runtime.redis, runtime.keys.prefix, settings.rate_limit_per_minute)
    app = build_slack_app(runtime.service(), limiter, settings, client)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stopped.set)
            handled.append(sig)
    try:
        if http:
            return await _run_http(app, settings, port, stopped)
        return await _run_socket_mode(app, settings, client, stopped)
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)


async def _run_http(
    app: AsyncApp, settings: SlackSettings, port: int, stopped: asyncio.Event
) -> int:
    assert settings.signing_secret is not None
    secret = settings.signing_secret.get_secret_value()
    runner = await serve_http(app, settings.http_host, port, settings.http_path, secret)
    log.info(
        "Slack app (HTTP mode) on http://%s:%d%s", settings.http_host, port, settings.http_path
    )
    try:
        await stopped.wait()
    finally:
        await runner.cleanup()
    return 0


async def _run_socket_mode(
    app: AsyncApp, settings: SlackSettings, client: AsyncWebClient, stopped: asyncio.Event
) -> int:
    assert settings.app_token is not None
    app_token = settings.app_token.get_secret_value()
    try:
        opened = await client.apps_connections_open(app_token=app_token)
    except SlackApiError as exc:
        print(
            f"airoboros-bot: Slack refused AIROBOROS_SLACK_APP_TOKEN ({exc.response.get('error')})",
            file=sys.stderr,
        )
        return 1
    handler = AsyncSocketModeHandler(app, app_token, web_client=client)
    handler.client.wss_uri = opened["url"]
    await handler.connect_async()
    log.info("Slack app connected in Socket Mode")
    try:
        await stopped.wait()
    finally:
        await handler.close_async()
    return 0
