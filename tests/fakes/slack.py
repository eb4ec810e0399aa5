"""A protocol-true fake of Slack's Web API (and Socket Mode), on 127.0.0.1 at a random port.

It speaks like slack.com/api: ``POST|GET /api/<method>`` with a bearer token (or a ``token``
parameter), form-encoded or JSON bodies, answers ``{"ok": ...}`` with Slack's error codes, and
validates what Slack validates (known channels and messages, membership, Block Kit limits such
as 3,000 characters of section text). Every call is recorded with its parameters and the time.
It also serves private file downloads (bearer token required; without one, Slack's login page),
response_url webhooks, and a Socket Mode WebSocket (``apps.connections.open``).

Platform limits: chat.update answers 429 with a Retry-After header past
``update_limit_per_minute`` successful edits in ``update_window_s`` (and keeps answering 429
until Retry-After has passed), or as scripted by ``update_errors``. Events can be delivered
again as Slack does (``X-Slack-Retry-Num`` headers, Socket Mode ``retry_attempt``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

TEAM = "T0FAKE"
BOT_USER = "UBOT"
BOT_ID = "BBOT"


@dataclass
class Call:
    """One request the app made."""

    method: str
    params: dict[str, Any]
    time: float
    token: str | None


@dataclass
class FakeSlack:
    """The fake workspace: users, channels, messages, files, and the calls made to it."""

    bot_token: str = "xoxb-fake-bot-token"
    app_token: str = "xapp-fake-app-token"
    team_id: str = TEAM
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    update_limit_per_minute: int | None = None
    update_window_s: float = 60.0
    retry_after_s: float = 1.0
    update_errors: list[str] = field(default_factory=list)
    socket_replies: dict[str, dict[str, Any]] = field(default_factory=dict)
    home_views: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._counter = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Event()
        self._sockets: list[web.WebSocketResponse] = []
        self.port = 0
        self._updates_ok: list[float] = []
        self._update_locked_until = 0.0
        self.add_user("UBOT", "airoboros", "Airoboros", is_bot=True)
        self.add_user("U1", "alice", "Alice Doe")
        self.add_user("U2", "bob", "Bob Roe")
        self.add_channel("C1", "general")
        self.add_channel("C2", "random")
        self.add_channel("CPRIV", "secret", is_private=True, is_member=False)
        self.add_channel("D1", "", is_im=True)

    # -- the workspace ------------------------------------------------------------------------
    def add_user(
        self, uid: str, name: str, real_name: str, *, is_bot: bool = False, is_admin: bool = False
    ) -> None:
        """A member of the workspace (``is_admin``: a workspace admin)."""
        self.users[uid] = {
            "id": uid,
            "team_id": self.team_id,
            "name": name,
            "real_name": real_name,
            "is_bot": is_bot,
            "is_admin": is_admin,
            "is_owner": False,
            "profile": {"real_name": real_name, "display_name": ""},
        }

    def add_channel(
        self,
        cid: str,
        name: str,
        *,
        is_private: bool = False,
        is_member: bool = True,
        is_im: bool = False,
    ) -> None:
        """A conversation the bot may or may not be in."""
        self.channels[cid] = {
            "id": cid,
            "name": name,
            "is_channel": not is_private and not is_im,
            "is_group": is_private,
            "is_im": is_im,
            "is_private": is_private or is_im,
            "is_member": is_member,
        }
        self.messages.setdefault(cid, {})

    def next_ts(self) -> str:
        """A fresh message timestamp, increasing like Slack's."""
        return f"{int(time.time())}.{next(self._counter):06d}"

    def user_message(
        self,
        channel: str,
        text: str,
        *,
        user: str = "U1",
        thread_ts: str | None = None,
        files: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A message a person posts; returns it as it appears in a ``message`` event."""
        message: dict[str, Any] = {
            "type": "message",
            "user": user,
            "text": text,
            "ts": self.next_ts(),
            "team": self.team_id,
            "channel": channel,
            "channel_type": "im" if self.channels[channel]["is_im"] else "channel",
        }
        if thread_ts:
            message["thread_ts"] = thread_ts
        if files:
            message["files"] = files
            message["subtype"] = "file_share"
        self.messages[channel][message["ts"]] = dict(message)
        return message

    def add_file(self, name: str, content: bytes, mimetype: str = "text/plain") -> dict[str, Any]:
        """An uploaded file; returns the file object as message events carry it."""
        fid = f"F{uuid.uuid4().hex[:8].upper()}"
        filetype = {"text/markdown": "markdown", "text/plain": "text"}.get(mimetype, "binary")
        self.files[fid] = {
            "id": fid,
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "filetype": filetype,
            "size": len(content),
            "url_private": f"{self.base}/files-pri/{self.team_id}-{fid}/{name}",
            "url_private_download": f"{self.base}/files-pri/{self.team_id}-{fid}/download/{name}",
            "_content": content,
        }
        return self.file_object(fid)

    def file_object(self, fid: str) -> dict[str, Any]:
        """The public part of a file object."""
        return {k: v for k, v in self.files[fid].items() if not k.startswith("_")}

    # -- the server ---------------------------------------------------------------------------
    @property
    def base(self) -> str:
        """http://127.0.0.1:port"""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """The Web API base URL (``AsyncWebClient(base_url=...)``)."""
        return f"{self.base}/api/"

    def response_url(self) -> str:
        """A response_url as slash commands and shortcuts carry."""
        return f"{self.base}/hooks/{uuid.uuid4().hex}"

    async def start(self) -> FakeSlack:
        """Listen on 127.0.0.1, random port."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/files-pri/{key}/{rest:.*}", self._download)
        app.router.add_post("/hooks/{hook}", self._hook)
        app.router.add_get("/link/", self._socket)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        """Stop serving."""
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what tests read ----------------------------------------------------------------------
    def calls_to(self, method: str) -> list[Call]:
        """Recorded calls of one method, in order."""
        return [c for c in self.calls if c.method == method]

    async def wait_for(
        self, condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition"
    ) -> Any:
        """Wait until ``condition()`` is truthy (re-checked on every call and every 50 ms)."""
        deadline = time.monotonic() + timeout
        while True:
            result = condition()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; calls: {self.summary()}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 0.05)

    def summary(self) -> list[str]:
        """Method names of all calls, for failure messages."""
        return [c.method for c in self.calls]

    # -- request handling ---------------------------------------------------------------------
    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                params.update(await request.json())
            else:
                params.update(dict(await request.post()))
        for name in ("blocks", "attachments"):
            if isinstance(params.get(name), str):
                params[name] = json.loads(params[name])
        return params

    def _record(self, method: str, params: dict[str, Any], token: str | None) -> None:
        self.calls.append(Call(method, params, time.monotonic(), token))
        self._changed.set()

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await self._params(request)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else params.get("token")
        self._record(method, params, token)
        if method == "apps.connections.open":
            if token != self.app_token:
                return _error("not_allowed_token_type" if token else "not_authed")
            return _ok(url=f"ws://127.0.0.1:{self.port}/link/?ticket={uuid.uuid4().hex}")
        if not token:
            return _error("not_authed")
        if token != self.bot_token:
            return _error("invalid_auth")
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return _error("unknown_method")
        try:
            return handler(params)
        except _SlackError as exc:
            if exc.code == "ratelimited":
                self.calls[-1].params["_ratelimited"] = True
                return web.json_response(
                    {"ok": False, "error": "ratelimited"},
                    status=429,
                    headers={"Retry-After": f"{self.retry_after_s:g}"},
                )
            return _error(exc.code)

    def _auth_test(self, params: dict[str, Any]) -> web.Response:
        return _ok(
            url="https://fake.slack.com/",
            team="Fake Team",
            user="airoboros",
            team_id=self.team_id,
            user_id=BOT_USER,
            bot_id=BOT_ID,
            is_enterprise_install=False,
        )

    def _channel(self, params: dict[str, Any], *, post: bool = False) -> dict[str, Any]:
        channel = self.channels.get(str(params.get("channel") or ""))
        if channel is None:
            raise _SlackError("channel_not_found")
        if post and not channel["is_member"]:
            raise _SlackError("not_in_channel")
        return channel

    def _message(self, params: dict[str, Any], ts_name: str = "ts") -> dict[str, Any]:
        channel = self._channel(params)
        message = self.messages[channel["id"]].get(str(params.get(ts_name) or ""))
        if message is None:
            raise _SlackError("message_not_found")
        return message

    def _content(self, params: dict[str, Any]) -> tuple[str, list[dict[str, Any]] | None]:
        text = params.get("text")
        blocks = params.get("blocks")
        if not text and not blocks:
            raise _SlackError("no_text")
        if text is not None and len(str(text)) > 40_000:
            raise _SlackError("msg_too_long")
        if blocks is not None:
            _validate_blocks(blocks)
        return str(text or ""), blocks

    def _chat_postMessage(self, params: dict[str, Any]) -> web.Response:
        channel = self._channel(params, post=True)
        text, blocks = self._content(params)
        thread_ts = params.get("thread_ts") or None
        if thread_ts and thread_ts not in self.messages[channel["id"]]:
            raise _SlackError("thread_not_found")
        ts = self.next_ts()
        message = {
            "type": "message",
            "user": BOT_USER,
            "bot_id": BOT_ID,
            "text": text,
            "blocks": blocks,
            "ts": ts,
        }
        if thread_ts:
            message["thread_ts"] = thread_ts
        self.messages[channel["id"]][ts] = message
        return _ok(channel=channel["id"], ts=ts, message=message)

    def _chat_update(self, params: dict[str, Any]) -> web.Response:
        if self.update_errors:
            code = self.update_errors.pop(0)
            if code == "ratelimited":
                self._update_locked_until = time.monotonic() + self.retry_after_s
            raise _SlackError(code)
        message = self._message(params)
        if message.get("user") != BOT_USER:
            raise _SlackError("cant_update_message")
        now = time.monotonic()
        if now < self._update_locked_until:
            raise _SlackError("ratelimited")
        if self.update_limit_per_minute is not None:
            window = self.update_window_s
            self._updates_ok = [t for t in self._updates_ok if now - t < window]
            if len(self._updates_ok) >= self.update_limit_per_minute:
                self._update_locked_until = now + self.retry_after_s
                raise _SlackError("ratelimited")
        text, blocks = self._content(params)
        self._updates_ok.append(now)
        message.update(text=text, blocks=blocks, edited={"user": BOT_USER, "ts": self.next_ts()})
        return _ok(channel=params["channel"], ts=message["ts"], text=text)

    def rate_limited_updates(self) -> list[Call]:
        """The chat.update calls Slack answered with 429."""
        return [c for c in self.calls_to("chat.update") if c.params.get("_ratelimited")]

    def _chat_postEphemeral(self, params: dict[str, Any]) -> web.Response:
        self._channel(params, post=True)
        if str(params.get("user") or "") not in self.users:
            raise _SlackError("user_not_found")
        self._content(params)
        return _ok(message_ts=self.next_ts())

    def _chat_getPermalink(self, params: dict[str, Any]) -> web.Response:
        message = self._message(params, "message_ts")
        ts = message["ts"]
        link = f"https://fake.slack.com/archives/{params['channel']}/p{ts.replace('.', '')}"
        if message.get("thread_ts") and message["thread_ts"] != ts:
            link += f"?thread_ts={message['thread_ts']}&cid={params['channel']}"
        return _ok(channel=params["channel"], permalink=link)

    def _users_info(self, params: dict[str, Any]) -> web.Response:
        user = self.users.get(str(params.get("user") or ""))
        if user is None:
            raise _SlackError("user_not_found")
        return _ok(user=user)

    def _conversations_info(self, params: dict[str, Any]) -> web.Response:
        return _ok(channel=self._channel(params))

    def _conversations_replies(self, params: dict[str, Any]) -> web.Response:
        channel = self._channel(params)
        if not channel["is_member"]:
            raise _SlackError("not_in_channel")
        parent = str(params.get("ts") or "")
        messages = self.messages[channel["id"]]
        if parent not in messages:
            raise _SlackError("thread_not_found")
        thread = sorted(
            (m for m in messages.values() if m["ts"] == parent or m.get("thread_ts") == parent),
            key=lambda m: m["ts"],
        )
        start = int(params.get("cursor") or 0)
        limit = max(1, min(1000, int(params.get("limit") or 1000)))
        page = thread[start : start + limit]
        more = start + limit < len(thread)
        return _ok(
            messages=[
                {k: v for k, v in m.items() if k not in ("channel", "channel_type")} for m in page
            ],
            has_more=more,
            response_metadata={"next_cursor": str(start + limit) if more else ""},
        )

    def _views_publish(self, params: dict[str, Any]) -> web.Response:
        user = str(params.get("user_id") or "")
        if user not in self.users:
            raise _SlackError("user_not_found")
        view = params.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        if not isinstance(view, dict) or view.get("type") != "home":
            raise _SlackError("invalid_arguments")
        _validate_blocks(view.get("blocks"), limit=100)
        self.home_views[user] = view
        return _ok(view={**view, "id": f"V{uuid.uuid4().hex[:8].upper()}"})

    def _files_info(self, params: dict[str, Any]) -> web.Response:
        fid = str(params.get("file") or "")
        if fid not in self.files:
            raise _SlackError("file_not_found")
        return _ok(file=self.file_object(fid))

    async def _download(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        fid = key.split("-", 1)[-1]
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self._record("files.download", {"file": fid, "path": request.path}, token or None)
        if token != self.bot_token:
            # What Slack does without a valid token: its sign-in page, not the file.
            return web.Response(
                text="<html><body>Sign in to Slack</body></html>", content_type="text/html"
            )
        file = self.files.get(fid)
        if file is None:
            return web.Response(status=404, text="file not found")
        return web.Response(body=file["_content"], content_type=file["mimetype"])

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.json()
        self._record("response_url", dict(body), None)
        return web.Response(text="ok")

    # -- Socket Mode --------------------------------------------------------------------------
    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        self._record("socket.connect", dict(request.query), None)
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": 1,
                "debug_info": {"host": "fake", "approximate_connection_time": 18060},
                "connection_info": {"app_id": "A0FAKE"},
            }
        )
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    reply = json.loads(msg.data)
                    self.socket_replies[reply.get("envelope_id", "")] = reply
                    self._record("socket.ack", reply, None)
        finally:
            self._sockets.remove(ws)
        return ws

    async def send_envelope(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool = True,
        retry_attempt: int = 0,
    ) -> str:
        """Deliver a Socket Mode envelope (``slash_commands``, ``events_api``, ``interactive``)
        to the connected app; returns its envelope id. ``retry_attempt`` > 0 is Slack
        delivering the same payload again (it thought the first was not acknowledged)."""
        envelope_id = uuid.uuid4().hex
        await self.wait_for(lambda: self._sockets, what="a Socket Mode connection")
        await self._sockets[-1].send_json(
            {
                "envelope_id": envelope_id,
                "type": kind,
                "payload": payload,
                "accepts_response_payload": accepts_response_payload,
                "retry_attempt": retry_attempt,
                "retry_reason": "timeout" if retry_attempt else "",
            }
        )
        return envelope_id


class _SlackError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _ok(**fields: Any) -> web.Response:
    return web.json_response({"ok": True, **fields})


def _error(code: str) -> web.Response:
    return web.json_response({"ok": False, "error": code})


def _text_len(obj: Any) -> int:
    return len(obj.get("text", "")) if isinstance(obj, dict) else 0


def _validate_blocks(blocks: Any, limit: int = 50) -> None:
    """Block Kit limits that Slack enforces with ``invalid_blocks`` (50 blocks in a message,
    100 in a view)."""
    if not isinstance(blocks, list) or len(blocks) > limit:
        raise _SlackError("invalid_blocks")
    for block in blocks:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "divider":
            continue
        if kind == "header":
            text = block.get("text")
            if not isinstance(text, dict) or text.get("type") != "plain_text":
                raise _SlackError("invalid_blocks")
            if not 1 <= _text_len(text) <= 150:
                raise _SlackError("invalid_blocks")
        elif kind == "section":
            text = block.get("text")
            if not isinstance(text, dict) or not 1 <= _text_len(text) <= 3000:
                raise _SlackError("invalid_blocks")
        elif kind == "context":
            elements = block.get("elements") or []
            if not 1 <= len(elements) <= 10 or any(_text_len(e) > 3000 for e in elements):
                raise _SlackError("invalid_blocks")
        elif kind == "actions":
            elements = block.get("elements") or []
            if not 1 <= len(elements) <= 25:
                raise _SlackError("invalid_blocks")
            for element in elements:
                if (
                    _text_len(element.get("text")) > 75
                    or len(element.get("value", "")) > 2000
                    or not 1 <= len(element.get("action_id", "")) <= 255
                ):
                    raise _SlackError("invalid_blocks")
        else:
            raise _SlackError("invalid_blocks")


# -- requests as Slack sends them to the app ----------------------------------------------------
def signed_headers(
    body: str, secret: str, *, timestamp: int | None = None, content_type: str
) -> dict[str, str]:
    """Headers of a request signed like Slack signs it (slack_sdk's SignatureVerifier)."""
    from slack_sdk.signature import SignatureVerifier

    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    return {
        "content-type": content_type,
        "x-slack-request-timestamp": stamp,
        "x-slack-signature": str(signature),
    }


def command_body(
    command: str,
    text: str = "",
    *,
    channel: str = "C1",
    user: str = "U1",
    team: str = TEAM,
    response_url: str = "",
    channel_name: str = "general",
) -> dict[str, str]:
    """The form fields of a slash command request."""
    return {
        "token": "deprecated-verification-token",
        "team_id": team,
        "team_domain": "fake",
        "channel_id": channel,
        "channel_name": channel_name,
        "user_id": user,
        "user_name": "alice",
        "command": command,
        "text": text,
        "api_app_id": "A0FAKE",
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": f"{uuid.uuid4().int % 10**13}.{uuid.uuid4().hex[:10]}",
    }


def event_envelope(event: dict[str, Any], *, team: str = TEAM) -> dict[str, Any]:
    """An Events API ``event_callback`` envelope."""
    return {
        "token": "deprecated-verification-token",
        "team_id": team,
        "api_app_id": "A0FAKE",
        "event": event,
        "type": "event_callback",
        "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}",
        "event_time": int(time.time()),
        "authorizations": [
            {"team_id": team, "user_id": BOT_USER, "is_bot": True, "is_enterprise_install": False}
        ],
        "is_ext_shared_channel": False,
    }


def mention_event(message: dict[str, Any]) -> dict[str, Any]:
    """The ``app_mention`` event of a message that mentions the bot."""
    return {**{k: v for k, v in message.items() if k != "channel_type"}, "type": "app_mention"}


def message_action(
    message: dict[str, Any], *, channel: str = "C1", user: str = "U1", response_url: str = ""
) -> dict[str, Any]:
    """The payload of a message shortcut (``message_action``)."""
    return {
        "type": "message_action",
        "token": "deprecated-verification-token",
        "action_ts": f"{time.time():.6f}",
        "team": {"id": TEAM, "domain": "fake"},
        "user": {"id": user, "username": "alice", "team_id": TEAM, "name": "alice"},
        "channel": {"id": channel, "name": "general"},
        "is_enterprise_install": False,
        "callback_id": "add_as_context",
        "trigger_id": f"{uuid.uuid4().int % 10**13}.{uuid.uuid4().hex[:10]}",
        "response_url": response_url,
        "message_ts": message.get("ts", ""),
        "message": {k: v for k, v in message.items() if k not in ("channel", "channel_type")},
    }


def block_action(
    action_id: str,
    value: str,
    *,
    message_ts: str,
    channel: str = "C1",
    user: str = "U1",
    response_url: str = "",
) -> dict[str, Any]:
    """The payload of a button click (``block_actions``)."""
    return {
        "type": "block_actions",
        "team": {"id": TEAM, "domain": "fake"},
        "user": {"id": user, "username": "alice", "team_id": TEAM},
        "api_app_id": "A0FAKE",
        "token": "deprecated-verification-token",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
        "trigger_id": f"{uuid.uuid4().int % 10**13}.{uuid.uuid4().hex[:10]}",
        "channel": {"id": channel, "name": "general"},
        "message": {"type": "message", "ts": message_ts, "user": BOT_USER, "bot_id": BOT_ID},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": "b1",
                "type": "button",
                "value": value,
                "action_ts": f"{time.time():.6f}",
                "text": {"type": "plain_text", "text": "Stop"},
            }
        ],
    }


def signed_request(
    body: dict[str, Any],
    secret: str,
    *,
    kind: str = "form",
    timestamp: int | None = None,
    retry_num: int = 0,
) -> tuple[str, dict[str, str]]:
    """A request body and its signed headers: ``form`` (slash commands), ``payload``
    (interactivity: ``payload=<json>``) or ``json`` (Events API). ``retry_num`` > 0 adds the
    headers of Slack delivering an event again."""
    from urllib.parse import urlencode

    if kind == "json":
        raw, content_type = json.dumps(body), "application/json"
    else:
        fields = {"payload": json.dumps(body)} if kind == "payload" else body
        raw, content_type = urlencode(fields), "application/x-www-form-urlencoded"
    headers = signed_headers(raw, secret, timestamp=timestamp, content_type=content_type)
    if retry_num:
        headers["x-slack-retry-num"] = str(retry_num)
        headers["x-slack-retry-reason"] = "http_timeout"
    return raw, headers


def home_opened(user: str = "U1") -> dict[str, Any]:
    """The ``app_home_opened`` event of a user opening the app's Home tab."""
    return {
        "type": "app_home_opened",
        "user": user,
        "channel": "D1",
        "tab": "home",
        "event_ts": f"{time.time():.6f}",
    }
