"""How the Slack app is served: bolt's aiohttp server in HTTP mode, every request's signature
checked before bolt sees it, or a Socket Mode connection; both until ``stopped`` is set."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from airoboros_bot.config.settings import SlackSettings

log = logging.getLogger(__name__)


def _signed(secret: str, body: bytes, stamp: str | None, signature: str | None) -> bool:
    """Slack's v0 signature over the raw bytes (any bytes, UTF-8 or not), with its 5-minute
    window."""
    if not stamp or not signature:
        return False
    try:
        if abs(time.time() - int(stamp)) > 60 * 5:
            return False
    except ValueError:
        return False
    base = b"v0:" + stamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def _malformed(reason: str) -> web.Response:
    return web.json_response(
        {"error": "malformed request", "text": "Sorry, that request could not be read."},
        status=400,
        reason=reason,
    )


def _request_guard(signing_secret: str) -> Callable[..., Awaitable[web.StreamResponse]]:
    """aiohttp middleware: 401 for a bad signature before the body is even parsed, and a
    polite 400 (logged) for a signed body bolt cannot parse (not UTF-8, bad JSON, ...)."""

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method != "POST":
            return await handler(request)
        body = await request.read()
        stamp = request.headers.get("X-Slack-Request-Timestamp")
        signature = request.headers.get("X-Slack-Signature")
        if not _signed(signing_secret, body, stamp, signature):
            return web.json_response({"error": "invalid request"}, status=401)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            log.warning("refused a signed request whose body is not UTF-8")
            return _malformed("Body Not UTF-8")
        try:
            return await handler(request)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("refused a malformed request (%s: %s)", type(exc).__name__, exc)
            return _malformed("Malformed Request")

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


async def run_http(
    app: AsyncApp, settings: SlackSettings, port: int, stopped: asyncio.Event
) -> int:
    """Serve ``app`` on ``http_host:port`` + ``http_path`` until ``stopped``; returns 0."""
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


async def run_socket_mode(
    app: AsyncApp, settings: SlackSettings, client: AsyncWebClient, stopped: asyncio.Event
) -> int:
    """Connect ``app`` in Socket Mode until ``stopped``; returns 0, or 1 when Slack refuses
    the app-level token."""
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
