"""Slack text helpers and the app manifest against what the app really handles."""

from __future__ import annotations

from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from airoboros_bot.bots.core.render import AnswerView
from airoboros_bot.bots.core.service import Answer, Submitted
from airoboros_bot.bots.slack.app import build_slack_app
from airoboros_bot.bots.slack.format import (
    ADD_CONTEXT_CALLBACK,
    SECTION_LIMIT,
    SlackAnswerView,
    format_sources,
    mentions,
    plain_text,
    question_header,
    section,
    strip_mention,
)
from airoboros_bot.config.settings import SlackSettings
from airoboros_bot.conversations.models import ContextBlock
from tests.bots import slack_fixtures
from tests.bots.slack_fixtures import SECRET, dispatch
from tests.fakes.slack import FakeSlack, command_body

fake, client = slack_fixtures.fake, slack_fixtures.client

MANIFEST = Path(__file__).resolve().parents[2] / "config" / "slack-manifest.yaml"
HTTP_MANIFEST = MANIFEST.with_name("slack-manifest-http.yaml")


@pytest.mark.parametrize(
    ("slack", "plain"),
    [
        ("Hi <@U123> and <@U9|bob>", "Hi @U123 and @bob"),
        ("see <#C1|general>", "see #general"),
        ("<!here> now", "@here now"),
        ("<https://a.example/x?y=1&amp;z=2|the docs>", "the docs (https://a.example/x?y=1&z=2)"),
        ("<https://a.example>", "https://a.example"),
        ("<mailto:a@b.example|a@b.example>", "a@b.example"),
        ("1 &lt; 2 &amp;&amp; 3 &gt; 2", "1 < 2 && 3 > 2"),
        ("", ""),
    ],
)
def test_plain_text(slack: str, plain: str) -> None:
    assert plain_text(slack) == plain


def test_mentions_of_the_bot() -> None:
    assert mentions("<@UBOT> hi", "UBOT") and mentions("hey <@UBOT|airoboros>", "UBOT")
    assert not mentions("<@UBOTX> hi", "UBOT") and not mentions("<@UBOT> hi", None)
    assert strip_mention("<@UBOT> what <@U2>?", "UBOT") == "what <@U2>?"


def test_sources_link_to_their_messages() -> None:
    blocks = (
        ContextBlock(
            "x",
            {
                "url": "https://fake.slack.com/archives/C1/p1",
                "date": "2026-11-02 10:00 UTC",
                "author": "Alice <admin>",
                "channel": "#general",
            },
        ),
        ContextBlock("y", {"url": "https://f.example/a|b", "file": "notes.md"}),
        ContextBlock("Plain words here", {}),
    )
    assert format_sources(blocks) == (
        "*Sources:*\n"
        "[1] <https://fake.slack.com/archives/C1/p1|Alice &lt;admin&gt; in #general, 2026-11-02>\n"
        "[2] <https://f.example/a%7Cb|notes.md>\n"
        "[3] Plain words here"
    )


def test_view_escapes_model_text_and_notes() -> None:
    view = SlackAnswerView(limit=2900, format_sources=format_sources)
    omitted = ContextBlock("z", {"file": "<big>.txt"})
    view.apply(Submitted("j", 1, 0, (omitted,)))
    view.apply(Answer("a <@U1> & b", "eos", 3, 1, ()))
    assert (
        view.body()
        == "a &lt;@U1&gt; &amp; b\n\n_Left out (did not fit the window): &lt;big&gt;.txt_"
    )
    plain = AnswerView(limit=2900)
    plain.apply(Answer("a <@U1> & b", "eos", 3, 1, ()))
    assert plain.body() == "a <@U1> & b"


def test_header_and_section_limits() -> None:
    header = question_header("U1", "why " * 500)
    assert header.startswith("<@U1> asked: why why") and len(header) < 330 and header.endswith("…")
    assert question_header("U1", "a <b> & c") == "<@U1> asked: a &lt;b&gt; &amp; c"
    assert len(section("x" * 5000)["text"]["text"]) == SECTION_LIMIT
    assert section("   ")["text"]["text"] == "_(empty answer)_"


def test_manifest_matches_the_app() -> None:
    yaml = pytest.importorskip("yaml")
    manifest = yaml.safe_load(MANIFEST.read_text())
    features, settings = manifest["features"], manifest["settings"]
    commands = {c["command"] for c in features["slash_commands"]}
    assert commands == {
        "/ask",
        "/ask-private",
        "/ask-mode",
        "/ask-reset",
        "/context",
        "/trivia",
        "/anagram",
        "/words",
    }
    (shortcut,) = features["shortcuts"]
    assert shortcut["type"] == "message" and shortcut["callback_id"] == ADD_CONTEXT_CALLBACK
    assert set(settings["event_subscriptions"]["bot_events"]) == {
        "app_home_opened",
        "app_mention",
        "message.channels",
        "message.groups",
        "message.im",
    }
    assert features["app_home"]["home_tab_enabled"] is True
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    needed = {"app_mentions:read", "chat:write", "commands", "files:read", "users:read"}
    needed |= {"channels:history", "groups:history", "im:history", "channels:read"}
    assert needed <= scopes
    assert settings["socket_mode_enabled"] is True
    assert settings["interactivity"]["is_enabled"] is True


def test_the_http_manifest_is_the_socket_one_with_request_urls() -> None:
    yaml = pytest.importorskip("yaml")
    socket = yaml.safe_load(MANIFEST.read_text())
    http = yaml.safe_load(HTTP_MANIFEST.read_text())
    url = "https://bot.example.com/slack/events"
    assert http["settings"]["socket_mode_enabled"] is False
    assert http["settings"]["event_subscriptions"]["request_url"] == url
    assert http["settings"]["interactivity"]["request_url"] == url
    assert all(c.pop("url") == url for c in http["features"]["slash_commands"])
    del http["settings"]["event_subscriptions"]["request_url"]
    del http["settings"]["interactivity"]["request_url"]
    http["settings"]["socket_mode_enabled"] = True
    assert http == socket, "the same app apart from how Slack reaches it"
    assert url.endswith(SlackSettings().http_path)


async def test_every_manifest_command_is_handled(fake: FakeSlack, client: AsyncWebClient) -> None:
    yaml = pytest.importorskip("yaml")
    manifest = yaml.safe_load(MANIFEST.read_text())
    settings = SlackSettings(
        bot_token=fake.bot_token,
        signing_secret=SECRET,
        api_base_url=fake.api_url,
        channel_ids=["CNONE"],
    )
    app = build_slack_app(None, None, settings, client)  # type: ignore[arg-type]
    for entry in manifest["features"]["slash_commands"]:
        response = await dispatch(app, command_body(entry["command"], "x"))
        # The channel is not allowed: a handled command is refused; an unknown one would
        # be answered "I don't know".
        assert response.status == 200
        assert "not enabled in this channel" in str(response.body), entry["command"]
