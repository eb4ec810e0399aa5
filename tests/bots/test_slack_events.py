"""Slack events beyond the happy path: re-delivered events, a mention in a thread the bot has
not joined (it reads the thread first), and the App Home tab."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from slack_bolt.async_app import AsyncApp

from airoboros_bot.bots.core.service import ChatService
from airoboros_bot.conversations.models import ConversationKey, Mode
from tests.bots import slack_fixtures
from tests.bots.slack_fixtures import (
    AppFactory,
    bot_messages,
    dispatch,
    ephemerals,
    is_final,
    job_outputs,
)
from tests.fakes.slack import (
    BOT_USER,
    TEAM,
    FakeSlack,
    command_body,
    event_envelope,
    home_opened,
    mention_event,
)

fake, client, make_app = slack_fixtures.fake, slack_fixtures.client, slack_fixtures.make_app


def key(thread: str = "", channel: str = "C1") -> ConversationKey:
    return ConversationKey("slack", TEAM, channel, thread)


@pytest.fixture
def app(make_app: AppFactory, service: ChatService) -> AsyncApp:
    return make_app(service, rate_limit_per_minute=20)


async def finished_in_thread(fake: FakeSlack, thread: str) -> list[dict]:
    return await fake.wait_for(
        lambda: [m for m in bot_messages(fake) if m.get("thread_ts") == thread and is_final(m)],
        what="the answer in the thread",
    )


async def test_a_retried_event_is_answered_once(
    app: AsyncApp,
    make_app: AppFactory,
    fake: FakeSlack,
    service: ChatService,
    redis: aioredis.Redis,
    key_prefix: str,
) -> None:
    mention = fake.user_message("C1", f"<@{BOT_USER}> Name a blue fruit.")
    envelope = event_envelope(mention_event(mention))
    assert (await dispatch(app, envelope, kind="json")).status == 200
    # Slack thought the first delivery was lost: the same event_id again, to this process and
    # to another one behind the same load balancer.
    other = make_app(service, rate_limit_per_minute=20)
    for retry, target in ((1, app), (2, other)):
        response = await dispatch(target, envelope, kind="json", retry_num=retry)
        assert response.status == 200
    await finished_in_thread(fake, mention["ts"])
    assert len(fake.calls_to("chat.postMessage")) == 1, "one placeholder"
    assert len(await job_outputs(redis, key_prefix)) == 1, "one job"
    assert len(await service.store.history(key(mention["ts"]))) == 1
    # A different event (a new message) is still handled.
    again = fake.user_message("C1", f"<@{BOT_USER}> And a red one?")
    await dispatch(other, event_envelope(mention_event(again)), kind="json")
    await finished_in_thread(fake, again["ts"])
    assert len(await job_outputs(redis, key_prefix)) == 2


async def test_a_mention_in_a_thread_reads_the_thread_first(
    app: AsyncApp, fake: FakeSlack, service: ChatService
) -> None:
    parent = fake.user_message("C1", "Launch plan: we ship on Tuesday.", user="U2")
    fake.user_message("C1", "Marketing is ready.", user="U1", thread_ts=parent["ts"])
    fake.user_message("C1", "QA needs one more day.", user="U2", thread_ts=parent["ts"])
    ask = fake.user_message(
        "C1", f"<@{BOT_USER}> summarise this thread", user="U1", thread_ts=parent["ts"]
    )
    await dispatch(app, event_envelope(mention_event(ask)), kind="json")
    await dispatch(app, event_envelope(ask), kind="json")  # also a plain message event

    (answer,) = await finished_in_thread(fake, parent["ts"])
    (read,) = fake.calls_to("conversations.replies")
    assert read.params["channel"] == "C1" and read.params["ts"] == parent["ts"]
    conversation = key(parent["ts"])
    blocks = await service.store.blocks(conversation)
    assert [b.text for b in blocks] == [
        "Launch plan: we ship on Tuesday.",
        "Marketing is ready.",
        "QA needs one more day.",
    ], "the thread's messages, without the question itself"
    assert [b.metadata["author"] for b in blocks] == ["Bob Roe", "Alice Doe", "Bob Roe"]
    assert all(b.metadata["url"].startswith("https://fake.slack.com/archives/C1/p") for b in blocks)
    assert (
        "*Sources:*" in answer["text"]
        and "<https://fake.slack.com/archives/C1/p" in (answer["text"])
    )
    assert await service.owner(conversation) == "U1"
    assert [t.user for t in await service.store.history(conversation)] == ["summarise this thread"]

    # The bot is in the thread now: a reply continues the conversation without a mention, and
    # the thread is not read again.
    follow = fake.user_message("C1", "Who is late?", user="U2", thread_ts=parent["ts"])
    await dispatch(app, event_envelope(follow), kind="json")
    await fake.wait_for(
        lambda: len([m for m in bot_messages(fake) if is_final(m)]) == 2, what="second answer"
    )
    assert len(fake.calls_to("conversations.replies")) == 1
    assert len(await service.store.blocks(conversation)) == 3
    history = await service.store.history(conversation)
    assert [t.user for t in history] == ["summarise this thread", "Who is late?"]


async def test_a_thread_slack_will_not_give_is_still_answered(
    app: AsyncApp, fake: FakeSlack, service: ChatService
) -> None:
    parent = fake.user_message("C1", "hello")
    ask = fake.user_message("C1", f"<@{BOT_USER}> hi", thread_ts=parent["ts"])
    fake.messages["C1"].pop(parent["ts"])  # the parent is gone: thread_not_found
    await dispatch(app, event_envelope(mention_event(ask)), kind="json")
    await fake.wait_for(lambda: ephemerals(fake))
    assert (
        ephemerals(fake)[0] == "I could not read this thread (thread_not_found); answering anyway."
    )


async def test_the_home_tab_shows_usage_limits_and_settings(
    make_app: AppFactory, fake: FakeSlack, service: ChatService
) -> None:
    fake.add_user("UADM", "root", "Root Admin", is_admin=True)
    app = make_app(service, rate_limit_per_minute=7)
    assert (await dispatch(app, event_envelope(home_opened("U1")), kind="json")).status == 200
    view = await fake.wait_for(lambda: fake.home_views.get("U1"), what="views.publish")
    text = "\n".join(b["text"]["text"] for b in view["blocks"] if b["type"] == "section")
    assert "`/ask-private question`" in text and "summarise this thread" in text
    assert "You asked 0 of 7 questions allowed per 60 s: 7 left now." in text
    assert "Conversations you started" in text and "(you are an admin)" not in text
    assert "none set" in text

    await dispatch(app, command_body("/ask", "How are you?"))
    await fake.wait_for(lambda: [m for m in bot_messages(fake) if is_final(m)])
    await service.set_channel_mode(key(), Mode.NO_HISTORY)
    fake.home_views.clear()
    await dispatch(app, event_envelope(home_opened("U1")), kind="json")
    view = await fake.wait_for(lambda: fake.home_views.get("U1"))
    text = "\n".join(b["text"]["text"] for b in view["blocks"] if b["type"] == "section")
    assert "You asked 1 of 7 questions" in text
    assert "• #general: *no-history*" in text

    await dispatch(app, event_envelope(home_opened("UADM")), kind="json")
    view = await fake.wait_for(lambda: fake.home_views.get("UADM"))
    text = "\n".join(b["text"]["text"] for b in view["blocks"] if b["type"] == "section")
    assert "(you are an admin)" in text and "`/ask-mode no-history`" in text


async def test_other_tabs_and_other_workspaces_get_no_home(
    make_app: AppFactory, fake: FakeSlack, service: ChatService
) -> None:
    elsewhere = make_app(service, team_ids=["T0OTHER"])
    await dispatch(elsewhere, event_envelope(home_opened("U1")), kind="json")
    app = make_app(service)
    await dispatch(app, event_envelope({**home_opened("U1"), "tab": "messages"}), kind="json")
    await dispatch(app, event_envelope(home_opened("U2")), kind="json")
    await fake.wait_for(lambda: fake.home_views.get("U2"))
    assert list(fake.home_views) == ["U2"]
